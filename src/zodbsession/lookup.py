"""Which components serve a request.

Which container holds a package's data is the site's decision: the
ISessionDataContainer utility named after the package id, else the
unnamed one, looked up in the component registry that serves the request:
a persistent registry loaded through the request's own connection when
the middleware runs (an IComponentLookup adapter of the request), else the
current site manager.
"""
import transaction
import zope.component
from zope.interface.interfaces import IComponentLookup

from zodbsession.interfaces import IRequestBoundContainer
from zodbsession.interfaces import ISessionDataContainer
from zodbsession.environkeys import REGISTRY_KEY
from zodbsession.environkeys import TRANSACTION_MANAGER_KEY


def environ_registry(request):
    """The registry the host of ``request`` put in its WSGI environ, or
    None. (The IComponentLookup adapter of WSGI and WebOb requests.)"""
    environ = getattr(request, 'environ', None)
    load_registry = (environ.get(REGISTRY_KEY)
                     if isinstance(environ, dict) else None)
    return None if load_registry is None else load_registry()


def registry_for(request):
    """The component registry that serves ``request``."""
    # The host's registry asked for directly, not through the adapter:
    # this runs several times per request.
    registry = environ_registry(request)
    if registry is not None:
        return registry
    registry = IComponentLookup(request, None)
    return registry if registry is not None else (
        zope.component.getSiteManager())


def container_for(pkg_id, request=None):
    """The ISessionDataContainer that holds ``pkg_id``'s data."""
    registry = (zope.component.getSiteManager() if request is None
                else registry_for(request))
    container = registry.queryUtility(ISessionDataContainer, pkg_id)
    if container is None:
        container = registry.getUtility(ISessionDataContainer)
    return _bound(container, request)


def _bound(container, request):
    if request is not None and IRequestBoundContainer.providedBy(container):
        return container.bind(request)
    return container


def all_containers(request):
    """Every registered ISessionDataContainer, each once."""
    seen = {}
    for _name, container in registry_for(request).getUtilitiesFor(
            ISessionDataContainer):
        seen[id(container)] = container
    return [_bound(container, request) for container in seen.values()]


def transaction_manager_for(request, container=None):
    """The manager of the request's transaction, which containers that
    keep their data outside ZODB join: as the hosting says (pyramid_tm
    may run an explicit manager of its own), else that of the connection
    which loaded ``container``, else the thread's."""
    environ = getattr(request, 'environ', None)
    if isinstance(environ, dict) and TRANSACTION_MANAGER_KEY in environ:
        return environ[TRANSACTION_MANAGER_KEY]
    jar = getattr(container, '_p_jar', None)
    return jar.transaction_manager if jar is not None else (
        transaction.manager)
