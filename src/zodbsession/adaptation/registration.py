"""Wiring in Python, for sites that do not use ZCML.

``configure.zcml`` registers the same adapters; use one or the other.
"""
import zope.component
from zope.interface import Interface
from zope.interface.interfaces import IComponentLookup

from zodbsession.clientid import ClientId
from zodbsession.interfaces import IClientId
from zodbsession.interfaces import IClientIdManager
from zodbsession.interfaces import IRequestCookies
from zodbsession.interfaces import ISession
from zodbsession.interfaces import ISessionDataContainer
from zodbsession.context import environ_registry
from zodbsession.adaptation.environ import EnvironCookies
from zodbsession.adaptation.environ import WSGIRequest
from zodbsession.session import session_of


def _webob_request_class():
    try:
        from webob.request import BaseRequest
    except ImportError:  # pragma: no cover - WebOb is a dependency
        return None
    return BaseRequest


def register_adapters(registry=None):
    """Register the adapters: IClientId, ISession, IRequestCookies.

    ``registry`` defaults to the global site manager.
    """
    registry = registry or zope.component.getGlobalSiteManager()
    registry.registerAdapter(ClientId, (Interface,), IClientId)
    registry.registerAdapter(session_of, (Interface,), ISession)
    for request_class in (WSGIRequest, _webob_request_class()):
        if request_class is None:
            continue
        registry.registerAdapter(
            EnvironCookies, (request_class,), IRequestCookies)
        registry.registerAdapter(
            environ_registry, (request_class,), IComponentLookup)
    try:
        from zodbsession.adaptation.publisher import PublisherCookies
    except ImportError:
        pass    # zope.publisher is optional
    else:
        registry.registerAdapter(PublisherCookies, provided=IRequestCookies)
    try:
        from zope.traversing.interfaces import IPathAdapter
    except ImportError:
        pass    # page-template access is optional
    else:
        registry.registerAdapter(session_of, (Interface,), IPathAdapter,
                                 name='session')
    return registry


def register_session_utilities(client_id_manager, container, registry=None,
                               **named_containers):
    """Register a client id manager and containers, returning the registry.

    ``container`` is the unnamed one; ``named_containers`` map package ids
    to their own containers (package ids with dots can be given with
    ``**{'shop.cart': container}``).
    """
    registry = registry or zope.component.getGlobalSiteManager()
    registry.registerUtility(client_id_manager, IClientIdManager)
    registry.registerUtility(container, ISessionDataContainer)
    for pkg_id, named in named_containers.items():
        registry.registerUtility(named, ISessionDataContainer, name=pkg_id)
    return registry
