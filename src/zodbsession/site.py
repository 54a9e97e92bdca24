"""The session site: what a database holds besides the sessions.

The database root holds a ``SessionSite``: a persistent component registry
with the client id manager (its settings and secret) and the containers,
so every process of a cluster shares them and they survive restarts. A
site administrator registers named containers there too.

A request reaches the registry through its own connection
(``ConnectionSite``), so persistent objects never cross threads.
"""
import persistent
import zope.component
from ZODB.POSException import ConflictError
from zope.component.persistentregistry import PersistentComponents
from zope.interface.interfaces import ComponentLookupError

from zodbsession.clientid import CookieClientIdManager
from zodbsession.container import PersistentSessionDataContainer
from zodbsession.interfaces import IClientIdManager
from zodbsession.interfaces import ICookieClientIdManager
from zodbsession.interfaces import ISessionDataContainer

ROOT_KEY = 'zodbsession'
BOOTSTRAP_ATTEMPTS = 5

CONTAINER_SETTINGS = ('timeout', 'resolution')


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
            elif name in ICookieClientIdManager or name == 'secret':
                target = manager
            else:
                raise TypeError(
                    f'unknown session setting {name!r}; known:'
                    f' {", ".join(sorted(CONTAINER_SETTINGS + tuple(ICookieClientIdManager) + ("secret",)))}')
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

    Administrative changes (bootstrap, registrations) retry conflicts here;
    requests have the middleware's retry loop.
    """
    for attempt in range(BOOTSTRAP_ATTEMPTS):
        try:
            with db.transaction() as connection:
                return function(connection)
        except ConflictError:
            if attempt == BOOTSTRAP_ATTEMPTS - 1:
                raise


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


def change_site(db, change):
    """Run ``change(site)`` in its own transaction and commit it."""
    return run_in_transaction(
        db, lambda connection: change(site_of(connection)))


class ConnectionSite:
    """The site of one request: opens a connection on first use.

    ``registry()`` is what the request's IComponentLookup adapter returns;
    a request that never asks opens nothing.
    """

    def __init__(self, db, transaction_manager=None):
        self.db = db
        self.transaction_manager = transaction_manager
        self.connection = None
        self._registry = None

    def registry(self):
        if self._registry is None:
            self.connection = self.db.open(
                transaction_manager=self.transaction_manager)
            self._registry = site_of(self.connection).registry
        return self._registry

    @property
    def opened(self):
        return self.connection is not None

    def close(self):
        """Return the connection to the pool (after the transaction)."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None
            self._registry = None
