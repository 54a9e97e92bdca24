"""Request adaptation: reading a request's cookies, setting its response's.

The core speaks only to ``IRequestCookies``; this package adapts the
kinds of request zodbsession knows to it: its own WSGI request and WebOb
or Pyramid requests (``environ``), zope.publisher requests
(``publisher``), found without registration (``builtin``), or
registered in Python (``registration``; ``configure.zcml`` does the
same).
"""

# The core finds the built-in adapters through this registration.
from zodbsession.adaptation import builtin  # noqa: E402,F401
