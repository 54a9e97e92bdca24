"""``zodbsession.packing`` is ``zodbsession.hosting.packing``: the old name stays
importable (and is the same module, so its attributes are shared)."""
import sys

from zodbsession.hosting import packing as _module

sys.modules[__name__] = _module
