"""One client's concurrent requests at the defaults a user gets.

``SessionMiddleware(app, db=db)`` and nothing else: 8 threads each send
100 requests with one client's cookie. Incrementing one key, the count
ends exact; changing a key of its own, every thread keeps all of its
changes; and every response is a 200. The same on the RAM container,
and under a real waitress server with 8 threads. Nothing here meets at
a barrier or raises a setting: the requests run as a server runs them.
"""
import threading

import pytest

from zodbsession import ISession
from zodbsession import RAMSessionDataContainer
from zodbsession import testing
from zodbsession.site import change_site
from zodbsession.testing import SessionTestClient
from zodbsession.testing.servers import waitress_serving
from zodbsession.testing.workers import SessionHTTPClient
from zodbsession.wsgi import ATTEMPT_KEY
from zodbsession.wsgi import REQUEST_KEY
from zodbsession.wsgi import SessionMiddleware

THREADS = 8
REQUESTS = 100
PKG = 'test.defaults'
TIMEOUT = 120       # seconds for the whole run (it takes about one)


class Counter:
    """Adds one to a key of ``PKG`` (``?key=`` or ``n``) and answers its
    new value; counts the attempts that were retries."""

    def __init__(self):
        self.retries = 0
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ[ATTEMPT_KEY]:
            with self._lock:
                self.retries += 1
        key = environ.get('QUERY_STRING', '').partition('key=')[2] or 'n'
        data = ISession(environ[REQUEST_KEY])[PKG]
        data[key] = data.get(key, 0) + 1
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [str(data[key]).encode()]


def read(middleware, client):
    """The client's ``PKG`` data, as a request of its own sees it."""
    found = {}

    def reader(environ, start_response):
        data = ISession(environ[REQUEST_KEY]).get(PKG)
        found.update(data or {})
        start_response('200 OK', [])
        return [b'']

    client.call(SessionMiddleware(reader, db=middleware.db))
    return found


def hammer(middleware, client, query_for):
    """THREADS threads of REQUESTS requests each; returns the statuses."""
    statuses = []
    lock = threading.Lock()

    def run(thread):
        for _ in range(REQUESTS):
            status, _, _ = client.call(
                middleware, QUERY_STRING=query_for(thread))
            with lock:
                statuses.append(status)

    testing.run_in_threads(
        [lambda thread=thread: run(thread) for thread in range(THREADS)],
        TIMEOUT)
    return statuses


@pytest.fixture(params=['persistent', 'ram'])
def middleware(request, db):
    counter = Counter()
    middleware = SessionMiddleware(counter, db=db)
    if request.param == 'ram':
        change_site(db, lambda site: site.register_container(
            PKG, RAMSessionDataContainer()))
    middleware.counter = counter
    return middleware


def test_eight_threads_incrementing_one_key_count_exactly(
        middleware, record_property):
    client = SessionTestClient()
    assert client.call(middleware)[0] == '200 OK'    # the session begins
    statuses = hammer(middleware, client, lambda thread: '')
    assert statuses == ['200 OK'] * (THREADS * REQUESTS)
    assert read(middleware, client) == {'n': THREADS * REQUESTS + 1}
    record_property('retries', middleware.counter.retries)
    print(f'\n{THREADS} x {REQUESTS} increments of one key:'
          f' {middleware.counter.retries} retries')


def test_eight_threads_changing_own_keys_keep_everything(middleware):
    client = SessionTestClient()
    client.call(middleware)
    statuses = hammer(middleware, client, lambda thread: f'key=k{thread}')
    assert statuses == ['200 OK'] * (THREADS * REQUESTS)
    assert read(middleware, client) == dict(
        {f'k{thread}': REQUESTS for thread in range(THREADS)}, n=1)
    # Different keys merge: not one request ran twice.
    assert middleware.counter.retries == 0


def test_waitress_with_eight_threads_counts_exactly(db):
    counter = Counter()
    middleware = SessionMiddleware(counter, db=db)
    with waitress_serving(middleware, threads=THREADS) as url:
        browser = SessionHTTPClient()
        browser.send(url, '/')
        statuses = []
        lock = threading.Lock()

        def run():
            for _ in range(REQUESTS):
                status, _, _ = browser.send(url, '/')
                with lock:
                    statuses.append(status)

        testing.run_in_threads([run] * THREADS, TIMEOUT)
        status, _, body = browser.send(url, '/')
    assert statuses == [200] * (THREADS * REQUESTS)
    # The last request added one to every increment before it.
    assert (status, body) == (200, str(THREADS * REQUESTS + 2).encode())
