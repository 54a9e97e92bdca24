"""``request.session``: Pyramid's ISession over one zodbsession package.

The Pyramid session is the package data ``ISession(request)[pkg_id]``, so
the site decides where it lives (any registered container) and it commits
or aborts with the request's transaction. Flash queues and the CSRF token
are ordinary keys of it, named as Pyramid's own sessions name them.
"""
import secrets
from collections.abc import MutableMapping

from pyramid.interfaces import ISession as IPyramidSession
from zope.interface import implementer

from zodbsession import clock
from zodbsession.interfaces import ISession

DEFAULT_PKG_ID = 'pyramid.session'

# Kept with the data, hidden from the mapping: when the session began.
CREATED_KEY = '_created'
FLASH_PREFIX = '_f_'
CSRF_KEY = '_csrft_'


@implementer(IPyramidSession)
class PyramidSession(MutableMapping):
    """The Pyramid session of one request.

    Reading creates nothing: a client without a session gets no cookie
    and no record until something is stored. Setting or deleting a key
    marks the session changed; so does changing a stored list or dict in
    place (found at commit; ``changed()`` is accepted too).
    """

    def __init__(self, request, pkg_id=DEFAULT_PKG_ID):
        self.request = request
        self.pkg_id = pkg_id
        self._session = ISession(request)
        self._data = self._session.get(pkg_id)
        self.new = self._data is None
        self._created = clock.now()

    # -- where the data is ---------------------------------------------

    def release(self):
        """The request is over (its host's finished callback): let go of
        it and of its zodbsession Session, which refer back to this
        object through ``request.session``, so that reference counting
        frees them (Pyramid's own sessions let go of their request too,
        once their cookie is set). What was read stays readable; a
        change raises, as nothing would store it."""
        self.request = self._session = None

    def _live_session(self):
        session = self._session
        if session is None:
            raise RuntimeError(
                'this Pyramid session belongs to a request that is over:'
                ' nothing would store the change; use request.session'
                ' of a request being served')
        return session

    def _existing(self):
        """The stored package data, or None (creates nothing)."""
        if self._data is None and self._session is not None:
            self._data = self._session.get(self.pkg_id)
        return self._data

    def _writable(self):
        data = self._existing()
        if data is None:
            data = self._data = self._live_session()[self.pkg_id]
        elif self._session is None:
            self._live_session()
        if CREATED_KEY not in data:
            data[CREATED_KEY] = self._created
        return data

    @property
    def created(self):
        """Epoch seconds (float) when this session began."""
        data = self._existing()
        if data is not None and CREATED_KEY in data:
            return data[CREATED_KEY]
        return self._created

    @property
    def client_id(self):
        """The client's zodbsession id (issuing one if it has none)."""
        return self._live_session().client_id

    # -- the mapping ------------------------------------------------------

    def __getitem__(self, key):
        data = self._existing()
        if data is None or key == CREATED_KEY:
            raise KeyError(key)
        return data[key]

    def __setitem__(self, key, value):
        _check_key(key)
        self._writable()[key] = value

    def __delitem__(self, key):
        data = self._existing()
        if data is None or key == CREATED_KEY:
            raise KeyError(key)
        self._live_session()    # (a change: refused after the request)
        del data[key]

    def __contains__(self, key):
        data = self._existing()
        return data is not None and key != CREATED_KEY and key in data

    def __iter__(self):
        data = self._existing()
        keys = [] if data is None else list(data)
        return iter([key for key in keys if key != CREATED_KEY])

    def __len__(self):
        return sum(1 for _ in self)

    def clear(self):
        for key in list(self):
            del self[key]

    def copy(self):
        """A plain dict of the session's keys and values."""
        return dict(self.items())

    def __repr__(self):
        return f'<PyramidSession {self.pkg_id!r} keys={list(self)!r}>'

    # -- Pyramid's ISession -----------------------------------------------

    def changed(self):
        data = self._existing()
        if data is not None:
            self._live_session()    # (refused after the request)
            data.changed()

    def invalidate(self):
        """Remove the client's data from every container; new client id.

        Afterwards this object is an empty, new session.
        """
        self._live_session().invalidate()
        self._data = None
        self.new = True
        self._created = clock.now()

    def regenerate(self):
        """Keep the data under a new client id (call it after login)."""
        self._live_session().regenerate()
        # A container may have stored a copy under the new id.
        self._data = None

    def flash(self, msg, queue='', allow_duplicate=True):
        key = FLASH_PREFIX + queue
        messages = list(self.get(key, ()))
        if allow_duplicate or msg not in messages:
            self[key] = messages + [msg]

    def pop_flash(self, queue=''):
        return self.pop(FLASH_PREFIX + queue, [])

    def peek_flash(self, queue=''):
        return self.get(FLASH_PREFIX + queue, [])

    def new_csrf_token(self):
        token = secrets.token_hex(20)
        self[CSRF_KEY] = token
        return token

    def get_csrf_token(self):
        token = self.get(CSRF_KEY)
        if not token:
            token = self.new_csrf_token()
        return token


def _check_key(key):
    if key == CREATED_KEY:
        raise KeyError(
            f'{CREATED_KEY!r} is reserved by the session; read'
            ' session.created instead')
