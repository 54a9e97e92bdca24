"""zodbsession.current: the current request's session, in the middleware."""
import threading

import pytest
import webtest

from zodbsession import CookieSessionDataContainer
from zodbsession import WSGIRequest
from zodbsession import current
from zodbsession.site import change_site
from zodbsession.wsgi import SessionMiddleware

PREFS = 'demo.prefs'      # in a cookie
CART = 'shop.cart'        # in the database


def app(environ, start_response):
    """/set, /delete or just show, through zodbsession.current only."""
    path = environ['PATH_INFO']
    if path == '/set':
        current.set(PREFS, 'theme', 'dark')
        current.set(CART, 'items', ['apple'])
    elif path == '/delete':
        current.delete(PREFS, 'theme')
        current.delete(CART, 'not there')       # missing keys are fine
    body = f"{current.get(PREFS, 'theme', 'light')}" \
        f" {current.get(CART, 'items', [])}"
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [body.encode('utf-8')]


@pytest.fixture
def browser(db):
    middleware = SessionMiddleware(app, db=db)
    change_site(db, lambda site: site.register_container(
        PREFS, CookieSessionDataContainer()))
    return webtest.TestApp(middleware)


def test_get_set_delete_inside_the_middleware(browser, db):
    assert browser.get('/').text == 'light []'
    assert browser.get('/set').text == "dark ['apple']"
    assert browser.get('/').text == "dark ['apple']"
    assert set(browser.cookies) == {'zodbsession', 'zodbsession_data'}
    assert browser.get('/delete').text == "light ['apple']"
    assert browser.get('/').text == "light ['apple']"


def test_get_creates_nothing(browser, db):
    before = db.storage.lastTransaction()
    response = browser.get('/')
    assert response.headers.getall('Set-Cookie') == []
    assert db.storage.lastTransaction() == before


def test_current_request_is_the_middlewares(db):
    seen = []

    def spy(environ, start_response):
        seen.append(current.request() is environ['zodbsession.request'])
        start_response('200 OK', [])
        return [b'']

    webtest.TestApp(SessionMiddleware(spy, db=db)).get('/')
    assert seen == [True]
    with pytest.raises(current.NoCurrentRequest):
        current.request()    # over once the request is


@pytest.mark.parametrize('call', [
    lambda: current.get(PREFS, 'theme'),
    lambda: current.set(PREFS, 'theme', 'dark'),
    lambda: current.delete(PREFS, 'theme'),
    current.session,
    current.request,
], ids=['get', 'set', 'delete', 'session', 'request'])
def test_outside_a_request(call):
    with pytest.raises(current.NoCurrentRequest, match='SessionMiddleware'):
        call()


def test_no_current_request_is_a_lookup_error():
    assert issubclass(current.NoCurrentRequest, LookupError)


def test_serving_nests_and_restores():
    outer, inner = WSGIRequest({}), WSGIRequest({})
    with current.serving(outer):
        with current.serving(inner):
            assert current.request() is inner
        assert current.request() is outer
    with pytest.raises(current.NoCurrentRequest):
        current.request()


def test_serving_restores_after_an_error():
    with pytest.raises(RuntimeError):
        with current.serving(WSGIRequest({})):
            raise RuntimeError('boom')
    with pytest.raises(current.NoCurrentRequest):
        current.request()


def test_other_threads_do_not_see_the_request():
    # A context variable: a thread started during a request has its own
    # (empty) context, so it cannot touch another request's session.
    seen = []
    with current.serving(WSGIRequest({})):
        worker = threading.Thread(target=lambda: seen.append(
            _raises_no_current_request()))
        worker.start()
        worker.join()
    assert seen == [True]


def _raises_no_current_request():
    try:
        current.request()
    except current.NoCurrentRequest:
        return True
    return False
