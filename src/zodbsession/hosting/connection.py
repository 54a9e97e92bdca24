"""A request's database connection, opened only when needed.

A request reaches the session site through a connection of its own, so
persistent objects never cross threads; the middleware's threads keep
theirs from one request to the next, brought up to date before each use.
"""
import logging
import threading
import weakref

from ZODB.POSException import ConnectionStateError

from zodbsession import inplace
from zodbsession.hosting.db import invalidation_barrier
from zodbsession.hosting.snapshot import snapshots
from zodbsession.site import site_of

log = logging.getLogger(__name__)


class ConnectionSite:
    """The site of one request: opens a connection only when needed.

    ``retrying``: the request runs again after a conflict.

    ``registry()`` is what the request's IComponentLookup adapter returns:
    the process's snapshot of the site; ``persistent_registry()`` is the
    database's own, through a connection opened on first use.
    """

    def __init__(self, db, transaction_manager=None, keep=False,
                 retrying=False):
        self.db = db
        self.transaction_manager = transaction_manager
        self.connection = None
        self._registry = None
        self._snapshot = None
        # Keep the connection for the thread's next request (its
        # transaction manager is the thread's own, which outlives it).
        self._keep = keep
        # Whether the request runs again after a conflict.
        self.retrying = retrying
        # Whether the connection was brought up to date with other
        # processes' commits when it was opened (``open``).
        self.up_to_date = True

    def registry(self):
        # One snapshot serves the whole request, even if a newer one is
        # taken meanwhile: the request sees one configuration.
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._snapshot = snapshots.get(self.db)
        return snapshot if snapshot is not None else (
            self.persistent_registry())

    def open(self, up_to_date=True):
        """The request's connection, opened on first use.

        It sees every transaction committed before now, other processes'
        included (over ZEO, after one round trip to the server). A kept
        connection (the thread's, from its last request) is brought up to
        date as a connection fresh from the pool is.

        ``up_to_date`` false, for a request that reads nothing another
        process may have written (see ``DatabaseContainer.bind``): the
        round trip is skipped, and the connection sees what this process
        knows of (every commit its own threads made, and those of other
        processes that reached it).
        """
        if self.connection is None:
            connection = None
            if self._keep:
                connection = _kept_connection(
                    self.db, self.transaction_manager, up_to_date)
            if connection is None:
                if up_to_date:
                    _wait_for_invalidations(self.db)
                if self._keep:
                    connection = _open_to_keep(
                        self.db, self.transaction_manager)
                    _keep_connection(self.db, connection)
                else:
                    connection = self.db.open(
                        transaction_manager=self.transaction_manager)
            self.connection = connection
            self.up_to_date = up_to_date or _barrier_of(self.db) is None
        return self.connection

    def persistent_registry(self):
        if self._registry is None:
            self._registry = site_of(self.open()).registry
        return self._registry

    @property
    def opened(self):
        return self.connection is not None

    def close_if_unchanged(self):
        """Close the connection now if the transaction has nothing of it
        to commit (the request only read through it).

        Then the transaction's end skips the connection's bookkeeping
        (polling for invalidations, which its next ``open`` does anyway);
        for a read-only request that is a good part of its cost.
        """
        connection = self.connection
        if connection is None:
            return
        if self.transaction_manager is not None:
            # A value changed in place is a change of the connection.
            inplace.keep_in_place_changes(self.transaction_manager)
        if self._keep:
            return      # it stays open, for the thread's next request
        try:
            connection.close()
        except ConnectionStateError:
            return      # joined: it ends with the transaction
        except Exception:
            self.close()    # the outage handling below
            return
        self.connection = self._registry = None

    def close(self):
        """Return the connection to the pool (after the transaction).

        Never raises: when a storage outage keeps the connection from
        closing cleanly, it is let go, and it stops following this
        thread's transactions, or every later request of the thread, even
        one that never touches a session, would poll the dead storage.
        """
        connection, self.connection, self._registry = (
            self.connection, None, None)
        if connection is None:
            return
        try:
            if self.transaction_manager is not None:
                inplace.forget_unfinished(self.transaction_manager)
            if self._keep and connection.opened:
                return      # kept for the thread's next request
            _forget_kept(self.db, connection)
            connection.close()
        except Exception:
            _forget_kept(self.db, connection)
            log.warning('dropping a session connection that could not be'
                        ' closed', exc_info=True)
            manager = connection.transaction_manager
            if manager is not None:
                try:
                    manager.unregisterSynch(connection)
                except KeyError:
                    pass


