"""RAMSessionDataContainer: sessions in process memory, transactional.

All threads of a process share one store per container. Each transaction
works on private copies of the sessions it uses; when it commits, its
changes are merged into the store with the same three-way merge ZODB uses
for SessionData, so concurrent requests behave as they do on ZODB. An
abort simply forgets the copies. No ZODB connection is involved.
"""
import functools
import secrets
import threading
import weakref

import persistent
import transaction
from ZODB.POSException import ConflictError
from zope.interface import implementer

from zodbsession import clock
from zodbsession import expiry
from zodbsession.container import IMPLICIT_SWEEP_LIMIT
from zodbsession.container import client_key
from zodbsession.data import SessionData
from zodbsession.interfaces import IPendingSessions
from zodbsession.interfaces import IRequestBoundContainer
from zodbsession.context import context_of
from zodbsession.merge import merge_session_states

_EMPTY_STATE = {'t': 0, 'p': {}}


class _Entry:
    __slots__ = ('version', 'state', 'end')

    def __init__(self, version, state, end):
        self.version, self.state, self.end = version, state, end


class RAMStore:
    """The process-wide data of one RAM container."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entries = {}        # client key -> _Entry
        self.slices = {}         # slice end -> set of client keys
        self.version = 0

    def read(self, key):
        with self.lock:
            entry = self.entries.get(key)
            return (None, None) if entry is None else (
                entry.version, entry.state)

    # Called with the lock held.

    def _put(self, key, state, length, now, timeout, resolution,
             implicit_sweep=True):
        self.version += 1
        end = expiry.slice_end(state['t'], length)
        old = self.entries.get(key)
        if old is not None and old.end != end:
            self.slices.get(old.end, set()).discard(key)
        if end not in self.slices:
            self.slices[end] = set()
            if implicit_sweep:
                self._drop_expired(
                    now, timeout, resolution, IMPLICIT_SWEEP_LIMIT)
        self.slices[end].add(key)
        self.entries[key] = _Entry(self.version, state, end)

    def _remove(self, key):
        old = self.entries.pop(key, None)
        if old is not None:
            self.slices.get(old.end, set()).discard(key)

    def _drop_expired(self, now, timeout, resolution, limit=None):
        oldest = expiry.oldest_live_end(now, timeout, resolution)
        if oldest is None:
            return 0
        ends = sorted(end for end in self.slices if end <= oldest)[:limit]
        for end in ends:
            for key in self.slices.pop(end):
                entry = self.entries.get(key)
                if entry is not None and entry.end == end:
                    del self.entries[key]
        return len(ends)

    def sweep(self, now, timeout, resolution):
        with self.lock:
            return self._drop_expired(now, timeout, resolution)


_stores = {}
_stores_lock = threading.Lock()


def _store_for(key):
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = RAMStore()
        return store


class _Tracked:
    __slots__ = ('base_version', 'base_state', 'data')

    def __init__(self, base_version, base_state, data):
        self.base_version = base_version
        self.base_state = base_state
        self.data = data


# The RAMTransaction of each store now in use, by transaction manager:
# a request's view of a container and the container used directly (as
# zope.session code does, container[client_id] beside ISession(request))
# work on the same copies in one transaction.
_current = weakref.WeakKeyDictionary()    # manager -> {store key: RAMTransaction}
_current_lock = threading.Lock()


def _current_of(manager):
    if isinstance(manager, transaction.ThreadTransactionManager):
        manager = manager.manager       # each thread's own
    current = _current.get(manager)
    if current is None:
        with _current_lock:
            current = _current.setdefault(manager, {})
    return current


class RAMTransaction:
    """The data manager of one container in one transaction.

    It takes part in the transaction itself (``joined``), or, made by a
    request's view (``view``), through the request's one data manager
    once something changes. Until it ends it is the current one of its
    store for its transaction manager.
    """

    def __init__(self, container, store, transaction_manager, view=None):
        self.container = container
        self.store = store
        self.transaction_manager = transaction_manager
        self.view = view
        self.joined = False
        self.tracked = {}     # client key -> _Tracked (None: deleted)
        self.held = {}        # client key -> pending SessionData
        self._changes = None
        self._locked = False
        self._current = _current_of(transaction_manager)

    def make_current(self):
        """Be the current one of its store for its manager (once it takes
        part, or a request's view holds it)."""
        self._current[self.container.key] = self

    def changing(self, data=None):
        """A change is about to be made: make sure the commit looks."""
        if not self.joined:
            self.view.enlist()

    def end(self):
        """No longer the current one of its store."""
        if self._current.get(self.container.key) is self:
            del self._current[self.container.key]

    # -- reads and writes of the transaction ------------------------------

    def load(self, key):
        if key in self.tracked:
            tracked = self.tracked[key]
            return None if tracked is None else tracked.data
        version, state = self.store.read(key)
        if state is None:
            return None
        data = SessionData.__new__(SessionData)
        data.__setstate__(state)
        self.tracked[key] = _Tracked(version, state, data)
        if not self.joined:
            # A request's, not taking part yet: its first change, or a
            # value it hands out that may be changed in place, makes the
            # commit look at it, however it was reached.
            data.store_on_change(self.changing)
            data.on_mutable_read(self.changing)
        return data

    def _base(self, key):
        tracked = self.tracked.get(key)
        if tracked is not None:
            return tracked.base_version, tracked.base_state
        return self.store.read(key)

    def store_data(self, key, data):
        version, state = self._base(key)
        self.tracked[key] = _Tracked(version, state, data)
        self.held.pop(key, None)

    def forget_expired(self, key):
        """The loaded session had expired: what replaces it starts from
        nothing, even if a sweep removes the expired one meanwhile."""
        self.tracked[key] = _Tracked(self.tracked[key].base_version,
                                     None, None)

    def delete(self, key):
        if key not in self.tracked:
            self.store_data(key, None)
        self.tracked[key] = None

    # -- two-phase commit ---------------------------------------------------

    def sortKey(self):
        return f'zodbsession.ram:{self.container.key}'

    def successor(self, revert=False):
        """After this one committed: the RAMTransaction in which the
        request's next transaction goes on with the same sessions (a
        request that ``persist()``-ed and changes them again). ``revert``:
        before this one aborts (or a savepoint rolls back to before it
        took part), the sessions handed out get their stored values back
        in place, so that what the application holds counts again."""
        following = RAMTransaction(self.container, self.store,
                                   self.transaction_manager, view=self.view)
        for key, tracked in self.tracked.items():
            if tracked is None or tracked.data is None:
                continue
            version, state = self.store.read(key)
            if state is None:
                continue
            if revert:
                tracked.data.__setstate__(state)
            following.tracked[key] = _Tracked(version, state, tracked.data)
            tracked.data.store_on_change(following.changing)
            tracked.data.on_mutable_read(following.changing)
        following.make_current()
        return following

    def savepoint(self):
        """The sessions of the transaction as they are now, to go back to
        (``rollback``): each session handed out keeps its identity and
        gets its values of now back."""
        states = {}
        for key, tracked in self.tracked.items():
            if tracked is not None and tracked.data is not None:
                tracked.data.keep_in_place_changes()
                states[key] = tracked.data.__getstate__()
        held_states = {key: data.__getstate__()
                       for key, data in self.held.items()}
        return _RAMSavepoint(self, dict(self.tracked), states,
                             dict(self.held), held_states)

    def store_held(self, key, data):
        """Store a held session before its first change (one that a
        savepoint's rollback made pending again), as the container's
        ``__setitem__`` stores one."""
        data.setLastAccessTime(clock.now())
        self.changing()
        self.store_data(key, data)

    def abort(self, txn):
        self.end()
        self._release()
        self.tracked.clear()
        self.held.clear()

    def tpc_begin(self, txn):
        pass

    def commit(self, txn):
        pass

    def tpc_vote(self, txn):
        # New states are computed before locking: an unpicklable value
        # fails here, and the store is untouched.
        pending = []
        for key, tracked in self.tracked.items():
            if tracked is None or tracked.data is None:
                continue
            # Values changed in place are changes too.
            tracked.data.keep_in_place_changes()
            new_state = tracked.data.__getstate__()
            if new_state != tracked.base_state:
                pending.append((key, tracked, new_state))
        self.store.lock.acquire()
        self._locked = True
        changes = []
        for key, tracked, new_state in pending:
            current = self.store.entries.get(key)
            current_version = None if current is None else current.version
            if current_version != tracked.base_version:
                if current is None:
                    if tracked.base_state is None:   # replaced expired data
                        changes.append((key, new_state))
                        continue
                    raise ConflictError(
                        'the session was removed by another transaction')
                new_state = merge_session_states(
                    tracked.base_state or _EMPTY_STATE, current.state,
                    new_state)
            changes.append((key, new_state))
        for key, tracked in self.tracked.items():
            if tracked is None:
                changes.append((key, None))
        self._changes = changes

    def tpc_finish(self, txn):
        self.end()
        try:
            container = self.container
            timeout, resolution = container.timeout, container.resolution
            length = expiry.slice_length(timeout, resolution)
            now = clock.now()
            for key, state in self._changes:
                if state is None:
                    self.store._remove(key)
                else:
                    self.store._put(
                        key, state, length, now, timeout, resolution,
                        not container.disable_implicit_sweeps)
        finally:
            self._release()

    def tpc_abort(self, txn):
        self.end()
        self._release()
        self.tracked.clear()
        self.held.clear()

    def sessions_handed_out(self):
        """The SessionData copies this transaction handed out (loaded or
        held)."""
        loaded = [tracked.data for tracked in self.tracked.values()
                  if tracked is not None and tracked.data is not None]
        return loaded + list(self.held.values())

    def _release(self):
        self._changes = None
        if self._locked:
            self._locked = False
            self.store.lock.release()


class _RAMSavepoint:
    """A savepoint of a RAMTransaction; it can be rolled back to more than
    once."""

    def __init__(self, ram_transaction, tracked, states, held,
                 held_states):
        self.ram_transaction = ram_transaction
        self.tracked = tracked
        self.states = states
        self.held = held
        self.held_states = held_states

    def rollback(self):
        ram_transaction = self.ram_transaction
        for key, data in self.held.items():
            later = ram_transaction.tracked.get(key)
            if later is not None and later.data is data:
                # Stored since: pending again, with its values of then,
                # and stored by its next change (the Session that held it
                # let go of it when it was stored).
                data.__setstate__(self.held_states[key])
                data.store_on_change(functools.partial(
                    ram_transaction.store_held, key))
        tracked = dict(self.tracked)
        for key, later in ram_transaction.tracked.items():
            if key in tracked or later is None or later.data is None:
                continue
            if later.base_state is not None:
                # Reached since: it is as stored again (the object handed
                # out stays the one the container returns).
                later.data.__setstate__(later.base_state)
                tracked[key] = later
        ram_transaction.tracked = tracked
        ram_transaction.held = dict(self.held)
        for key, state in self.states.items():
            tracked[key].data.__setstate__(state)


class _RAMMapping:
    """The mapping of client ids to session data, read and written
    through the data manager ``_transaction()`` returns.

    Mappings of one store in one transaction manager's transactions are
    equal: a snapshot of the site holds a copy of the container per
    package id it is registered for, and ``bind()`` makes a new one for
    each lookup; a request's session must see one container in them.
    """

    def _identity(self):
        return self.key, None

    def __eq__(self, other):
        return (isinstance(other, _RAMMapping)
                and other._identity() == self._identity())

    def __hash__(self):
        return hash(self._identity())

    def _live(self, client_id, now):
        key = client_key(client_id)
        txn = self._transaction()
        data = txn.load(key)
        if data is not None and expiry.session_ended(data, now, self):
            txn.forget_expired(key)
            data = None
        return txn, key, data

    def __getitem__(self, client_id):
        now = clock.now()
        txn, key, data = self._live(client_id, now)
        if data is None:
            held = txn.held.get(key)
            if held is None:
                raise KeyError(client_id)
            return held
        if expiry.needs_touch(data.getLastAccessTime(), now, self):
            txn.changing()
            data.setLastAccessTime(now)
        return data

    def get(self, client_id, default=None):
        try:
            return self[client_id]
        except KeyError:
            return default

    def __contains__(self, client_id):
        return self._live(client_id, clock.now())[2] is not None

    def __setitem__(self, client_id, session_data):
        session_data.setLastAccessTime(clock.now())
        txn = self._transaction()
        txn.changing()
        txn.store_data(client_key(client_id), session_data)

    def new_session_data(self):
        return SessionData()

    def hold(self, client_id, session_data):
        txn = self._transaction()
        txn.changing()          # the hold ends with the transaction
        txn.held[client_key(client_id)] = session_data

    def __delitem__(self, client_id):
        txn, key, data = self._live(client_id, clock.now())
        if data is None:
            raise KeyError(client_id)
        txn.changing()
        txn.delete(key)


@implementer(IPendingSessions, IRequestBoundContainer)
class RAMSessionDataContainer(_RAMMapping, expiry.ExpirySettings,
                              persistent.Persistent):
    """Sessions in the memory of this process, shared by its threads.

    The container object itself may be stored in a ZODB (for instance as
    a persistent utility registration); its data never is, and is lost
    when the process ends.
    """

    # zope.session's switch: True leaves all sweeping to sweep().
    disable_implicit_sweeps = False

    def __init__(self, timeout=3600, resolution=300, lifetime=0):
        self.timeout = timeout
        self.resolution = resolution
        self.lifetime = lifetime
        self.key = secrets.token_hex(16)

    @property
    def _store(self):
        return _store_for(self.key)

    def bind(self, request):
        """This container as ``request`` sees it: its reads join no
        transaction, and its changes take part in the request's (pyramid_tm
        may run an explicit one) through the request's one data manager
        (``zodbsession.context``)."""
        return context_of(request).view(
            self, _RequestRAMContainer, key=('zodbsession.ram', self.key))

    def _transaction(self, manager=None):
        """The RAMTransaction of this container's store now: a request's
        (see bind), else one that takes part in the manager's current
        transaction itself."""
        manager = manager if manager is not None else transaction.manager
        current = _current_of(manager).get(self.key)
        if current is not None:
            return current
        data_manager = RAMTransaction(self, self._store, manager)
        manager.get().join(data_manager)
        data_manager.joined = True
        data_manager.make_current()
        return data_manager

    def sweep(self):
        """Remove expired sessions (see ``sweep_expired``); returns None,
        as zope.session's does."""
        self.sweep_expired()

    def sweep_expired(self):
        """Remove expired sessions, costing what expires; return the
        number of time slices removed."""
        now = clock.now()
        expiry.swept(self, now)
        return self._store.sweep(now, self.timeout, self.resolution)

    def count(self):
        return len(self._store.entries)


@implementer(IPendingSessions)
class _RequestRAMContainer(_RAMMapping):
    """A RAM container as one request sees it.

    Its reads join no transaction. The store's RAMTransaction it makes
    takes part in the request's transaction through the request's one
    data manager once something changes: a value stored or deleted, a
    session held, a last access due, or a session handed out whose values
    may be changed in place. So a request that only reads runs no
    two-phase commit, and one whose only changes are in request-bound
    containers commits them alone. The container used directly in the
    same transaction works on the same RAMTransaction.
    """

    def __init__(self, container, context):
        self.container = container
        self.transaction_manager = context.transaction_manager_for(container)
        self._context = context
        self._context_id = id(context)
        self._enlisted = False
        context.on_end(self._request_ended)

    # The container's settings and store, as the container has them now.

    key = property(lambda self: self.container.key)
    timeout = property(lambda self: self.container.timeout)
    resolution = property(lambda self: self.container.resolution)
    lifetime = property(lambda self: self.container.lifetime)
    disable_implicit_sweeps = property(
        lambda self: self.container.disable_implicit_sweeps)
    _swept_at = property(lambda self: self.container._swept_at)

    def sweep(self):
        return self.container.sweep()

    def sweep_expired(self):
        return self.container.sweep_expired()

    def count(self):
        return self.container.count()

    def _identity(self):
        return self.container.key, self._context_id

    def _transaction(self):
        current = _current_of(self.transaction_manager).get(
            self.container.key)
        if current is None:
            current = RAMTransaction(self.container, self.container._store,
                                     self.transaction_manager, view=self)
            current.make_current()
            if not self._context.hosted:
                # No host ends the request: the transaction that ends
                # first ends these copies too.
                self.enlist()
        return current

    def enlist(self):
        if not self._enlisted:
            self._enlisted = True
            self._context.join(self, self.transaction_manager)

    def _current(self):
        current = _current_of(self.transaction_manager).get(
            self.container.key)
        return current if current is not None and (
            current.view is self) else None

    def _request_ended(self):
        # Nothing of it was committed: its copies go, and let go of what
        # they refer to (their package views, their callbacks into the
        # transaction), so that reference counting frees them.
        current = self._current()
        if current is not None:
            handed_out = current.sessions_handed_out()
            current.abort(None)
            for data in handed_out:
                data.release()
        self._enlisted = False

    # -- its part in the transaction (zodbsession.context) ------------

    def abort(self, txn):
        self._enlisted = False
        current = self._current()
        if current is not None:
            if self._context.hosted:
                # The request may go on with the sessions it holds (its
                # host ends the copies with the request).
                current.successor(revert=True)
            current.abort(txn)

    def savepoint(self):
        return self._transaction().savepoint()

    def tpc_vote(self, txn):
        self._transaction().tpc_vote(txn)

    def tpc_finish(self, txn):
        self._enlisted = False
        current = self._current()
        if current is not None:
            current.tpc_finish(txn)
            # The request may go on with its sessions (after persist()).
            current.successor()

    def tpc_abort(self, txn):
        self._enlisted = False
        current = self._current()
        if current is not None:
            current.tpc_abort(txn)
