"""``zodbsession.maintenance`` is ``zodbsession.hosting.maintenance``: the old name stays
importable (and is the same module, so its attributes are shared)."""
import sys

from zodbsession.hosting import maintenance as _module

sys.modules[__name__] = _module
