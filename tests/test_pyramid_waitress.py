"""The Pyramid test application under waitress: real HTTP, 8 threads.

The browser is ``urllib`` with a cookie jar that does not follow
redirects, so the cookies of a redirect are checked too. Concurrent
requests of one client increment one counter: the conflicts they cause
are retried (by pyramid_retry, or by zodbsession's policy without it),
and no request ever uses a connection, or a persistent object, that
another running request uses. Every wait is bounded.
"""
import json
import threading
import urllib.request

import pytest

from zodbsession.pyramid.hosting import HOSTING_KEY
from zodbsession.site import site_of
from zodbsession.testing.servers import waitress_serving
from zodbsession.testing.workers import SessionHTTPClient

from test_pyramid import DECIDE_BY_RESPONSE
from test_pyramid import db  # noqa: F401  (the fixture)
from test_pyramid import make_config

THREADS = 8
ROUNDS = 100
TIMEOUT = 30            # seconds any one wait may take


def serving(wsgi_app):
    """``wsgi_app`` served by waitress on a free port, in a thread."""
    return waitress_serving(wsgi_app, threads=THREADS)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kw):
        return None


class Browser(SessionHTTPClient):
    """One browser of the Pyramid application: redirects are answers, not
    followed; answers are (status, headers, JSON or None)."""

    def __init__(self, url):
        super().__init__()
        self.url = url
        self._opener = urllib.request.build_opener(_NoRedirect)

    def _open(self, outgoing, timeout):
        return self._opener.open(outgoing, timeout=timeout)

    def request(self, path, form=None, headers=None):
        status, reply_headers, body = self.send(
            self.url, path, form, timeout=TIMEOUT, headers=headers)
        content = (json.loads(body) if reply_headers.get_content_type()
                   == 'application/json' else None)
        return status, reply_headers, content


class ConnectionWatch:
    """Records any connection used by two running requests at once."""

    def __init__(self):
        self.in_use = set()
        self.overlaps = []
        self.foreign = []
        self._lock = threading.Lock()

    def enter(self, request, connection):
        with self._lock:
            if id(connection) in self.in_use:
                self.overlaps.append(connection)
            self.in_use.add(id(connection))
        request.add_finished_callback(
            lambda _request: self._leave(connection))

    def _leave(self, connection):
        with self._lock:
            self.in_use.discard(id(connection))


def increment(request):
    """Adds one to the session's counter; the first attempts of requests
    that ask to (``meet``) meet at a barrier after reading, so their
    commits certainly overlap."""
    state = request.registry.state
    session = request.session
    value = session.get('n', 0)
    connection = request.environ[HOSTING_KEY].site.connection
    state.watch.enter(request, connection)
    # The record the session uses came through this request's connection.
    record = session._existing()._owner
    if record._p_jar is not connection:
        state.watch.foreign.append(record)
    attempt = request.environ.get(
        'retry.attempt', request.environ.get('zodbsession.attempt'))
    with state.lock:
        state.attempts.append(attempt)
    if attempt == 0 and request.POST.get('meet'):
        state.barrier.wait(TIMEOUT)
    session['n'] = value + 1
    return {'n': value + 1}


def make_server_app(db, mode):
    # At the defaults: zodbsession's, and pyramid_retry's three attempts.
    config = make_config(db, mode)
    config.add_route('increment', '/increment')
    config.add_view(increment, route_name='increment', renderer='json',
                    request_method='POST')
    state = config.registry.state
    state.watch = ConnectionWatch()
    state.lock = threading.Lock()
    state.attempts = []
    state.barrier = threading.Barrier(THREADS)
    return config.make_wsgi_app(), state


@pytest.mark.parametrize('mode', ['own', 'tm'])
def test_login_flash_csrf_and_failure_over_http(db, mode):  # noqa: F811
    app, state = make_server_app(db, mode)
    with serving(app) as url:
        browser = Browser(url)
        status, _, page = browser.request('/form')
        token = page['csrf']
        first_id = browser.cookies['zodbsession']
        status, _, _ = browser.request('/login', {'user': 'eve'})
        assert status == 400
        status, headers, _ = browser.request(
            '/login', {'user': 'alice', 'csrf_token': token})
        assert (status, headers['Location']) == (302, url + '/')
        assert browser.cookies['zodbsession'] != first_id
        status, _, page = browser.request('/')
        assert page['user'] == 'alice'
        assert page['flash'] == ['Welcome, alice']
        status, headers, page = browser.request('/boom', {})
        assert (status, page) == (500, {'error': 'boom'})
        assert headers.get_all('Set-Cookie') is None
        status, _, page = browser.request('/')
        assert (page['user'], page['flash']) == ('alice', [])


@pytest.mark.parametrize('mode', ['own', 'tm', 'tm_veto'])
def test_flash_then_raised_redirect_over_http(db, mode):  # noqa: F811
    # At the defaults of zodbsession and pyramid_tm: the redirect carries
    # a new client's cookie, and the next page shows the message, unless
    # pyramid_tm runs without its commit veto (then it aborts).
    app = make_config(db, mode).make_wsgi_app()
    kept = mode in DECIDE_BY_RESPONSE
    with serving(app) as url:
        browser = Browser(url)
        status, headers, _ = browser.request('/flash-redirect')
        assert (status, headers['Location']) == (302, url + '/')
        assert ('zodbsession' in browser.cookies) == kept
        status, _, page = browser.request('/')
        assert (status, page['flash']) == (200, ['saved'] if kept else [])
        status, _, page = browser.request('/flash-forbid')
        assert status == 403
        status, _, page = browser.request('/')
        assert page['flash'] == []


@pytest.mark.parametrize('mode', ['own', 'tm'])
def test_concurrent_increments_lose_nothing(db, mode):  # noqa: F811
    app, state = make_server_app(db, mode)
    with serving(app) as url:
        browser = Browser(url)
        browser.request('/cart', {'item': 'start'})   # one client id
        errors = []

        def run():
            try:
                for round_ in range(ROUNDS):
                    # The first round meets: every thread's first attempt
                    # reads before any commits.
                    status, _, _ = browser.request(
                        '/increment', {'meet': '1'} if round_ == 0 else {})
                    if status != 200:
                        errors.append(status)
            except BaseException as exc:      # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, daemon=True)
                   for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT * ROUNDS)
        assert not any(thread.is_alive() for thread in threads)
        assert errors == []
        status, _, page = browser.request('/info')
        assert page['keys'] == ['cart', 'n']
    with db.transaction() as connection:
        record = site_of(connection).container.get(
            browser.cookies['zodbsession'])
        assert record['pyramid.session']['n'] == THREADS * ROUNDS
    retried = sum(1 for attempt in state.attempts if attempt)
    print(f'{mode}: {THREADS * ROUNDS} increments, {retried} retries')
    assert retried >= THREADS - 1   # the first round's all conflicted
    assert state.watch.overlaps == []
    assert state.watch.foreign == []
