"""``zodbsession.transactions`` is ``zodbsession.hosting.transactions``: the old name stays
importable (and is the same module, so its attributes are shared)."""
import sys

from zodbsession.hosting import transactions as _module

sys.modules[__name__] = _module
