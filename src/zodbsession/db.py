"""``zodbsession.db`` is ``zodbsession.hosting.db``: the old name stays
importable (and is the same module, so its attributes are shared)."""
import sys

from zodbsession.hosting import db as _module

sys.modules[__name__] = _module
