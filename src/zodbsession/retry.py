"""``zodbsession.retry`` is ``zodbsession.hosting.retry``: the old name stays
importable (and is the same module, so its attributes are shared)."""
import sys

from zodbsession.hosting import retry as _module

sys.modules[__name__] = _module
