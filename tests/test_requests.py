"""IRequestCookies for WSGI, WebOb and Pyramid requests."""
import sys

import hypothesis
import pytest
import webob
import webtest
from zope.interface.verify import verifyObject

from zodbsession import IClientId
from zodbsession import IRequestCookies
from zodbsession import ISession
from zodbsession import WSGIRequest
from zodbsession.context import install
from zodbsession.context import context_of
from zodbsession.requests import EnvironCookies
from zodbsession.requests import PendingResponse
from zodbsession.testing import response_headers


def wsgi_request(**environ):
    return WSGIRequest(dict({'REQUEST_METHOD': 'GET'}, **environ))


REQUEST_KINDS = {
    'wsgi': lambda cookie: wsgi_request(HTTP_COOKIE=cookie),
    'webob': lambda cookie: webob.Request.blank(
        '/', headers={'Cookie': cookie}),
    'pyramid': lambda cookie: __import__(
        'pyramid.request', fromlist=['Request']).Request.blank(
            '/', headers={'Cookie': cookie}),
}


@pytest.mark.parametrize('kind', sorted(REQUEST_KINDS))
def test_adapter_is_registered_and_verifies(registry, kind):
    request = REQUEST_KINDS[kind]('a=1')
    cookies = IRequestCookies(request)
    assert isinstance(cookies, EnvironCookies)
    assert verifyObject(IRequestCookies, cookies)


@pytest.mark.parametrize('kind', sorted(REQUEST_KINDS))
def test_get_set_delete_cookie(registry, kind):
    request = REQUEST_KINDS[kind]('a=1; b="two words"')
    cookies = IRequestCookies(request)
    assert cookies.get_cookie('a') == '1'
    assert cookies.get_cookie('b') == 'two words'
    assert cookies.get_cookie('missing') is None
    cookies.set_cookie('a', 'new')
    # What this request set wins over what it brought, for every adapter.
    assert IRequestCookies(request).get_cookie('a') == 'new'
    cookies.delete_cookie('b')
    assert cookies.get_cookie('b') is None
    headers = [value for name, value in response_headers(request)
               if name == 'Set-Cookie']
    assert len(headers) == 2
    assert any(value.startswith('a=new;') for value in headers)
    deleted = [value for value in headers if value.startswith('b=')][0]
    assert 'Max-Age=0' in deleted


def test_method_and_application_path(registry):
    cookies = IRequestCookies(wsgi_request(REQUEST_METHOD='post',
                                           SCRIPT_NAME='/shop'))
    assert cookies.method == 'POST'
    assert cookies.application_path == '/shop'
    bare = IRequestCookies(WSGIRequest({}))
    assert (bare.method, bare.application_path) == ('GET', '/')
    assert WSGIRequest({'REQUEST_METHOD': 'put'}).method == 'PUT'


def test_set_cookie_attributes(registry):
    request = wsgi_request()
    IRequestCookies(request).set_cookie(
        'sid', 'v', max_age=60, path='/p', domain='example.org',
        secure=True, httponly=True, samesite='Strict')
    [(name, value)] = response_headers(request)
    assert name == 'Set-Cookie'
    lowered = value.lower()
    for part in ('sid=v', 'max-age=60', 'path=/p', 'domain=example.org',
                 'secure', 'httponly', 'samesite=strict'):
        assert part in lowered, part


def test_set_header_replaces(registry):
    request = wsgi_request()
    cookies = IRequestCookies(request)
    cookies.set_header('Cache-Control', 'one')
    cookies.set_header('Cache-Control', 'two')
    assert response_headers(request) == [('Cache-Control', 'two')]


def test_nothing_pending_means_no_headers(registry):
    request = wsgi_request(HTTP_COOKIE='a=1')
    IRequestCookies(request).get_cookie('a')
    assert context_of(request).pending_if_any is None     # nothing made
    assert response_headers(request) == []
    assert not PendingResponse()


