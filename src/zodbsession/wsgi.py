"""``zodbsession.wsgi`` is ``zodbsession.hosting.wsgi``: the old name stays
importable (and is the same module, so its attributes are shared)."""
import sys

from zodbsession.hosting import wsgi as _module

sys.modules[__name__] = _module
