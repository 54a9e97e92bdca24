"""The current request's session, without passing the request around.

Inside ``SessionMiddleware`` (which sets the current request for the
duration of each request), application code may write::

    from zodbsession import current
    current.set('demo.prefs', 'theme', 'dark')
    theme = current.get('demo.prefs', 'theme', 'light')
    current.delete('demo.prefs', 'theme')

Each call goes through ``ISession(request)``, so the package's registered
container (server-side or cookie) decides where the value lives.
"""
import contextlib
import contextvars

from zodbsession.interfaces import ISession

_request = contextvars.ContextVar('zodbsession.current_request', default=None)


class NoCurrentRequest(LookupError):
    """There is no current request (not inside the middleware)."""


@contextlib.contextmanager
def serving(request):
    """Make ``request`` the current request inside the block."""
    token = enter(request)
    try:
        yield request
    finally:
        leave(token)


def enter(request):
    """Make ``request`` current; returns the token for ``leave``.

    (For hosts on the hot path, where a context manager costs more than
    the rest of this module's work.)
    """
    return _request.set(request)


def leave(token):
    """Undo the ``enter`` that returned ``token``."""
    _request.reset(token)


def request():
    """The current request; NoCurrentRequest outside of one."""
    current = _request.get()
    if current is None:
        raise NoCurrentRequest(
            'no current request: zodbsession.current works inside'
            ' SessionMiddleware (or a zodbsession.current.serving block)')
    return current


def session():
    """The current request's ISession."""
    return ISession(request())


def get(pkg_id, key, default=None):
    """A value of the package's session data; creates nothing."""
    data = session().get(pkg_id)
    return default if data is None else data.get(key, default)


def set(pkg_id, key, value):
    """Store a value in the package's session data."""
    session()[pkg_id][key] = value


def delete(pkg_id, key):
    """Remove a key from the package's session data, if present."""
    data = session().get(pkg_id)
    if data is not None:
        data.pop(key, None)