@pytest.mark.parametrize('header, expected', [
    ('zodbsession=\x00\xff', ''),
    ('zodbsession="unterminated', ''),
    ('"; ;=; zodbsession=ok', 'ok'),
    ('zodbsession=\u0100', None),       # not even latin-1: WebOb fails
])
def test_garbage_cookie_header_never_raises(registry, header, expected):
    cookies = IRequestCookies(wsgi_request(HTTP_COOKIE=header))
    assert cookies.get_cookie('zodbsession') == expected


def test_pending_response_applies_to_a_webob_response(sessions):
    request = webob.Request.blank('/')
    client_id = IClientId(request)
    response = webob.Response('ok')
    context_of(request).pending.apply(response)
    assert response.headers['Pragma'] == 'no-cache'
    cookies = [value for name, value in response.headerlist
               if name == 'Set-Cookie']
    assert len(cookies) == 1 and client_id in cookies[0]
    # The browser's next request carries it.
    again = webob.Request.blank(
        '/', headers={'Cookie': cookies[0].split(';')[0]})
    assert IClientId(again) == client_id


def test_webob_request_session(sessions):
    request = webob.Request.blank('/')
    ISession(request)['pkg']['k'] = 'v'
    cookie = dict(response_headers(request))['Set-Cookie'].split(';')[0]
    again = webob.Request.blank('/', headers={'Cookie': cookie})
    assert ISession(again)['pkg']['k'] == 'v'


def pyramid_app():
    from pyramid.config import Configurator
    from pyramid.response import Response

    def count(request):
        data = ISession(request)['visits']
        data['n'] = data.get('n', 0) + 1
        return Response(str(data['n']))

    def peek(request):
        data = ISession(request).get('visits')
        return Response('none' if data is None else str(data['n']))

    with Configurator() as config:
        config.add_route('count', '/count')
        config.add_view(count, route_name='count')
        config.add_route('peek', '/peek')
        config.add_view(peek, route_name='peek')
        return config.make_wsgi_app()


def test_pyramid_response_callback_sets_the_cookie(sessions):
    manager, container = sessions
    browser = webtest.TestApp(pyramid_app())
    assert browser.get('/peek').text == 'none'
    assert 'Set-Cookie' not in browser.get('/peek').headers
    response = browser.get('/count')
    assert response.text == '1'
    set_cookie = response.headers['Set-Cookie']
    assert set_cookie.startswith(manager.namespace + '=')
    assert 'HttpOnly' in set_cookie
    assert response.headers['Cache-Control'].startswith('no-cache')
    assert browser.get('/count').text == '2'
    assert browser.get('/peek').text == '2'
    assert webtest.TestApp(pyramid_app()).get('/peek').text == 'none'


def test_pyramid_blank_request_callbacks(sessions):
    from pyramid.request import Request
    from pyramid.response import Response
    request = Request.blank('/')
    client_id = IClientId(request)
    response = Response()
    request._process_response_callbacks(response)
    assert client_id in response.headers['Set-Cookie']


SET_COOKIE_CASES = [
    ('zodbsession', 'abc.DEF-_123', dict(
        max_age=3600, path='/', domain=None, secure=False, httponly=True,
        samesite='lax')),
    ('data', 'pXYZ.sig', dict(
        max_age=None, path='/shop', domain='example.com', secure=True,
        httponly=False, samesite='none')),
    # Values and names WebOb must quote or check are left to it.
    ('data', 'a b', dict(max_age=60, path='/')),
    ('data', '', dict(max_age=60, path='/')),
    ('we!rd', 'value', dict(max_age=60, path='/')),
    ('data', None, dict(path='/', domain=None)),       # deletion
]


@pytest.mark.filterwarnings('ignore::RuntimeWarning')
@pytest.mark.parametrize('prepared', [False, True],
                         ids=['attributes', 'prepared attributes'])
@pytest.mark.parametrize('name,value,attributes', SET_COOKIE_CASES)
def test_set_cookie_header_is_what_webob_writes(name, value, attributes,
                                                prepared):
    import time
    import webob.cookies
    from zodbsession.pending import PreparedAttributes
    from zodbsession.requests import set_cookie_header
    if prepared:
        # A session cookie's: its header text is kept with it.
        attributes = PreparedAttributes(attributes)
    # Twice: the first call fills the cache, the second reads it. Both
    # must equal WebOb's own text for the same second.
    for _ in range(2):
        while True:
            second = int(time.time())
            ours = set_cookie_header(name, value, attributes)
            theirs = webob.cookies.make_cookie(name, value, **attributes)
            if int(time.time()) == second:
                break   # else the expiry date moved in between: again
        assert ours == theirs


