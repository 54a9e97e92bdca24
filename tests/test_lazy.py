"""A session exists only once something is stored in it.

A client without a session whose request only reads gets no cookie and
no record, in every container, through the middleware and Pyramid, at
the defaults; the first value stored creates both.
"""
import json

import pytest
import transaction
import webtest
import zope.component
from zope.interface.verify import verifyObject

from zodbsession import CookieSessionDataContainer
from zodbsession import IClientId
from zodbsession import IPendingSessions
from zodbsession import ISession
from zodbsession import ISessionDataContainer
from zodbsession import RAMSessionDataContainer
from zodbsession import testing
from zodbsession.context import container_for
from zodbsession.testing import SessionTestClient
from zodbsession.testing import StorageMeter
from zodbsession.testing import get_without_cookies
from zodbsession.testing import response_headers
from zodbsession.testing import set_cookie_headers
from zodbsession.testing import use_containers
from zodbsession.wsgi import SessionMiddleware

PKG = 'test.lazy'
READS = 1000

CONTAINERS = {
    'persistent': None,     # the site's unnamed container
    'ram': RAMSessionDataContainer,
    'cookie': lambda: CookieSessionDataContainer(
        secret='lazy-cookie-container-secret-0001'),
}


def read_everything(data):
    """Every way of reading a package's data that stores nothing."""
    assert data.get('x') is None
    with pytest.raises(KeyError):
        data['missing']
    assert 'x' not in data
    assert len(data) == 0
    assert list(data) == [] and list(data.keys()) == []
    assert dict(data.items()) == {}
    data.changed()      # nothing was mutated: still nothing to store


def app(environ, start_response):
    request = environ['zodbsession.request']
    path = environ['PATH_INFO']
    if path == '/write':
        ISession(request)[PKG]['x'] = 'stored'
    elif path == '/setdefault':
        ISession(request)[PKG].setdefault('cart', []).append('tea')
    elif path == '/read':
        read_everything(ISession(request)[PKG])
        assert ISession(request).get('other.pkg') is None
    data = ISession(request).get(PKG)
    body = json.dumps(None if data is None else dict(data))
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body.encode('utf-8')]


@pytest.fixture(params=sorted(CONTAINERS))
def site(request, registry, db):
    """(middleware, database) with PKG in each kind of container."""
    middleware = SessionMiddleware(app, db=db)
    make = CONTAINERS[request.param]
    if make is not None:
        use_containers(db, **{PKG: make()})
    return middleware, db


def test_reading_requests_without_cookies_store_and_send_nothing(site):
    middleware, db = site
    meter = StorageMeter(db)
    responses = get_without_cookies(middleware, '/read', count=READS)
    assert [r.status_int for r in responses] == [200] * READS
    # (get(PKG) after [PKG] is the same, empty, package data)
    assert [r.json for r in responses] == [{}] * READS
    assert sum(len(set_cookie_headers(r)) for r in responses) == 0
    assert meter.bytes_added == 0 and not meter.committed


def test_the_first_value_stored_creates_the_session_and_its_cookie(site):
    middleware, db = site
    browser = webtest.TestApp(middleware)
    assert browser.get('/read').json == {}
    assert browser.get('/show').json is None
    assert browser.cookies == {}
    page = browser.get('/write')
    assert page.json == {'x': 'stored'}
    assert set_cookie_headers(page) and 'zodbsession' in browser.cookies
    # The client's next requests find it; reading them stores nothing.
    meter = StorageMeter(db)
    for _ in range(3):
        assert browser.get('/show').json == {'x': 'stored'}
    assert not meter.committed


def test_a_value_stored_by_setdefault_creates_the_session(site):
    middleware, db = site
    browser = webtest.TestApp(middleware)
    assert browser.get('/setdefault').json == {'cart': ['tea']}
    assert browser.get('/show').json == {'cart': ['tea']}


def test_reading_another_package_of_a_session_stores_nothing(registry, db):
    def reader(environ, start_response):
        read_everything(ISession(environ['zodbsession.request'])['other'])
        start_response('200 OK', [])
        return [b'']
    browser = webtest.TestApp(SessionMiddleware(app, db=db))
    browser.get('/write')
    cookies = dict(browser.cookies)
    meter = StorageMeter(db)
    reading = webtest.TestApp(SessionMiddleware(reader, db=db))
    for name, value in cookies.items():
        reading.set_cookie(name, value)
    for _ in range(20):
        assert set_cookie_headers(reading.get('/')) == []
    assert not meter.committed
    assert browser.get('/show').json == {'x': 'stored'}


def test_a_new_client_whose_write_is_aborted_gets_nothing(site):
    middleware, db = site

    def failing(environ, start_response):
        ISession(environ['zodbsession.request'])[PKG]['x'] = 'lost'
        raise ValueError('after the write')
    meter = StorageMeter(db)
    failing_site = SessionMiddleware(failing, db=db)
    with pytest.raises(ValueError):
        get_without_cookies(failing_site, '/')
    assert not meter.committed


# -- the zope.session contract ---------------------------------------------

@pytest.mark.parametrize('kind', sorted(CONTAINERS))
def test_every_container_can_hold_a_session_unstored(sessions, kind):
    make = CONTAINERS[kind]
    if make is not None:
        zope.component.provideUtility(
            make(), ISessionDataContainer, name=PKG)
    container = container_for(PKG, SessionTestClient().request())
    assert verifyObject(IPendingSessions, container)
    data = container.new_session_data()
    container.hold('some-client', data)
    assert container['some-client'] is data
    assert container.get('some-client') is data
    assert 'some-client' not in container
    transaction.abort()
    assert container.get('some-client') is None

