"""``zodbsession.registration`` is ``zodbsession.adaptation.registration``: the old name stays
importable (and is the same module, so its attributes are shared)."""
import sys

from zodbsession.adaptation import registration as _module

sys.modules[__name__] = _module
