"""The session site: what a database holds besides the sessions.

The database root holds a ``SessionSite``: a persistent component registry
with the client id manager (its settings and secret) and the containers,
so every process of a cluster shares them and they survive restarts. A
site administrator registers named containers there too. (Its module
path is in every database's pickles: it stays here.)

Changing a site (``ensure_site``, ``change_site``, ``ensure_container``)
is hosting's work, in ``zodbsession.hosting.sitechanges``; the process's
snapshot of a site in ``zodbsession.hosting.snapshot``, and a request's
connection in ``zodbsession.hosting.connection``. Their names stay
importable from here.
"""
import importlib

import persistent
import zope.component
import zope.schema
from zope.component.persistentregistry import PersistentComponents
from zope.interface.interfaces import ComponentLookupError

from zodbsession.clientid import CookieClientIdManager
from zodbsession.container import PersistentSessionDataContainer
from zodbsession.interfaces import IClientIdManager
from zodbsession.interfaces import ICookieClientIdManager
from zodbsession.interfaces import ICookieSessionDataContainer
from zodbsession.interfaces import ISessionDataContainer
from zodbsession.validated import InvalidSetting

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
                if name == 'namespace':
                    self._check_namespace(value)
                setattr(target, name, value)

    # One cookie, one name: two that share one overwrite each other in
    # the browser, and the sessions in them are lost without an error.

    def _check_namespace(self, namespace):
        for pkg_id, container in self.containers().items():
            if _cookie_name(container) == namespace:
                raise InvalidSetting(
                    'namespace', namespace,
                    f'it is the cookie of the container for {pkg_id!r};'
                    ' the client id cookie needs a name of its own')

    def register_container(self, pkg_id, container):
        """Keep ``pkg_id``'s data in ``container`` from now on."""
        name = _cookie_name(container)
        if name is not None:
            manager = self.client_id_manager
            if ICookieClientIdManager.providedBy(manager) and (
                    manager.namespace == name):
                raise ValueError(
                    f'the cookie container for {pkg_id!r} has the client id'
                    f' cookie\'s name, {name!r}: give it another'
                    ' cookie_name')
            for other_id, other in self.containers().items():
                if other_id != pkg_id and other is not container and (
                        _cookie_name(other) == name):
                    raise ValueError(
                        f'the cookie container for {pkg_id!r} has the'
                        f' cookie_name {name!r} of the one for'
                        f' {other_id!r}: give it another, or register that'
                        ' same container for both packages')
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


def _cookie_name(container):
    """The cookie a container keeps its sessions in, or None."""
    if ICookieSessionDataContainer.providedBy(container):
        return container.cookie_name
    return None


def site_of(connection):
    """The SessionSite of a connection's database (KeyError if none)."""
    return connection.root()[ROOT_KEY]



# Names that moved to the hosting layer, still importable from here (the
# hosting modules import this one, so they are imported on first use).
_MOVED = {
    'run_in_transaction': 'zodbsession.hosting.sitechanges',
    'ensure_site': 'zodbsession.hosting.sitechanges',
    'change_site': 'zodbsession.hosting.sitechanges',
    'ensure_container': 'zodbsession.hosting.sitechanges',
    'SNAPSHOT_TTL': 'zodbsession.hosting.snapshot',
    'DatabaseContainer': 'zodbsession.hosting.snapshot',
    'take_snapshot': 'zodbsession.hosting.snapshot',
    'snapshots': 'zodbsession.hosting.snapshot',
    'ConnectionSite': 'zodbsession.hosting.connection',
}


def __getattr__(name):
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(module), name)