@pytest.mark.parametrize('kind', sorted(CONTAINERS))
def test_one_package_object_per_request_stored_only_once_written(
        sessions, kind):
    manager, unnamed = sessions
    make = CONTAINERS[kind]
    if make is not None:
        zope.component.provideUtility(
            make(), ISessionDataContainer, name=PKG)
    request = SessionTestClient().request()
    session = ISession(request)
    data = session[PKG]
    assert session[PKG] is data and session.get(PKG) is data
    assert response_headers(request) == []
    # Asked for explicitly, the client id is issued (and its cookie set),
    # and the container answers for it with the same, unstored data.
    client_id = IClientId(request)
    assert str(IClientId(request)) == str(client_id)
    assert set_cookie_headers(response_headers(request))
    container = container_for(PKG, request)
    assert container[client_id][PKG] is data
    assert container.get(client_id)[PKG] is data
    assert client_id not in container        # nothing stored yet
    # A value stored through either is the session's.
    container[client_id][PKG]['x'] = 1
    assert client_id in container and session[PKG]['x'] == 1
    assert session.exists()
    transaction.commit()


def test_get_before_getitem_finds_nothing(sessions):
    request = SessionTestClient().request()
    session = ISession(request)
    assert session.get(PKG) is None
    data = session[PKG]
    assert session.get(PKG) is data
    assert not session.exists()


def test_a_pending_package_of_an_invalidated_session_stores_nothing(
        sessions):
    manager, container = sessions
    request = SessionTestClient().request()
    stale = ISession(request)[PKG]
    ISession(request).invalidate()
    stale['x'] = 'after invalidate'
    client_id = IClientId(request)
    assert client_id not in container
    ISession(request)[PKG]['y'] = 'kept'
    assert dict(container[client_id][PKG]) == {'y': 'kept'}
    transaction.abort()


# -- Pyramid ----------------------------------------------------------------

def pyramid_reads(request):
    session = request.session
    assert session.get('user') is None and 'user' not in session
    assert len(session) == 0 and list(session) == []
    assert list(session.keys()) == [] and session.peek_flash() == []
    with pytest.raises(KeyError):
        session['user']
    read_everything(ISession(request)[PKG])
    return {'new': session.new}


@pytest.mark.parametrize('transactions', testing.PYRAMID_TRANSACTIONS)
@pytest.mark.parametrize('kind', sorted(CONTAINERS))
def test_pyramid_reading_request_session_creates_nothing(
        registry, db, transactions, kind):
    wsgi = testing.pyramid_app(db, {'/': pyramid_reads}, transactions)
    make = CONTAINERS[kind]
    if make is not None:
        # One container for both packages: two cookie containers may not
        # share a cookie's name.
        container = make()
        use_containers(db, **{'pyramid.session': container, PKG: container})
    meter = StorageMeter(db)
    responses = get_without_cookies(wsgi, '/', count=200)
    assert [r.json for r in responses] == [{'new': True}] * 200
    assert sum(len(set_cookie_headers(r)) for r in responses) == 0
    assert meter.bytes_added == 0 and not meter.committed


def test_a_new_package_of_a_stored_session_lives_one_transaction(
        registry, db):
    seen = []

    def opener(environ, start_response):
        request = environ['zodbsession.request']
        client_id = IClientId(request)
        stored = container_for('other', request)[client_id]
        if environ['PATH_INFO'] == '/open':
            other = ISession(request)['other']
            seen.append((stored['other'] is other,
                         stored.get('other') is other,
                         'other' in stored))
        else:
            seen.append(stored.get('other'))
        start_response('200 OK', [])
        return [b'']
    browser = webtest.TestApp(SessionMiddleware(app, db=db))
    browser.get('/write')
    opening = webtest.TestApp(SessionMiddleware(opener, db=db))
    for name, value in browser.cookies.items():
        opening.set_cookie(name, value)
    meter = StorageMeter(db)
    opening.get('/open')
    opening.get('/look')
    assert seen == [(True, True, False), None]
    assert not meter.committed


@pytest.mark.parametrize('transactions', testing.PYRAMID_TRANSACTIONS)
def test_one_container_for_two_packages_holds_one_session(
        registry, db, transactions):
    def write(request):
        # Both looked up before either is stored.
        one, two = ISession(request)['one'], ISession(request)['two']
        one['x'] = 1
        two['y'] = 2
        return {}

    def show(request):
        return {name: dict(ISession(request).get(name) or {})
                for name in ('one', 'two')}
    browser = webtest.TestApp(testing.pyramid_app(
        db, {'/write': write, '/show': show}, transactions))
    container = RAMSessionDataContainer()
    use_containers(db, one=container, two=container)
    browser.get('/write')
    assert browser.get('/show').json == {'one': {'x': 1}, 'two': {'y': 2}}


def test_a_finite_cookie_lifetime_is_renewed_by_a_session_in_use(sessions):
    manager, container = sessions
    manager.cookieLifetime = 600
    client = SessionTestClient()
    first = client.request()
    ISession(first)[PKG]['x'] = 1
    client.receive(first)
    transaction.commit()
    reading = client.request()
    assert ISession(reading)[PKG]['x'] == 1
    assert ISession(reading)[PKG].get('y') is None
    renewed = set_cookie_headers(response_headers(reading))
    assert len(renewed) == 1 and 'Max-Age=600' in renewed[0]
    # A new client that only reads still gets nothing.
    stranger = SessionTestClient().request()
    assert ISession(stranger)[PKG].get('x') is None
    assert response_headers(stranger) == []
