"""``flask.session``: Flask's session over zodbsession packages.

The session is the package data ``ISession(request)[pkg_id]``: each key
set or deleted is one change of the package, so concurrent requests of
one client that change different keys both keep theirs. A permanent
session's data lives in a second package (``pkg_id + '.permanent'``)
whose container keeps it for ``PERMANENT_SESSION_LIFETIME``; the others
expire after the idle timeout. Reading creates nothing.
"""
from flask.sessions import SessionMixin

from zodbsession.interfaces import IClientIdManager
from zodbsession.interfaces import ICookieClientIdManager
from zodbsession.interfaces import ISession
from zodbsession.context import registry_for
from zodbsession.lookup import utility_in

PERMANENT_SUFFIX = '.permanent'


class FlaskSession(SessionMixin):
    """Flask's session of one request (a mutable mapping).

    ``modified`` is set by every change through the mapping, as Flask
    defines it; a stored list or dict changed in place is stored at
    commit whether or not ``modified`` was set (setting it stores the
    package's values again, as Flask asks). ``permanent``
    moves the data to the package that lives for
    ``PERMANENT_SESSION_LIFETIME``. ``regenerate()`` keeps the data under
    a new client id (after login); ``invalidate()`` drops it and the id.
    """

    def __init__(self, request, pkg_id):
        self.request = request
        self.pkg_id = pkg_id
        self._session = ISession(request)
        self._data = None
        self._looked = False
        self._permanent = False
        self._modified = False
        self.restore_values = False     # set by modified = True
        self.accessed = False
        self._new = True

    # -- where the data is ------------------------------------------------

    def _package(self, permanent):
        return self.pkg_id + PERMANENT_SUFFIX if permanent else self.pkg_id

    def _existing(self):
        self.accessed = True
        if not self._looked:
            self._looked = True
            # A session made permanent leaves its first package empty.
            for permanent in (False, True):
                data = self._session.get(self._package(permanent))
                if data is not None and (len(data) or self._data is None):
                    self._data, self._permanent = data, permanent
                    if len(data):
                        break
            self._new = self._data is None
        return self._data

    def _writable(self):
        data = self._existing()
        if data is None:
            data = self._data = self._session[
                self._package(self._permanent)]
        self._modified = True
        return data

    @property
    def new(self):
        """Whether the client had no session when the request came."""
        self._existing()
        return self._new

    @property
    def modified(self):
        return self._modified

    @modified.setter
    def modified(self, value):
        self._modified = bool(value)
        self.restore_values = bool(value)

    @property
    def permanent(self):
        self._existing()
        return self._permanent

    @permanent.setter
    def permanent(self, value):
        value = bool(value)
        data = self._existing()
        if value == self._permanent:
            return
        self._permanent = value
        if data is None:
            return
        moved = {key: data[key] for key in data}
        data.clear()
        self._data = None
        target = self._writable()
        target.update(moved)

    # -- the mapping ----------------------------------------------------------

    def __getitem__(self, key):
        data = self._existing()
        if data is None:
            raise KeyError(key)
        return data[key]

    def get(self, key, default=None):
        data = self._existing()
        return default if data is None else data.get(key, default)

    def __setitem__(self, key, value):
        self._writable()[key] = value

    def __delitem__(self, key):
        data = self._existing()
        if data is None:
            raise KeyError(key)
        del data[key]
        self._modified = True

    def __contains__(self, key):
        data = self._existing()
        return data is not None and key in data

    def __iter__(self):
        data = self._existing()
        return iter([] if data is None else list(data))

    def __len__(self):
        data = self._existing()
        return 0 if data is None else len(data)

    def clear(self):
        data = self._existing()
        if data is not None and len(data):
            data.clear()
            self._modified = True

    def __repr__(self):
        return f'<FlaskSession {self.pkg_id!r} keys={list(self)!r}>'

    # -- beyond Flask -------------------------------------------------------

    @property
    def client_id(self):
        """The client's zodbsession id (issuing one if it has none)."""
        return self._session.client_id

    def regenerate(self):
        """Keep the data under a new client id: call it after login, so
        that an id somebody planted before is worth nothing."""
        self._session.regenerate()
        # Found again under the new id (a container may store a copy).
        self._data, self._looked = None, False
        self._existing()
        self._modified = True

    def invalidate(self):
        """Drop the client's data (in every package) and its id."""
        self._session.invalidate()
        self._data, self._looked, self._permanent = None, True, False
        self._modified = True

    def restore(self):
        """After ``modified = True``: store the values read this request
        again (they may have been changed in place)."""
        if self.restore_values and self._data is not None:
            self._data.changed()

    @property
    def loaded_permanent(self):
        """Whether the request found (or made) a permanent session; asks
        nothing of the storage."""
        return self._looked and self._permanent

    def renew_cookie(self, lifetime):
        """Send the client id cookie again, lasting ``lifetime`` seconds
        (a permanent session's cookie outlives the browser session)."""
        client_id = self._session.existing_client_id()
        manager = utility_in(registry_for(self.request), IClientIdManager)
        if client_id is not None and ICookieClientIdManager.providedBy(
                manager):
            manager.setRequestId(self.request, client_id, lifetime=lifetime)
