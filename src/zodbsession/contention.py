"""``zodbsession.contention`` is ``zodbsession.hosting.contention``: the old name stays
importable (and is the same module, so its attributes are shared)."""
import sys

from zodbsession.hosting import contention as _module

sys.modules[__name__] = _module
