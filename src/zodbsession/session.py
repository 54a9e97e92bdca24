"""The Session adapter: ``ISession(request)[pkg_id]``.

Which container holds a package's data is the site's decision: the
ISessionDataContainer utility named after the package id, else the
unnamed one.
"""
import zope.component
from zope.interface import implementer

from zodbsession.data import SessionData
from zodbsession.data import SessionPkgData
from zodbsession.interfaces import IClientIdManager
from zodbsession.interfaces import ISession
from zodbsession.interfaces import ISessionDataContainer


def container_for(pkg_id):
    """The ISessionDataContainer that holds ``pkg_id``'s data."""
    container = zope.component.queryUtility(ISessionDataContainer, pkg_id)
    if container is None:
        container = zope.component.getUtility(ISessionDataContainer)
    return container


@implementer(ISession)
class Session:
    """The sessions of the client that made ``request``.

    The client id is looked up only when needed, so ``get()`` on a
    request without a session issues no cookie and creates nothing.
    """

    def __init__(self, request):
        self.request = request
        self._client_id = None

    @property
    def client_id(self):
        """The client's id, issuing one if the client has none."""
        if self._client_id is None:
            manager = zope.component.getUtility(IClientIdManager)
            self._client_id = str(manager.getClientId(self.request))
        return self._client_id

    def existing_client_id(self):
        """The client's id if it sent a valid one, else None."""
        if self._client_id is None:
            manager = zope.component.getUtility(IClientIdManager)
            get_existing = getattr(manager, 'getRequestId', None)
            if get_existing is None:
                # A manager without getRequestId can only issue ids.
                return self.client_id
            client_id = get_existing(self.request)
            if client_id is not None:
                self._client_id = str(client_id)
        return self._client_id

    def get(self, pkg_id, default=None):
        client_id = self.existing_client_id()
        if client_id is None:
            return default
        session_data = container_for(pkg_id).get(client_id)
        if session_data is None:
            return default
        return session_data.get(pkg_id, default)

    def __getitem__(self, pkg_id):
        container = container_for(pkg_id)
        client_id = self.client_id
        session_data = container.get(client_id)
        if session_data is None:
            session_data = SessionData()
            container[client_id] = session_data
        try:
            return session_data[pkg_id]
        except KeyError:
            session_data[pkg_id] = SessionPkgData()
            return session_data[pkg_id]

    def __iter__(self):
        raise NotImplementedError(
            'a Session cannot list its packages: each may live in another'
            ' container; ask for one with session[pkg_id]')

    def __contains__(self, pkg_id):
        raise TypeError(
            "'in' is not supported on a Session; use"
            ' session.get(pkg_id) is not None')
