"""The session site: what a database holds besides the sessions.

The database root holds a ``SessionSite``: a persistent component registry
with the client id manager (its settings and secret) and the containers,
so every process of a cluster shares them and they survive restarts. A
site administrator registers named containers there too.

A request reaches the registry through its own connection
(``ConnectionSite``), so persistent objects never cross threads.
"""
import logging
import threading
import time
import weakref

import persistent
import transaction
import zope.component
import zope.schema
from zope.interface import implementer
from ZODB.POSException import ConnectionStateError
from zope.component.persistentregistry import PersistentComponents
from zope.interface.interfaces import ComponentLookupError

from zodbsession import inplace
from zodbsession.clientid import CookieClientIdManager
from zodbsession.hosting.coldstart import retry_races
from zodbsession.container import PersistentSessionDataContainer
from zodbsession.cookiecontainer import CookieSessionDataContainer
from zodbsession.hosting.db import invalidation_barrier
from zodbsession.interfaces import IClientIdManager
from zodbsession.interfaces import ICookieClientIdManager
from zodbsession.interfaces import IRequestBoundContainer
from zodbsession.interfaces import ISessionDataContainer
from zodbsession.lookup import FrozenRegistry
from zodbsession.ram import RAMSessionDataContainer
from zodbsession.environkeys import SITE_KEY

log = logging.getLogger(__name__)

ROOT_KEY = 'zodbsession'

CONTAINER_SETTINGS = ('timeout', 'resolution', 'lifetime',
                      'disable_implicit_sweeps')
# The client id manager's settings: its schema's fields, and its secret.
MANAGER_SETTINGS = tuple(zope.schema.getFieldNames(ICookieClientIdManager)) + (
    'secret',)


class SessionSite(persistent.Persistent):
    """The persistent registry of one session database."""

    def __init__(self):
        self.registry = PersistentComponents(
            'zodbsession', bases=(zope.component.getGlobalSiteManager(),))
        self.registry.registerUtility(
            CookieClientIdManager(), IClientIdManager)
        self.registry.registerUtility(
            PersistentSessionDataContainer(), ISessionDataContainer)

    @property
    def client_id_manager(self):
        return self.registry.getUtility(IClientIdManager)

    @property
    def container(self):
        """The unnamed container."""
        return self.registry.getUtility(ISessionDataContainer)

    def configure(self, **settings):
        """Apply client id manager and unnamed-container settings.

        Only differing values are written. Unknown names raise TypeError.
        """
        manager = self.client_id_manager
        for name, value in settings.items():
            if value is None:
                continue
            if name in CONTAINER_SETTINGS:
                target = self.container
            elif name in MANAGER_SETTINGS:
                target = manager
            else:
                raise TypeError(
                    f'unknown session setting {name!r}; known:'
                    f' {", ".join(sorted(CONTAINER_SETTINGS + MANAGER_SETTINGS))}')
            if name == 'secret':
                current = manager.secret
                value = tuple(value) if isinstance(value, (list, tuple)) \
                    else (value,)
            else:
                current = getattr(target, name)
            if current != value:
                setattr(target, name, value)

    def register_container(self, pkg_id, container):
        """Keep ``pkg_id``'s data in ``container`` from now on."""
        self.registry.registerUtility(
            container, ISessionDataContainer, name=pkg_id)

    def unregister_container(self, pkg_id):
        if not self.registry.unregisterUtility(
                provided=ISessionDataContainer, name=pkg_id):
            raise ComponentLookupError(
                f'no container is registered for {pkg_id!r}')

    def containers(self):
        """{name: container}; the unnamed one under ''."""
        return dict(self.registry.getUtilitiesFor(ISessionDataContainer))


def site_of(connection):
    """The SessionSite of a connection's database (KeyError if none)."""
    return connection.root()[ROOT_KEY]


def run_in_transaction(db, function):
    """``function(connection)`` in a transaction of its own, committed.

    Administrative changes (bootstrap, registrations) retry conflicts here
    (for up to ``coldstart.STARTUP_BUDGET`` seconds, with jittered
    backoff: every worker of a cluster bootstraps the same site when they
    start together); requests have the middleware's retry loop.
    """
    def attempt():
        with db.transaction() as connection:
            return function(connection)
    return retry_races(attempt, 'a session site change')


