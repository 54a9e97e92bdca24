"""The process's snapshot of a session site.

Most requests need only the site's configuration: which container serves
a package, the client id manager's settings, a cookie container's keys.
A snapshot of it, in plain (non-persistent) objects, lets such requests
run without a database connection; only containers whose data lives in
the database are reached through the request's own connection. The
snapshot is retaken every SNAPSHOT_TTL seconds, and at once after a
change made through ``zodbsession.hosting.sitechanges`` in this process.
Nothing changes a snapshot's copies of the site's components, so they
are frozen (``freeze()``): requests keep on them what they derive from
their settings, instead of deriving it again each time.
"""
import logging
import threading
import time
import weakref

import transaction
import zope.component
from zope.interface import implementer

from zodbsession.clientid import CookieClientIdManager
from zodbsession.context import context_of
from zodbsession.cookiecontainer import CookieSessionDataContainer
from zodbsession.interfaces import IClientIdManager
from zodbsession.interfaces import IRequestBoundContainer
from zodbsession.interfaces import ISessionDataContainer
from zodbsession.lookup import FrozenRegistry
from zodbsession.ram import RAMSessionDataContainer
from zodbsession.site import site_of

log = logging.getLogger(__name__)

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
        context = context_of(request)
        site = context.site
        container = None
        if self.oid is not None and self.registrations is not None:
            connection = site.open(up_to_date=not _reads_no_session(context))
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


def _reads_no_session(context):
    """Whether the request reads nothing another process may have
    written: its client sent no id, so it has no session anywhere, and
    what it stores is a new session, which nobody else writes. (Not so on
    a retry: a conflict says it did meet another process's write.) Its
    connection then needs no round trip to the server first; the
    container's settings come from the snapshot, which is no fresher."""
    session = context.session
    return (session is not None and not context.site.retrying
            and session.sent_no_client_id())


def _detached(component):
    """A copy of a persistent component that no connection owns; nothing
    changes it (a change to the site makes a new snapshot), so it is
    frozen, when it can be (its requests keep what they derive from its
    settings)."""
    component._p_activate()
    copy = type(component).__new__(type(component))
    copy.__setstate__(component.__getstate__())
    freeze = getattr(copy, 'freeze', None)
    if freeze is not None:
        freeze()
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
