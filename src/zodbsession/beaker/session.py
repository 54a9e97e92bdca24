"""``environ['beaker.session']``: Beaker's session API over one package.

The session is loaded on first use (a request that never touches it
costs nothing) into a working copy (``zodbsession.workingcopy``); what
the request changed reaches the package's data, key by key, when it ends
after ``save()`` (or with ``auto``), or at once with ``persist()``, and
is stored when the request's transaction commits. Reading creates
nothing: a client without a session gets no cookie and no record.
"""
from collections.abc import MutableMapping

from zodbsession import clock
from zodbsession.interfaces import ISession
from zodbsession.context import container_for
from zodbsession.workingcopy import WorkingCopy

# Kept with the data, hidden from the mapping, as Beaker names it.
CREATED_KEY = '_creation_time'


class BeakerSession(MutableMapping):
    """Beaker's session of one request: a dict, and ``save()``,
    ``persist()``, ``delete()``, ``invalidate()``, ``regenerate_id()``,
    ``revert()``, ``id``, ``is_new``, ``created``, ``last_accessed``."""

    def __init__(self, request, pkg_id, auto=False):
        self.request = request
        self.pkg_id = pkg_id
        self.auto = auto
        self._session = ISession(request)
        self._copy = None
        self._saving = False
        self._deleted = False
        self._created = None
        self._last_accessed = None
        self.is_new = True

    # -- loading --------------------------------------------------------

    def _values(self):
        if self._copy is None:
            data = self._session.get(self.pkg_id)
            self.is_new = data is None
            if data is None:
                self._created = clock.now()
            else:
                self._created = data.get(CREATED_KEY, clock.now())
                self._last_accessed = self._stored_last_access()
            self._copy = WorkingCopy(_without_created(data))
        return self._copy.values

    def _stored_last_access(self):
        client_id = self._session.existing_client_id()
        record = container_for(self.pkg_id, self.request).get(client_id)
        return record.getLastAccessTime() if record is not None else None

    # -- the dict ---------------------------------------------------------

    def __getitem__(self, key):
        return self._values()[key]

    def __setitem__(self, key, value):
        if key == CREATED_KEY:
            raise KeyError(f'{CREATED_KEY!r} is kept by the session; read'
                           ' session.created instead')
        self._values()[key] = value

    def __delitem__(self, key):
        del self._values()[key]

    def __contains__(self, key):
        return key in self._values()

    def __iter__(self):
        return iter(list(self._values()))

    def __len__(self):
        return len(self._values())

    def __repr__(self):
        return f'<BeakerSession {self.pkg_id!r} keys={list(self)!r}>'

    def accessed(self):
        """Whether the request used the session."""
        return self._copy is not None

    # -- Beaker's session API ---------------------------------------------

    @property
    def id(self):
        """The client's session id (issued now if it has none)."""
        return self._session.client_id

    @property
    def created(self):
        """Epoch seconds when the session began."""
        self._values()
        return self._created

    @property
    def last_accessed(self):
        """Epoch seconds of the session's last recorded use (recorded at
        most once per the container's ``resolution``, so this request's
        when it came later than that), None for a new session."""
        self._values()
        return self._last_accessed

    def save(self, accessed_only=False):
        """Keep the request's changes: they are stored when it ends (and
        its transaction commits)."""
        self._values()
        self._saving = True
        self._deleted = False

    def persist(self):
        """Store the request's changes now, committing the transaction."""
        self._write()
        self._session.persist()

    def revert(self):
        """Undo the changes the request made since the session loaded."""
        if self._copy is not None:
            self._copy.revert()

    def delete(self):
        """Remove the session's data and expire its cookie."""
        self._session.delete()
        self._values().clear()
        self._copy.forget_loaded()
        self._deleted = True
        self._saving = False

    def invalidate(self):
        """End this session and go on in a new, empty one (a new id)."""
        self._session.invalidate()
        self._values().clear()
        self._copy.forget_loaded()
        self.is_new = True
        self._created = clock.now()
        self._last_accessed = None
        self._deleted = False

    def regenerate_id(self):
        """Keep the data under a new session id (call it after login)."""
        self._session.regenerate()

    def lock(self):
        raise NotImplementedError(
            'zodbsession sessions need no lock(): concurrent requests that'
            ' change different keys both keep their change, and those that'
            ' change the same key are retried; remove the call')

    unlock = lock

    # -- the end of the request ---------------------------------------------

    def finish(self):
        """Called when the application has answered: apply what is to be
        saved (after ``save()``, or with ``auto`` when accessed)."""
        if self._deleted or self._copy is None:
            return
        if self._saving or self.auto:
            self._write()

    def _write(self):
        copy = self._copy
        if copy is None:
            return
        changes = copy.changes()
        if not (changes[0] or changes[1]) and not (
                self._saving and self.is_new):
            return
        data = self._session[self.pkg_id]
        if CREATED_KEY not in data:
            data[CREATED_KEY] = self._created
        copy.write(data, changes)
        self.is_new = False


def _without_created(data):
    if data is None:
        return None
    return {key: data[key] for key in data if key != CREATED_KEY}