def test_prepared_cookie_attributes_cannot_change_under_their_text():
    """The Set-Cookie text kept with prepared attributes stays theirs:
    they refuse every change."""
    from zodbsession.pending import PreparedAttributes
    attributes = PreparedAttributes({'path': '/', 'max_age': 60})
    for change in (lambda: attributes.__setitem__('path', '/x'),
                   lambda: attributes.__delitem__('path'),
                   lambda: attributes.update(path='/x'),
                   lambda: attributes.pop('path'),
                   attributes.popitem, attributes.clear,
                   lambda: attributes.setdefault('domain', 'x')):
        with pytest.raises(TypeError, match='never changed'):
            change()
    with pytest.raises(TypeError, match='never changed'):
        attributes |= {'path': '/x'}
    assert attributes == {'path': '/', 'max_age': 60}


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(hypothesis.strategies.text(
    alphabet=hypothesis.strategies.characters(max_codepoint=0x3ff)))
def test_a_plain_cookie_value_is_what_the_plain_grammar_matches(text):
    from zodbsession.pending import PLAIN_COOKIE_VALUE
    from zodbsession.pending import is_plain_cookie_value
    assert is_plain_cookie_value(text) == bool(PLAIN_COOKIE_VALUE.match(text))
    plain = ''.join(c for c in text if PLAIN_COOKIE_VALUE.match(c))
    assert is_plain_cookie_value(plain)


def test_cookies_follow_a_changed_header(registry):
    # The header is parsed once per request, but a changed header (a
    # middleware rewriting it) is parsed again.
    request = wsgi_request(HTTP_COOKIE='a=1; b=2')
    assert request.get_request_cookie('a') == '1'
    request.environ['HTTP_COOKIE'] = 'a=3'
    assert request.get_request_cookie('a') == '3'
    assert request.get_request_cookie('b') is None


def test_a_committed_cookie_outlives_a_later_abort(registry):
    import transaction

    manager = transaction.TransactionManager()
    request = wsgi_request()
    # As a host makes it: the request's transactions are the manager's.
    context = request.context = install(
        request, transaction_manager=manager, cookies=request)
    cookies = IRequestCookies(request)
    manager.begin()
    # As a cookie container's tpc_finish sets them.
    cookies.set_cookie('kept', 'one', committed=True)
    cookies.set_header('X-Kept', 'yes', committed=True)
    pending = context.pending
    assert not pending.following       # nothing of it to take back
    cookies.set_cookie('dropped', 'two')
    cookies.set_header('X-Dropped', 'yes')
    assert pending.following
    manager.abort()
    assert set(pending.cookies) == {'kept'}
    assert pending.headers == {'X-Kept': 'yes'}
    pending.stop_following()


def test_a_cookie_session_response_is_kept_out_of_caches(registry):
    # Through our adapters in one call (IResponseCaching) ...
    from zodbsession.clientid import forbid_caching
    from zodbsession.interfaces import IResponseCaching
    from zodbsession.pending import NO_CACHE_HEADERS
    request = wsgi_request()
    cookies = IRequestCookies(request)
    assert IResponseCaching.providedBy(cookies)
    forbid_caching(cookies)
    assert response_headers(request) == list(NO_CACHE_HEADERS)

    # ... and header by header through an IRequestCookies without it.
    from zope.interface import implementer

    @implementer(IRequestCookies)
    class OnlyHeaders:
        def __init__(self):
            self.headers = []

        def set_header(self, name, value, committed=False):
            self.headers.append((name, value, committed))

    plain = OnlyHeaders()
    forbid_caching(plain, committed=True)
    assert plain.headers == [(name, value, True)
                             for name, value in NO_CACHE_HEADERS]


