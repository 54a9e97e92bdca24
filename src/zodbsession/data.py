"""SessionData and SessionPkgData: one client's data in one record.

A client's whole session (every package's data and the last-access time)
is a single persistent record, so a new session costs one record and a
read costs one load. Package data objects are views onto that record.

The record's state is ``{'t': last_access, 'c': created,
'p': {pkg_id: {key: stored}}}``, plus ``'v': {name: stored}`` when values
other than package data were stored under a package id (zope.session's
SessionData is a plain mapping, and allows that), where ``stored`` comes
from ``zodbsession.values``. Concurrent commits
merge key by key (see ``zodbsession.merge``): changes to different keys
or packages both survive; the last-access time merges as a maximum.

A value read and changed in place (``data['cart'].append(item)``) is
found when the transaction commits (``zodbsession.inplace``) and stored
like a value set again; values only read keep their stored bytes.

A new session may be handed out before it is stored ("pending"): it is
stored by the callback given to ``store_on_change``, just before its
first change, so that a request that only reads creates nothing.
"""
from collections.abc import MutableMapping

import persistent
from zope.interface import implementer

from ZODB.POSException import ConflictError

from zodbsession import clock
from zodbsession import conflicts
from zodbsession import inplace
from zodbsession import values
from zodbsession.interfaces import ISessionDataCreated
from zodbsession.interfaces import ISessionPkgData
from zodbsession.merge import merge_session_states

# Marks a key whose current value lives, unpickled, in the "live" dict.
_LIVE = object()


@implementer(ISessionPkgData)
class SessionPkgData(MutableMapping):
    """One package's data of one client: a mapping of keys to values.

    Setting or deleting a key marks the session changed; so does
    ``changed()``, for values mutated in place.
    """

    def __init__(self):
        self._owner = None
        self._pkg_id = None
        self._own = ({}, {})

    @classmethod
    def _view(cls, owner, pkg_id):
        view = cls.__new__(cls)
        view._owner = owner
        view._pkg_id = pkg_id
        view._own = None
        return view

    def _dicts(self, create=False):
        """(stored, live) dicts of this package's data."""
        if self._owner is None:
            return self._own
        return self._owner._package_dicts(self._pkg_id, create)

    def changed(self):
        """Store this package's values again, after in-place mutation.

        (In-place changes are found at commit anyway; this stores every
        value read, changed or not. A package that holds nothing stays
        unstored.)
        """
        stored, live = self._dicts()
        for key in live:
            stored[key] = _LIVE
        if stored:
            self._mark_changed()

    def _mark_changed(self):
        # Only values set (or passed to changed(), or changed in place)
        # are pickled again: a value that was merely read keeps its
        # stored bytes, since its pickle may differ after a round trip
        # (sets of strings do), and a spurious difference would conflict
        # with concurrent requests.
        if self._owner is not None:
            self._owner._changed()

    def __getitem__(self, key):
        # (_dicts, written out: every value read runs this.)
        owner = self._owner
        stored, live = (self._own if owner is None
                        else owner._package_dicts(self._pkg_id, False))
        try:
            value = live[key]
        except KeyError:
            value = live[key] = values.decode(stored[key])
        if type(value) not in values.FLAT_TYPES and owner is not None:
            # It may be changed in place: compare it at commit.
            owner._watch()
        return value

    def get(self, key, default=None):
        # Mapping.get by way of __getitem__ and KeyError, without them.
        stored, live = self._dicts()
        if key in live:
            return live[key]
        if key not in stored:
            return default
        return self[key]

    def __setitem__(self, key, value):
        if self._owner is not None:
            self._owner._check_value(self._pkg_id, key, value)
        stored, live = self._dicts(create=True)
        stored[key] = _LIVE
        live[key] = value
        self._mark_changed()

    def __delitem__(self, key):
        stored, live = self._dicts()
        del stored[key]
        live.pop(key, None)
        self._mark_changed()

    def __contains__(self, key):
        return key in self._dicts()[0]

    def __iter__(self):
        return iter(list(self._dicts()[0]))

    def __len__(self):
        return len(self._dicts()[0])

    def __repr__(self):
        return f'<SessionPkgData {self._pkg_id!r} keys={list(self)!r}>'



def _encoded(pkg_id, stored, live):
    """The stored form of one package's values (``stored``: key -> stored
    form or _LIVE, ``live``: key -> value)."""
    encoded = {
        key: (values.encode(pkg_id, key, live[key]) if raw is _LIVE else raw)
        for key, raw in stored.items()}
    # What is written is what later changes in place compare with (the
    # live values stay: they are the stored ones).
    stored.update(encoded)
    return encoded