# -- connections kept per thread ------------------------------------------
#
# A request of the middleware runs in the thread's own transaction
# manager, which lives as long as the thread; so the thread keeps its
# connection from one request to the next instead of taking one from the
# pool and giving it back each time. Before each request uses it, it is
# brought up to date as a connection fresh from the pool would be.


class _KeptConnection(threading.local):
    # One (db, connection) per thread: most processes serve one database,
    # and a thread that serves another gives its connection back, so a
    # thread holds on to no database it no longer uses.
    entry = (None, None)


_kept = _KeptConnection()
_barriers = weakref.WeakKeyDictionary()      # db -> invalidation barrier
# The last (db, barrier) asked for: most processes serve one database, and
# a weak-key lookup costs a weak reference each time.
_last_barrier = (None, None)
_UNKNOWN = object()


def _remember_barrier(db, barrier):
    global _last_barrier
    _last_barrier = (db, barrier)


def _kept_connection(db, transaction_manager, up_to_date=True):
    """The thread's kept connection of ``db``, brought up to date (only
    with what this process knows of, when ``up_to_date`` is false); None
    if there is none (or it belongs to another manager)."""
    kept_db, connection = _kept.entry
    if kept_db is not db:
        if connection is not None:
            _kept.entry = (None, None)
            _close_quietly(connection)
        return None
    if (connection.transaction_manager is not transaction_manager
            or not connection.opened):
        _forget_kept(db, connection)
        return None
    try:
        if up_to_date:
            _wait_for_invalidations(db)
        # What a transaction's start tells its connections (ISynchronizer):
        # poll for what others committed since, and forget it.
        connection.newTransaction(None)
    except Exception:
        _forget_kept(db, connection)
        _close_quietly(connection)
        raise
    return connection


def _close_quietly(connection):
    # A connection given up (its database closed, or its storage gone):
    # closing it must not hide why.
    try:
        connection.close()
    except Exception:
        log.debug('closing a kept connection failed', exc_info=True)


def _wait_for_invalidations(db):
    # What other processes committed before now reaches this process
    # first (ZEO), so the connection's poll finds it.
    barrier = _barrier_of(db)
    if barrier is not None:
        barrier()


def _barrier_of(db):
    # The database's invalidation barrier; None: it needs none.
    last_db, barrier = _last_barrier
    if last_db is not db:
        barrier = _barriers.get(db, _UNKNOWN)
        if barrier is _UNKNOWN:
            barrier = _barriers[db] = invalidation_barrier(db)
        _remember_barrier(db, barrier)
    return barrier


_pool_lock = threading.Lock()


def _open_to_keep(db, transaction_manager):
    """A new connection for the thread to keep.

    Every thread of a server keeps one, so the database's pool is made
    to hold them all: ZODB logs a warning (a critical one past twice the
    pool's size, 7 by default) for each connection open beyond it, which
    would otherwise be every kept connection past the seventh thread's,
    at a server's default of 8 threads. A thread opens a connection to
    keep once, so the count is cheap.
    """
    with _pool_lock:
        open_now = len(db.connectionDebugInfo())
        if open_now >= db.getPoolSize():
            db.setPoolSize(open_now + 1)
        return db.open(transaction_manager=transaction_manager)


def _keep_connection(db, connection):
    _kept.entry = (db, connection)


def _forget_kept(db, connection):
    kept_db, kept = _kept.entry
    if kept_db is db and kept is connection:
        _kept.entry = (None, None)
