"""``scope['session']``: the request's session as a plain dict.

It is what Starlette's own SessionMiddleware gives ``request.session``:
a dict, loaded before the application runs and changed in memory. Once
the application has started its response the session is stored, and a
change after that raises ``SessionClosed`` instead of being lost.
"""


class SessionClosed(RuntimeError):
    """The session was changed after its response had started."""


def _guarded(name):
    method = getattr(dict, name)

    def guarded(self, *args, **kw):
        if self.closed is not None:
            raise SessionClosed(
                f'request.session was changed ({name}) {self.closed}')
        return method(self, *args, **kw)

    guarded.__name__ = name
    return guarded


class ASGISession(dict):
    """The session of one ASGI request: a dict, plus ``regenerate()``
    (keep the data under a new client id, after login) and
    ``invalidate()`` (drop the data and the id)."""

    closed = None       # why changes are refused now, or None
    regenerating = False
    invalidating = False

    __setitem__ = _guarded('__setitem__')
    __delitem__ = _guarded('__delitem__')
    __ior__ = _guarded('__ior__')
    clear = _guarded('clear')
    pop = _guarded('pop')
    popitem = _guarded('popitem')
    setdefault = _guarded('setdefault')
    update = _guarded('update')

    def regenerate(self):
        """Keep the data under a new client id (call it after login)."""
        self._check('regenerate')
        self.regenerating = True

    def invalidate(self):
        """Drop the client's data and id; the session goes on empty."""
        self._check('invalidate')
        self.invalidating = True
        dict.clear(self)

    def close(self, reason):
        """Refuse changes from now on, saying ``reason`` (the end of
        a sentence: 'request.session was changed (clear) ' + reason)."""
        self.closed = reason

    def _check(self, name):
        if self.closed is not None:
            raise SessionClosed(f'request.session.{name}() {self.closed}')

    def __repr__(self):
        return f'<ASGISession {dict.__repr__(self)}>'
