"""configure.zcml wires the same adapters as register_adapters()."""
from io import BytesIO

import pytest
import transaction
import webob
import zope.component
import zope.component.testing
from zope.configuration import xmlconfig

import zodbsession
from zodbsession import CookieClientIdManager
from zodbsession import IClientId
from zodbsession import IRequestCookies
from zodbsession import ISession
from zodbsession import PersistentSessionDataContainer
from zodbsession import Session
from zodbsession import register_session_utilities
from zodbsession.testing import TEST_SECRET
from zodbsession.testing import SessionTestClient
from zodbsession.testing import response_headers


@pytest.fixture
def zcml_registry():
    """A clean registry configured by configure.zcml only."""
    transaction.abort()
    zope.component.testing.setUp()
    manager = CookieClientIdManager(secret=TEST_SECRET)
    container = PersistentSessionDataContainer()
    register_session_utilities(manager, container)
    assert ISession(SessionTestClient().request(), None) is None
    xmlconfig.file('configure.zcml', zodbsession)
    yield manager, container
    zope.component.testing.tearDown()
    transaction.abort()


def test_adapters_work_after_loading(zcml_registry):
    manager, container = zcml_registry
    client = SessionTestClient()
    request = client.request()
    client_id = IClientId(request)
    assert manager.verify(client_id)
    ISession(request)['pkg']['k'] = 'v'
    assert container[client_id]['pkg']['k'] == 'v'
    client.receive(request)
    again = client.request()
    assert IClientId(again) == client_id
    assert ISession(again).get('pkg')['k'] == 'v'
    assert response_headers(again) == []


def test_webob_requests_are_adapted(zcml_registry):
    request = webob.Request.blank('/', headers={'Cookie': 'a=1'})
    assert IRequestCookies(request).get_cookie('a') == '1'
    assert zcml_registry[0].verify(IClientId(request))


def test_publisher_requests_are_adapted(zcml_registry):
    pytest.importorskip('zope.publisher')
    from zope.publisher.http import HTTPRequest
    manager, container = zcml_registry
    request = HTTPRequest(BytesIO(), {})
    client_id = IClientId(request)
    assert request.response.getCookie(manager.namespace)['value'] == \
        client_id


def test_session_path_adapter(zcml_registry):
    interfaces = pytest.importorskip('zope.traversing.interfaces')
    request = SessionTestClient().request()
    adapter = zope.component.getAdapter(
        request, interfaces.IPathAdapter, name='session')
    assert isinstance(adapter, Session)
    adapter['pkg']['k'] = 'v'
    assert ISession(request)['pkg']['k'] == 'v'


def test_register_adapters_matches_the_zcml():
    """Python and ZCML wiring register the same adapters."""
    transaction.abort()
    zope.component.testing.setUp()
    try:
        xmlconfig.file('configure.zcml', zodbsession)
        from_zcml = _adapter_signatures()
    finally:
        zope.component.testing.tearDown()
    zope.component.testing.setUp()
    try:
        zodbsession.register_adapters()
        from_python = _adapter_signatures()
    finally:
        zope.component.testing.tearDown()
    assert from_zcml == from_python
    assert len(from_python) >= 6


def _adapter_signatures():
    registry = zope.component.getGlobalSiteManager()
    return sorted(
        (tuple(getattr(spec, '__identifier__', repr(spec))
               for spec in registration.required),
         registration.provided.__identifier__, registration.name,
         getattr(registration.factory, '__qualname__',
                 repr(registration.factory)))
        for registration in registry.registeredAdapters())
