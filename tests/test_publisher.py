"""IRequestCookies for zope.publisher requests, as zope.session has it."""
from io import BytesIO

import pytest
from zope.interface.verify import verifyObject

from zodbsession import IClientId
from zodbsession import IRequestCookies
from zodbsession import ISession

pytest.importorskip('zope.publisher')
from zope.publisher.http import HTTPRequest  # noqa: E402

from zodbsession.publisher import PublisherCookies  # noqa: E402


def http_request(**environ):
    return HTTPRequest(BytesIO(), environ)


def test_adapter_is_registered_and_verifies(registry):
    cookies = IRequestCookies(http_request())
    assert isinstance(cookies, PublisherCookies)
    assert verifyObject(IRequestCookies, cookies)


def test_iclientid_sets_the_cookie_on_the_response(sessions):
    manager, container = sessions
    request = http_request()
    client_id = IClientId(request)
    assert manager.verify(client_id)
    cookie = request.response.getCookie(manager.namespace)
    assert cookie['value'] == client_id
    assert cookie['path'] == '/'
    assert cookie['httponly'] is True
    assert cookie['samesite'] == 'Lax'
    assert 'max_age' not in cookie and 'secure' not in cookie
    headers = dict(request.response.getHeaders())
    assert headers['Pragma'] == 'no-cache'
    assert IClientId(request) == client_id


def test_next_request_with_the_cookie_keeps_the_id(sessions):
    manager, container = sessions
    first = http_request()
    client_id = IClientId(first)
    second = http_request(HTTP_COOKIE=f'{manager.namespace}={client_id}')
    assert IClientId(second) == client_id
    assert second.response.getCookie(manager.namespace) is None
    # zope.session's own tests put cookies on the request like this.
    third = http_request()
    third._cookies = {manager.namespace: client_id}
    assert IClientId(third) == client_id


def test_forged_cookie_gets_a_fresh_id(sessions):
    manager, container = sessions
    request = http_request(HTTP_COOKIE=f'{manager.namespace}=forged.id')
    client_id = IClientId(request)
    assert client_id != 'forged.id' and manager.verify(client_id)


def test_configured_attributes_reach_the_response(sessions):
    manager, container = sessions
    manager.cookieLifetime = 60
    manager.secure = True
    manager.domain = '.example.org'
    manager.sameSite = 'Strict'
    request = http_request(SCRIPT_NAME='/app')
    IClientId(request)
    header = dict(request.response.getHeaders())['Set-Cookie']
    for part in ('Max-Age=60', 'Secure', 'Domain=.example.org',
                 'SameSite=Strict', 'Path=/app', 'HttpOnly'):
        assert part in header, part


def test_thirdparty_raises_like_zope_session(sessions):
    from zodbsession import MissingClientIdException
    manager, container = sessions
    manager.thirdparty = True
    request = http_request()
    with pytest.raises(MissingClientIdException):
        IClientId(request)
    assert request.response.getCookie(manager.namespace) is None


def test_delete_cookie_expires_it(sessions):
    manager, container = sessions
    request = http_request()
    manager.deleteRequestId(request)
    cookie = request.response.getCookie(manager.namespace)
    assert cookie['max_age'] == 0 or 'expires' in cookie


def test_session_over_publisher_requests(sessions):
    manager, container = sessions
    first = http_request()
    ISession(first)['pkg']['k'] = 'v'
    client_id = first.response.getCookie(manager.namespace)['value']
    second = http_request(HTTP_COOKIE=f'{manager.namespace}={client_id}')
    assert ISession(second).get('pkg')['k'] == 'v'
    # get() creates nothing for a stranger.
    stranger = http_request()
    assert ISession(stranger).get('pkg') is None
    assert stranger.response.getCookie(manager.namespace) is None