def test_a_session_cookie_is_set_with_its_no_cache_headers(registry):
    # Through our adapters in one call (ISessionCookies), with attributes
    # prepared once ...
    from zodbsession.clientid import set_session_cookie
    from zodbsession.interfaces import ISessionCookies
    from zodbsession.pending import NO_CACHE_HEADERS
    from zodbsession.pending import SessionCookieAttributes
    attributes = SessionCookieAttributes(
        path='/app', domain=None, secure=True, httponly=True,
        samesite='Strict', max_age=60)
    request = wsgi_request()
    cookies = IRequestCookies(request)
    assert ISessionCookies.providedBy(cookies)
    set_session_cookie(cookies, 'sid', 'v1', attributes)
    headers = response_headers(request)
    [cookie] = [value for name, value in headers if name == 'Set-Cookie']
    assert cookie.startswith('sid=v1; ')
    assert 'Path=/app' in cookie and 'secure' in cookie
    assert 'SameSite=strict' in cookie and 'Max-Age=60' in cookie
    assert [header for header in headers if header[0] != 'Set-Cookie'] == (
        list(NO_CACHE_HEADERS))
    # The same as set_cookie with those attributes, then forbid_caching.
    plain_request = wsgi_request()
    plain_cookies = IRequestCookies(plain_request)
    plain_cookies.set_cookie('sid', 'v1', **attributes.keywords)
    plain_cookies.forbid_caching()
    assert response_headers(plain_request) == headers

    # ... and through an IRequestCookies without it: set_cookie, then the
    # headers one by one.
    from zope.interface import implementer

    @implementer(IRequestCookies)
    class PlainCookies:
        def __init__(self):
            self.calls = []

        def set_cookie(self, name, value, committed=False, **attributes):
            self.calls.append(('cookie', name, value, committed, attributes))

        def set_header(self, name, value, committed=False):
            self.calls.append(('header', name, value, committed))

    plain = PlainCookies()
    set_session_cookie(plain, 'sid', 'v2', attributes, committed=True)
    assert plain.calls == [
        ('cookie', 'sid', 'v2', True, attributes.keywords)] + [
        ('header', name, value, True) for name, value in NO_CACHE_HEADERS]


def test_a_sites_own_cookies_adapter_sets_session_cookies_its_way(registry):
    # A site registers its own IRequestCookies, made from ours, that
    # changes how cookies are set (every cookie Secure, behind a TLS
    # proxy) and which headers keep caches away: the session cookies (the
    # client id's, a cookie container's) are set its way too.
    import transaction
    from zope.component import provideAdapter
    from zodbsession import CookieSessionDataContainer
    from zodbsession import testing

    class SecureCookies(EnvironCookies):
        def set_cookie(self, name, value, secure=False, **attributes):
            super().set_cookie(name, value, secure=True, **attributes)

        def forbid_caching(self, committed=False):
            self.set_header('Cache-Control', 'no-store', committed)

    testing.setUpSessions(prefs=CookieSessionDataContainer(
        secret='a-sites-own-adapter-secret-1'))
    provideAdapter(SecureCookies, (webob.Request,), IRequestCookies)
    request = webob.Request.blank('/')
    assert isinstance(IRequestCookies(request), SecureCookies)
    ISession(request)['prefs']['theme'] = 'dark'
    transaction.commit()
    headers = response_headers(request)
    cookies = [value for name, value in headers if name == 'Set-Cookie']
    assert sorted(value.split('=', 1)[0] for value in cookies) == [
        'zodbsession', 'zodbsession_data']
    for value in cookies:
        assert '; secure' in value.lower(), value
    assert [header for header in headers if header[0] != 'Set-Cookie'] == [
        ('Cache-Control', 'no-store')]


