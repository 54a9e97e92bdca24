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
from zope.interface.interfaces import ComponentLookupError
from zope.interface.interfaces import IComponentLookup
from zope.interface.registry import Components

from zodbsession.adaptation.builtin import request_cookies
from zodbsession.interfaces import IRequestBoundContainer
from zodbsession.interfaces import IRequestCookies
from zodbsession.interfaces import ISessionDataContainer
from zodbsession.environkeys import REGISTRY_KEY
from zodbsession.environkeys import TRANSACTION_MANAGER_KEY


_UNKNOWN = object()

# A frozen registry remembers at most this many answers (package ids are
# names in the application's code, so a handful in practice).
MAX_REMEMBERED = 1024


class FrozenRegistry(Components):
    """A registry filled once and then only read (the site's snapshot):
    what a lookup found stays true, so it is remembered."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._found = {}

    def query(self, provided, name=''):
        """``queryUtility(provided, name)``, remembered."""
        key = (provided, name)
        found = self._found.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            found = self._remember(key, self.queryUtility(provided, name))
        return found

    def container(self, pkg_id):
        """The container of ``pkg_id`` (named after it, else the unnamed
        one), remembered: one lookup per package on a request's path."""
        found = self._found.get(pkg_id, _UNKNOWN)
        if found is _UNKNOWN:
            found = self.query(ISessionDataContainer, pkg_id)
            if found is None:
                found = self.getUtility(ISessionDataContainer)
            self._remember(pkg_id, found)
        return found

    def _remember(self, key, found):
        if len(self._found) < MAX_REMEMBERED:
            self._found[key] = found
        return found


def _query(registry, provided, name=''):
    if isinstance(registry, FrozenRegistry):
        return registry.query(provided, name)
    return registry.queryUtility(provided, name)


def environ_registry(request):
    """The registry the host of ``request`` put in its WSGI environ, or
    None. (The IComponentLookup adapter of WSGI and WebOb requests.)"""
    environ = getattr(request, 'environ', None)
    load_registry = (environ.get(REGISTRY_KEY)
                     if isinstance(environ, dict) else None)
    return None if load_registry is None else load_registry()


def registry_for(request):
    """The component registry that serves ``request`` (None: the current
    site manager)."""
    if request is None:
        return zope.component.getSiteManager()
    # The host's registry asked for directly, not through the adapter:
    # this runs several times per request.
    registry = environ_registry(request)
    if registry is not None:
        return registry
    registry = IComponentLookup(request, None)
    return registry if registry is not None else (
        zope.component.getSiteManager())


def utility_in(registry, provided, default=_UNKNOWN):
    """The unnamed ``provided`` utility of ``registry``; ``default`` if
    there is none, else ComponentLookupError."""
    found = _query(registry, provided)
    if found is None:
        if default is _UNKNOWN:
            raise ComponentLookupError(provided, '')
        return default
    return found


def utility_for(request, provided, default=_UNKNOWN):
    """``utility_in`` the registry that serves ``request``."""
    return utility_in(registry_for(request), provided, default)


def container_in(registry, pkg_id, request=None):
    """The container for ``pkg_id`` in ``registry``: named after it,
    else unnamed; bound to ``request`` if it keeps data with requests."""
    if isinstance(registry, FrozenRegistry):
        container = registry.container(pkg_id)
    else:
        container = registry.queryUtility(ISessionDataContainer, pkg_id)
        if container is None:
            container = utility_in(registry, ISessionDataContainer)
    return _bound(container, request)


def container_for(pkg_id, request=None):
    """The ISessionDataContainer that holds ``pkg_id``'s data."""
    return container_in(registry_for(request), pkg_id, request)


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


# Classes that implement IRequestCookies: their instances are their own.
_COOKIE_CLASSES = set()


def cookies_of(request):
    """``IRequestCookies(request)``; the middleware's request is its own.

    Requests are read several times per request (the client id's cookie,
    each cookie container's): a class known to implement the interface
    is answered by a set lookup, without asking zope.interface.
    """
    cls = type(request)
    if cls in _COOKIE_CLASSES:
        return request
    if IRequestCookies.implementedBy(cls):
        _COOKIE_CLASSES.add(cls)
        return request
    if IRequestCookies.providedBy(request):
        return request
    cookies = IRequestCookies(request, None)
    if cookies is None:
        cookies = request_cookies(request)
    if cookies is None:
        raise TypeError(
            f'zodbsession cannot read the cookies of a'
            f' {type(request).__module__}.{type(request).__qualname__}:'
            ' register an IRequestCookies adapter for it')
    return cookies


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
