"""Which container holds a package's data: one small lookup.

The site decides: the ISessionDataContainer utility named after the
package id, else the unnamed one, in the component registry that serves
the request (``zodbsession.context`` says which registry that is).
"""
from zope.interface.interfaces import ComponentLookupError
from zope.interface.registry import Components

from zodbsession.interfaces import IRequestBoundContainer
from zodbsession.interfaces import ISessionDataContainer

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

    def binding(self, pkg_id):
        """(the container of ``pkg_id``, whether it is bound to each
        request that uses it), remembered."""
        key = (IRequestBoundContainer, pkg_id)
        found = self._found.get(key)
        if found is None:
            container = self.container(pkg_id)
            found = self._remember(key, (
                container, IRequestBoundContainer.providedBy(container)))
        return found

    def _remember(self, key, found):
        if len(self._found) < MAX_REMEMBERED:
            self._found[key] = found
        return found


def query_in(registry, provided, name=''):
    """``registry.queryUtility(provided, name)`` (remembered by a
    FrozenRegistry)."""
    if isinstance(registry, FrozenRegistry):
        # (FrozenRegistry.query's remembered answer, read here: one call
        # less on every request's path.)
        found = registry._found.get((provided, name), _UNKNOWN)
        return (found if found is not _UNKNOWN
                else registry.query(provided, name))
    return registry.queryUtility(provided, name)


def utility_in(registry, provided, default=_UNKNOWN):
    """The unnamed ``provided`` utility of ``registry``; ``default`` if
    there is none, else ComponentLookupError."""
    found = query_in(registry, provided)
    if found is None:
        if default is _UNKNOWN:
            raise ComponentLookupError(provided, '')
        return default
    return found


def container_in(registry, pkg_id):
    """The container for ``pkg_id`` in ``registry``: named after it,
    else unnamed (ComponentLookupError if there is neither)."""
    if isinstance(registry, FrozenRegistry):
        # (As query_in: the remembered answer read here; never None.)
        found = registry._found.get(pkg_id)
        return found if found is not None else registry.container(pkg_id)
    container = registry.queryUtility(ISessionDataContainer, pkg_id)
    if container is None:
        container = utility_in(registry, ISessionDataContainer)
    return container


def container_binding_in(registry, pkg_id):
    """(``container_in(registry, pkg_id)``, whether that container is
    bound to each request: IRequestBoundContainer), remembered by a
    FrozenRegistry."""
    if isinstance(registry, FrozenRegistry):
        found = registry._found.get((IRequestBoundContainer, pkg_id))
        return found if found is not None else registry.binding(pkg_id)
    container = container_in(registry, pkg_id)
    return container, IRequestBoundContainer.providedBy(container)