def ensure_site(db, **settings):
    """Create the database's SessionSite if missing; apply settings.

    Safe when several processes start at once: a conflict is retried.
    """
    def bootstrap(connection):
        root = connection.root()
        if ROOT_KEY not in root:
            root[ROOT_KEY] = SessionSite()
        root[ROOT_KEY].configure(**settings)
    run_in_transaction(db, bootstrap)
    snapshots.forget(db)


def change_site(db, change):
    """Run ``change(site)`` in its own transaction and commit it.

    This process sees the change at once; other processes within
    ``SNAPSHOT_TTL`` seconds.
    """
    try:
        return run_in_transaction(
            db, lambda connection: change(site_of(connection)))
    finally:
        snapshots.forget(db)


def ensure_container(db, pkg_id, make, matches):
    """Keep ``pkg_id``'s data in the container ``make()`` returns, unless
    the one registered for it already ``matches(container)``: a host
    that configures a package's container at every start writes only
    when its configuration changed (a new container starts empty)."""
    def change(site):
        current = site.containers().get(pkg_id)
        if current is None or not matches(current):
            site.register_container(pkg_id, make())
    change_site(db, change)


# -- the process-wide snapshot ----------------------------------------------
#
# Most requests need only the site's configuration: which container serves
# a package, the client id manager's settings, a cookie container's keys.
# A snapshot of it, in plain (non-persistent) objects, lets such requests
# run without a database connection; only containers whose data lives in
# the database are reached through the request's own connection. The
# snapshot is retaken every SNAPSHOT_TTL seconds, and at once after a
# change made through this module in this process.

SNAPSHOT_TTL = 10.0


@implementer(IRequestBoundContainer)
class DatabaseContainer:
    """Stands in a snapshot for a container whose data is in the database.

    Bound to a request, it is the real container, loaded through the
    request's own connection: by its object id while the site's utility
    registrations are those the snapshot was taken from (one cached
    object to check), else looked up by name in the site's registry.
    """

    def __init__(self, name, oid=None, registrations=None):
        self.name = name
        self.oid = oid
        # (oid, serial) of the site's utility registry when the snapshot
        # was taken: any (un)registration changes its serial.
        self.registrations = registrations

    def __repr__(self):
        return f'<DatabaseContainer {self.name!r}>'

    def bind(self, request):
        site = request.environ[SITE_KEY]
        container = None
        if self.oid is not None and self.registrations is not None:
            connection = site.open()
            registry_oid, serial = self.registrations
            utilities = connection.get(registry_oid)
            utilities._p_activate()
            if utilities._p_serial == serial:
                container = connection.get(self.oid)
        if container is None:
            container = site.persistent_registry().getUtility(
                ISessionDataContainer, self.name)
        if IRequestBoundContainer.providedBy(container):
            container = container.bind(request)
        return container


def _detached(component):
    """A copy of a persistent component that no connection owns."""
    component._p_activate()
    copy = type(component).__new__(type(component))
    copy.__setstate__(component.__getstate__())
    return copy


# Containers whose data is not in the database (process memory, cookies):
# a snapshot holds copies of them, equal in all that matters.
_PROCESS_LEVEL = (RAMSessionDataContainer, CookieSessionDataContainer)


def take_snapshot(site):
    """A non-persistent registry equivalent to ``site``'s, or None when
    the site holds something a snapshot cannot stand in for."""
    snapshot = FrozenRegistry(
        'zodbsession.snapshot',
        bases=(zope.component.getGlobalSiteManager(),))
    utilities = site.registry.utilities
    utilities._p_activate()
    registrations = (utilities._p_oid, utilities._p_serial)
    for registration in site.registry.registeredUtilities():
        component, name = registration.component, registration.name
        if registration.provided.isOrExtends(ISessionDataContainer):
            if isinstance(component, _PROCESS_LEVEL):
                component = _detached(component)
            else:
                component = DatabaseContainer(
                    name, component._p_oid, registrations)
        elif registration.provided.isOrExtends(IClientIdManager):
            if not isinstance(component, CookieClientIdManager):
                return None
            component = _detached(component)
        else:
            return None
        snapshot.registerUtility(component, registration.provided, name)
    return snapshot


