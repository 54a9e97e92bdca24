"""``zodbsession.requests`` is ``zodbsession.adaptation.environ``: the old name stays
importable (and is the same module, so its attributes are shared)."""
import sys

from zodbsession.adaptation import environ as _module

sys.modules[__name__] = _module
