"""``zodbsession.publisher`` is ``zodbsession.adaptation.publisher``: the old name stays
importable (and is the same module, so its attributes are shared)."""
import sys

from zodbsession.adaptation import publisher as _module

sys.modules[__name__] = _module