class _SnapshotCache:
    """The current snapshot of each open database, per process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = weakref.WeakKeyDictionary()   # db -> (registry, due)
        # (db, registry, due) of the last snapshot taken: most processes
        # serve one database, and this spares a weak-key lookup per
        # request. Set and reset under the lock only, so forget() wins.
        self._last = (None, None, 0)

    def get(self, db):
        now = time.monotonic()
        last_db, registry, due = self._last
        if last_db is db and due > now:
            return registry
        entry = self._entries.get(db)
        if entry is not None and entry[1] > now:
            return entry[0]
        with self._lock:
            entry = self._entries.get(db)
            if entry is not None and entry[1] > now:
                return entry[0]
            try:
                registry = self._take(db)
            except Exception:
                if entry is None:
                    raise
                # The storage may be down: keep serving the configuration
                # we have, and try again later.
                log.warning('could not refresh the session configuration;'
                            ' using the one from %.0f s ago',
                            SNAPSHOT_TTL + now - entry[1], exc_info=True)
                registry = entry[0]
            self._entries[db] = (registry, now + SNAPSHOT_TTL)
            self._last = (db, registry, now + SNAPSHOT_TTL)
            return registry

    def _take(self, db):
        manager = transaction.TransactionManager(explicit=True)
        manager.begin()
        connection = db.open(transaction_manager=manager)
        try:
            return take_snapshot(site_of(connection))
        finally:
            manager.abort()
            connection.close()

    def forget(self, db):
        with self._lock:
            self._entries.pop(db, None)
            self._last = (None, None, 0)


snapshots = _SnapshotCache()


class ConnectionSite:
    """The site of one request: opens a connection only when needed.

    ``registry()`` is what the request's IComponentLookup adapter returns:
    the process's snapshot of the site; ``persistent_registry()`` is the
    database's own, through a connection opened on first use.
    """

    def __init__(self, db, transaction_manager=None, keep=False):
        self.db = db
        self.transaction_manager = transaction_manager
        self.connection = None
        self._registry = None
        self._snapshot = None
        # Keep the connection for the thread's next request (its
        # transaction manager is the thread's own, which outlives it).
        self._keep = keep

    def registry(self):
        # One snapshot serves the whole request, even if a newer one is
        # taken meanwhile: the request sees one configuration.
        snapshot = self._snapshot
        if snapshot is None:
            snapshot = self._snapshot = snapshots.get(self.db)
        return snapshot if snapshot is not None else (
            self.persistent_registry())

    def open(self):
        """The request's connection, opened on first use.

        It sees every transaction committed before now, other processes'
        included (over ZEO, after one round trip to the server). A kept
        connection (the thread's, from its last request) is brought up to
        date as a connection fresh from the pool is.
        """
        if self.connection is None:
            connection = None
            if self._keep:
                connection = _kept_connection(self.db,
                                              self.transaction_manager)
            if connection is None:
                _wait_for_invalidations(self.db)
                connection = self.db.open(
                    transaction_manager=self.transaction_manager)
                if self._keep:
                    _keep_connection(self.db, connection)
            self.connection = connection
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


def _kept_connection(db, transaction_manager):
    """The thread's kept connection of ``db``, brought up to date; None
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
    last_db, barrier = _last_barrier
    if last_db is not db:
        barrier = _barriers.get(db, _UNKNOWN)
        if barrier is _UNKNOWN:
            barrier = _barriers[db] = invalidation_barrier(db)
        _remember_barrier(db, barrier)
    if barrier is not None:
        barrier()


def _keep_connection(db, connection):
    _kept.entry = (db, connection)


def _forget_kept(db, connection):
    kept_db, kept = _kept.entry
    if kept_db is db and kept is connection:
        _kept.entry = (None, None)
