"""What zope.session's own suite found, held by tests of our own (the
suite itself runs in test_peer_zope_session.py)."""
import email.utils
import logging
import time
from io import BytesIO

import pytest
import transaction
import zope.component
import zope.component.testing
from zope.configuration import xmlconfig

import zodbsession
from zodbsession import ClientId
from zodbsession import CookieClientIdManager
from zodbsession import IClientId
from zodbsession import IClientIdManager
from zodbsession import ISession
from zodbsession import ISessionDataContainer
from zodbsession import MissingClientIdException
from zodbsession import PersistentSessionDataContainer
from zodbsession import RAMSessionDataContainer
from zodbsession import Session
from zodbsession import SessionData
from zodbsession import clock
from zodbsession.clock import ManualClock
from zodbsession.testing import TEST_SECRET

pytest.importorskip('zope.publisher')
from zope.publisher.http import HTTPRequest  # noqa: E402
from zope.publisher.interfaces import IRequest  # noqa: E402


@pytest.fixture
def bare_registry():
    """A clean global registry with nothing of zodbsession in it."""
    transaction.abort()
    zope.component.testing.setUp()
    yield zope.component.getGlobalSiteManager()
    transaction.abort()
    zope.component.testing.tearDown()


@pytest.fixture
def manual_clock():
    manual = ManualClock(1_000_000)
    with clock.use_clock(manual):
        yield manual


def http_request(**environ):
    return HTTPRequest(BytesIO(), environ)


def test_zope_session_registrations_are_enough(bare_registry):
    # What zope.session's docs register, and nothing else.
    manager = CookieClientIdManager(secret=TEST_SECRET)
    zope.component.provideUtility(manager, IClientIdManager)
    zope.component.provideUtility(PersistentSessionDataContainer(),
                                  ISessionDataContainer)
    # (ClientId is a str, so zope.session's docs name what it provides.)
    zope.component.provideAdapter(ClientId, (IRequest,), IClientId)
    zope.component.provideAdapter(Session)
    request = http_request()
    client_id = IClientId(request)
    assert manager.verify(client_id)
    assert request.response.getCookie(manager.namespace)['value'] == client_id
    ISession(request)['pkg']['key'] = 'value'
    assert ISession(request)['pkg']['key'] == 'value'


def test_virtual_host_change_moves_the_cookie_path(bare_registry):
    xmlconfig.file('configure.zcml', zodbsession)
    manager = CookieClientIdManager(secret=TEST_SECRET)
    zope.component.provideUtility(manager, IClientIdManager)
    request = http_request(SCRIPT_NAME='/site')
    client_id = IClientId(request)
    assert request.response.getCookie(manager.namespace)['path'] == '/site'
    request.setVirtualHostRoot(['shop'])      # notifies the change
    cookie = request.response.getCookie(manager.namespace)
    assert cookie['value'] == client_id
    assert cookie['path'] == request.getApplicationURL(path_only=True)
    assert cookie['path'] != '/site'


def test_no_response_cookie_no_new_cookie(bare_registry):
    manager = CookieClientIdManager(secret=TEST_SECRET)
    zope.component.provideUtility(manager, IClientIdManager)
    request = http_request()

    class Event:
        pass
    event = Event()
    event.request = request
    zodbsession.notifyVirtualHostChanged(event)
    assert request.response.getCookie(manager.namespace) is None
    event.request = None
    zodbsession.notifyVirtualHostChanged(event)     # nothing to do


def test_cookie_lifetime_sets_expires_and_max_age(bare_registry):
    manager = CookieClientIdManager(secret=TEST_SECRET, cookieLifetime=3600)
    request = http_request()
    manager.getClientId(request)
    cookie = request.response.getCookie(manager.namespace)
    assert cookie['max_age'] == 3600
    expires = email.utils.parsedate_to_datetime(cookie['expires'])
    assert abs(expires.timestamp() - (time.time() + 3600)) < 5


def test_cookie_lifetime_zero_expires_as_zope_session_says(bare_registry):
    manager = CookieClientIdManager(secret=TEST_SECRET, cookieLifetime=0)
    request = http_request()
    manager.getClientId(request)
    cookie = request.response.getCookie(manager.namespace)
    assert cookie['expires'] == 'Tue, 19 Jan 2038 00:00:00 GMT'
    # Browsers that know Max-Age (all current ones) keep it ten years.
    assert cookie['max_age'] >= 10 * 365 * 24 * 3600


@pytest.mark.parametrize('setting', ['thirdparty', 'postOnly'])
def test_missing_client_id_has_no_message(bare_registry, setting):
    manager = CookieClientIdManager(secret=TEST_SECRET, **{setting: True})
    with pytest.raises(MissingClientIdException) as info:
        manager.getClientId(http_request())
    assert info.value.args == ()


def test_thirdparty_set_request_id_is_logged(bare_registry, caplog):
    manager = CookieClientIdManager(secret=TEST_SECRET, thirdparty=True)
    request = http_request()
    with caplog.at_level(logging.WARNING, logger='zodbsession.clientid'):
        manager.setRequestId(request, 'an id')
    assert [r.levelname for r in caplog.records] == ['WARNING']
    assert request.response.getCookie(manager.namespace) is None


@pytest.mark.parametrize('make', [PersistentSessionDataContainer,
                                  RAMSessionDataContainer])
def test_sweep_returns_none_and_sweep_expired_the_count(make, manual_clock):
    container = make()
    container['client'] = SessionData()
    transaction.commit()
    manual_clock.advance(3 * 3600)
    assert container.sweep() is None
    container['other'] = SessionData()
    transaction.commit()
    manual_clock.advance(3 * 3600)
    assert container.sweep_expired() == 1
    assert container.sweep_expired() == 0
    transaction.abort()


@pytest.mark.parametrize('make', [PersistentSessionDataContainer,
                                  RAMSessionDataContainer])
def test_no_timeout_writes_no_last_access(make, manual_clock):
    container = make()
    container.timeout = 0
    container['client'] = SessionData()
    transaction.commit()
    stored = container['client'].getLastAccessTime()
    manual_clock.advance(365 * 24 * 3600)
    assert container['client'].getLastAccessTime() == stored
    transaction.abort()


@pytest.mark.parametrize('make', [PersistentSessionDataContainer,
                                  RAMSessionDataContainer])
def test_disabled_implicit_sweeps_keep_expired_data_until_sweep(
        make, manual_clock):
    container = make()
    container.disable_implicit_sweeps = True
    container['client'] = SessionData()
    transaction.commit()
    manual_clock.advance(2 * 3600)
    assert 'client' in container            # expired, not yet swept
    container.sweep()
    transaction.commit()
    assert 'client' not in container
    with pytest.raises(KeyError):
        container['client']
    container['new'] = SessionData()        # later sessions live on
    transaction.commit()
    assert 'new' in container
    transaction.abort()