@implementer(ISessionDataCreated)
class SessionData(persistent.Persistent, MutableMapping):
    """All data of one client, by package id, and its last-access time."""

    # Values other than package data (see __setitem__): name -> stored
    # form (or _LIVE), and name -> value once read or set.
    _other_stored = _other_live = None

    # Volatile (never stored, gone when the object is unloaded):
    # the package views handed out, so each package has one ...
    _v_views = None
    # ... the packages handed out but not stored, (transaction key, set) ...
    _v_opened = None
    # ... the callback that stores a pending session on its first change
    _v_store = None
    # ... the callback told of a value handed out that may change in place
    # (on_mutable_read) ...
    _v_mutable_read = None
    # ... and (watch, generation) of the transaction whose commit looks
    # for in-place changes (zodbsession.inplace).
    _v_watched = None

    def __init__(self):
        self._last_access = 0
        self._created = int(clock.now())
        self._stored = {}
        self._live = {}

    # -- ISessionData -------------------------------------------------

    def getLastAccessTime(self):
        return self._last_access

    def setLastAccessTime(self, value):
        self._last_access = int(value)

    def getCreated(self):
        """Epoch time the session began (0 if unknown)."""
        return self._created

    lastAccessTime = property(getLastAccessTime, setLastAccessTime,
                              doc='Integer epoch time of the last access.')

    # -- mapping of package ids ---------------------------------------

    def _package_dicts(self, pkg_id, create):
        # (No KeyError caught: a new session's first value lands here.)
        stored = self._stored.get(pkg_id)
        if stored is not None:
            live = self._live.get(pkg_id)
            if live is not None:
                return stored, live
        if not create:
            return {}, {}
        # First: a pending session is stored before it changes, so that
        # a failure to store it leaves it as it was.
        self._changed()
        return (self._stored.setdefault(pkg_id, {}),
                self._live.setdefault(pkg_id, {}))

    def _changed(self):
        self._store_if_pending()
        self._p_changed = True

    def _store_if_pending(self):
        # A pending session is stored (by the ``store_on_change``
        # callback) before its first change; if storing fails, it stays
        # pending.
        store = self._v_store
        if store is not None:
            self._v_store = None
            try:
                store(self)
            except BaseException:
                self._v_store = store
                raise

    def store_on_change(self, store):
        """Call ``store(self)`` before the first change (once)."""
        self._v_store = store

    def release(self):
        """The request this data lived for is over (data no container
        keeps, as a cookie session's): drop the package views and the
        callbacks handed out, which refer back to it, so that it is freed
        without the garbage collector."""
        self._v_views = self._v_store = self._v_mutable_read = None

    def on_mutable_read(self, notify):
        """Call ``notify(self)`` when a value that may be changed in place
        is first handed out (once): for data that no connection watches,
        a RAM container's."""
        self._v_mutable_read = notify

    def _watch(self):
        self._notify_mutable_read()
        manager = self._transaction_manager()
        if manager is None:
            # Never stored (its values are all written when it is), kept
            # by a container that looks itself (RAM), or of a closed
            # connection (nothing of it will be committed).
            return
        watch = inplace.watch_of(manager)
        watched = self._v_watched
        if (watched is None or watched[0] is not watch
                or watched[1] != watch.generation):
            self._v_watched = (watch, watch.generation)
            watch.add(self)

    def _notify_mutable_read(self):
        notify = self._v_mutable_read
        if notify is not None:
            self._v_mutable_read = None
            notify(self)

    def keep_in_place_changes(self):
        """Mark changed the values read and changed in place (and only
        those: the others keep their stored bytes)."""
        found = False
        flat = values.FLAT_TYPES
        for pkg_id, live in self._live.items():
            stored = self._stored.get(pkg_id)
            if stored is None:
                continue
            for key, value in live.items():
                raw = stored.get(key, _LIVE)
                if (raw is not _LIVE and type(value) not in flat
                        and not values.unchanged(raw, value)):
                    stored[key] = _LIVE
                    found = True
        if found:
            self._p_changed = True

    def _view(self, pkg_id):
        views = self._v_views
        if views is None:
            views = self._v_views = {}
        view = views.get(pkg_id)
        if view is None:
            view = views[pkg_id] = SessionPkgData._view(self, pkg_id)
        return view

    def _opened(self):
        """Packages handed out in this transaction and not stored."""
        opened = self._v_opened
        if opened is None:
            return ()
        if opened[0] != self._transaction():
            # Handed out in an earlier transaction: they do not exist.
            self._v_opened = None
            return ()
        return opened[1]

    def _transaction(self):
        # Data never stored lives no longer than its request; stored
        # data outlives transactions in its connection's cache.
        manager = self._transaction_manager()
        return None if manager is None else inplace.transaction_key(manager)

    def _transaction_manager(self):
        """The manager of the transactions that may store this data."""
        jar = self._p_jar
        return None if jar is None else jar.transaction_manager

    def package(self, pkg_id):
        """The package's data, stored once a value is stored in it."""
        if pkg_id not in self._stored and pkg_id not in self._opened():
            if self._v_opened is None:
                self._v_opened = (self._transaction(), set())
            self._v_opened[1].add(pkg_id)
        # The view handed out before, else a new one (_view).
        views = self._v_views
        view = None if views is None else views.get(pkg_id)
        return view if view is not None else self._view(pkg_id)

    def __getitem__(self, pkg_id):
        if pkg_id not in self._stored and pkg_id not in self._opened():
            if self._other_stored and pkg_id in self._other_stored:
                return self._other_value(pkg_id)
            raise KeyError(pkg_id)
        return self._view(pkg_id)

    def _other_value(self, name):
        live = self._other_live
        if name not in live:
            live[name] = values.decode(self._other_stored[name])
        return live[name]

    def _set_other(self, name, value):
        """Keep a value that is not package data, as zope.session's
        SessionData (a plain mapping) does."""
        self._changed()
        if self._other_stored is None:
            self._other_stored, self._other_live = {}, {}
        self._stored.pop(name, None)
        self._live.pop(name, None)
        self._other_stored[name] = _LIVE
        self._other_live[name] = value

    def __setitem__(self, pkg_id, pkg_data):
        if not isinstance(pkg_data, SessionPkgData):
            self._set_other(pkg_id, pkg_data)
            return
        if self._other_stored:
            self._other_stored.pop(pkg_id, None)
            self._other_live.pop(pkg_id, None)
        contents = dict(pkg_data.items())
        self._changed()
        self._stored[pkg_id] = dict.fromkeys(contents, _LIVE)
        self._live[pkg_id] = contents
        self._adopt(pkg_id, pkg_data)

    def _adopt(self, pkg_id, pkg_data):
        """Make a package object given on its own (``data[pkg_id] =
        SessionPkgData()``) the view of ``pkg_id`` onto this session."""
        if pkg_data._owner is None:
            pkg_data._owner, pkg_data._pkg_id, pkg_data._own = (
                self, pkg_id, None)
            if self._v_views is None:
                self._v_views = {}
            self._v_views[pkg_id] = pkg_data

    def __delitem__(self, pkg_id):
        if self._other_stored and pkg_id in self._other_stored:
            del self._other_stored[pkg_id]
            self._other_live.pop(pkg_id, None)
        else:
            del self._stored[pkg_id]
            self._live.pop(pkg_id, None)
        self._changed()

    def __contains__(self, pkg_id):
        return pkg_id in self._stored or bool(
            self._other_stored and pkg_id in self._other_stored)

    def __iter__(self):
        return iter(list(self._stored) + list(self._other_stored or ()))

    def __len__(self):
        return len(self._stored) + len(self._other_stored or ())

    def __repr__(self):
        return f'<SessionData packages={list(self._stored)!r}>'

    def _check_value(self, pkg_id, key, value):
        """Reject a value this kind of session cannot store (hook)."""

    def to_plain(self):
        """{pkg_id: {key: value}}, every value unpickled."""
        return {pkg_id: dict(self[pkg_id]) for pkg_id in self._stored}

    @classmethod
    def from_plain(cls, packages, last_access=0, created=None):
        """A SessionData holding ``{pkg_id: {key: value}}`` (``created``
        None: created now)."""
        data = cls.__new__(cls)
        data._created = int(clock.now()) if created is None else created
        data.set_plain(packages, last_access)
        return data

    def set_plain(self, packages, last_access):
        """Hold ``{pkg_id: {key: value}}`` (the dicts are copied, not the
        values) and nothing else, last accessed at ``last_access``."""
        # (Built apart and set once: a persistent object's attributes
        # cost more to reach than a local's.)
        stored = {}
        live = {}
        for pkg_id, items in packages.items():
            stored[pkg_id] = dict.fromkeys(items, _LIVE)
            live[pkg_id] = dict(items)
        self._last_access = last_access
        self._stored = stored
        self._live = live

    # -- persistence ----------------------------------------------------

    def __getstate__(self):
        state = {
            't': self._last_access,
            'c': self._created,
            'p': {pkg_id: _encoded(pkg_id, stored, self._live[pkg_id])
                  for pkg_id, stored in self._stored.items()},
        }
        if self._other_stored:
            state['v'] = {
                name: (values.encode(None, name, self._other_live[name])
                       if raw is _LIVE else raw)
                for name, raw in self._other_stored.items()}
        return state

    def __setstate__(self, state):
        self._last_access = state.get('t', 0)
        self._created = state.get('c', 0)
        self._stored = {pkg_id: dict(items)
                        for pkg_id, items in state.get('p', {}).items()}
        self._live = {pkg_id: {} for pkg_id in self._stored}
        if state.get('v'):
            self._other_stored, self._other_live = dict(state['v']), {}
        else:
            # (Also when a savepoint's rollback sets an earlier state.)
            self._other_stored = self._other_live = None

    def _p_resolveConflict(self, old, committed, new):
        try:
            return merge_session_states(old, committed, new)
        except ConflictError as error:
            # ZODB drops the reason; keep it for the log (which key).
            conflicts.merge_failed(error)
            raise