def test_a_cookie_header_read_lately_is_read_once_and_memory_is_bounded():
    # A returning client sends the same Cookie header with each request:
    # it is read (split, each value checked) once, then found again.
    from zodbsession.adaptation import environ as adaptation

    header = 'a=1; b="quoted"; c=x y'
    first = adaptation.cookie_texts(header)
    assert first == {'a': '1', 'b': 'quoted', 'c': 'x'}
    assert adaptation.cookie_texts(header) is first
    # A header too long to remember is read every time, the same way.
    long_header = 'a=1; pad=' + 'p' * adaptation.REMEMBERED_HEADER_LENGTH
    assert adaptation.cookie_texts(long_header) is not (
        adaptation.cookie_texts(long_header))
    assert adaptation.cookie_value(long_header, 'a') == '1'
    # A str subclass (which could equal a remembered header) is read in
    # full.

    class Sly(str):
        def __eq__(self, other):
            return True

        def __hash__(self):
            return hash(header)
    assert adaptation.cookie_texts(Sly('a=2')) == {'a': '2'}
    # So many other headers that the memory is emptied: the first is
    # read again.
    for number in range(adaptation.REMEMBERED_HEADERS):
        adaptation.cookie_texts(f'a={number}')
    again = adaptation.cookie_texts(header)
    assert again == first and again is not first
    # Fewer headers, but long ones: the characters held bound it too.
    assert adaptation.cookie_texts(header) is again
    length = adaptation.REMEMBERED_HEADER_LENGTH
    enough = adaptation.REMEMBERED_HEADER_CHARACTERS // length + 2
    for number in range(enough):
        last = f'n={number}; pad=' + 'p' * (length - 20)
        adaptation.cookie_texts(last)
    assert adaptation.cookie_texts(last) is adaptation.cookie_texts(last)
    third = adaptation.cookie_texts(header)
    assert third == first and third is not again


def _many_tiny_cookies():
    # Headers as long as are remembered, of some 2,000 distinct tiny
    # cookies each: each cookie is a name and a value of its own, some 20
    # times the memory of its characters.
    import string

    from zodbsession.adaptation import environ as adaptation

    letters = string.ascii_letters + string.digits
    body = ';'.join(f'{a}{b}=' for a in letters for b in letters)
    body = body[:adaptation.REMEMBERED_HEADER_LENGTH - 12]
    body = body[:body.rfind(';')]
    count = (adaptation.REMEMBERED_HEADER_CHARACTERS
             // adaptation.REMEMBERED_HEADER_LENGTH + 2)
    return [f'z{number:09d}=;{body}' for number in range(count)]


def _one_cookie_each():
    # As many headers as are remembered, each as long as fits with them.
    from zodbsession.adaptation import environ as adaptation

    count = adaptation.REMEMBERED_HEADERS + 2
    return [f'z{number:09d}=' + 'v' * 117 for number in range(count)]


@pytest.mark.parametrize('headers', [_many_tiny_cookies, _one_cookie_each])
def test_remembered_cookie_headers_hold_little_memory_whatever_they_hold(
        headers):
    # What a hostile client's headers can make the process remember stays
    # about 10 MB (the headers, their texts and the dicts), whatever the
    # headers hold.
    import tracemalloc

    from zodbsession.adaptation import environ as adaptation

    headers = headers()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for header in headers:
            adaptation.cookie_texts(header)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # (The headers were made before: counted as if all were held.)
    held = peak - start + sum(
        sys.getsizeof(header) for header in headers)
    assert held < 12 * 1024 * 1024


def test_as_many_cookie_headers_as_the_signer_remembers_ids_fit():
    # A site's returning clients, each with our client id cookie alone:
    # as many as the signer remembers ids are all remembered at once.
    from zodbsession.adaptation import environ as adaptation
    from zodbsession.clientid import REMEMBERED_IDS

    def header(number):
        return f'zodbsession={number:097d}'
    marker = adaptation.cookie_texts('marker=1')
    # Until the memory is emptied (the marker forgotten): it then holds
    # the header just read and the marker, read again.
    number = 0
    while adaptation.cookie_texts('marker=1') is marker:
        number += 1
        assert number <= 2 * adaptation.REMEMBERED_HEADERS
        adaptation.cookie_texts(header(number))
    first = adaptation.cookie_texts(header(number))
    for other in range(number + 1, number + REMEMBERED_IDS - 1):
        adaptation.cookie_texts(header(other))
    assert adaptation.cookie_texts(header(number)) is first
