"""``zodbsession.coldstart`` is ``zodbsession.hosting.coldstart``: the old name stays
importable (and is the same module, so its attributes are shared)."""
import sys

from zodbsession.hosting import coldstart as _module

sys.modules[__name__] = _module
