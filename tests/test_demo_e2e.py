"""The demo served by ``zodbsession serve`` (waitress, 8 threads), used by
concurrent HTTP clients, each with its own cookie jar."""
import http.cookiejar
import json
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from zodbsession.testing.processes import child_command
from zodbsession.testing.processes import child_environment

START_TIMEOUT = 20
STOP_TIMEOUT = 15
REQUEST_TIMEOUT = 20
CLIENTS = 8
INCREMENTS = 25
ITEMS = ('apple', 'bread', 'cheese', 'coffee', 'tea')
THEMES = ('light', 'dark')
LANGUAGES = ('en', 'de', 'fr')
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class DemoServer:
    """``zodbsession serve`` in a subprocess."""

    def __init__(self, db_path, log_dir):
        self.db_uri = f'file://{db_path}'
        self.log_dir = log_dir
        self.process = None

    def start(self):
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        env = child_environment()
        self.stdout = open(self.log_dir / 'serve.out', 'w+')
        self.stderr = open(self.log_dir / 'serve.err', 'w+')
        self.process = subprocess.Popen(
            child_command('-m', 'zodbsession', 'serve', '--db',
                          self.db_uri, '--port', str(self.port),
                          '--threads', '8'),
            cwd=self.log_dir, env=env, stdout=self.stdout,
            stderr=self.stderr)
        self._wait_until_listening()
        return self

    def _wait_until_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f'serve exited with {self.process.returncode}:'
                    f' {self.errors()}')
            try:
                socket.create_connection(('127.0.0.1', self.port),
                                         timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)    # polling interval, not a wait for state
        self.process.kill()
        raise AssertionError(f'serve did not listen within {START_TIMEOUT}s')

    def first_line(self):
        self.stdout.seek(0)
        return self.stdout.readline().rstrip('\n')

    def errors(self):
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self):
        """SIGTERM, then wait (bounded); the exit status."""
        self.process.terminate()
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT)
            raise AssertionError('serve did not stop on SIGTERM')
        finally:
            self.stdout.close()
            self.stderr.close()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None     # a 303 is checked by the test, not followed


class Client:
    """A browser: its own cookie jar; redirects are not followed."""

    def __init__(self, base_url, cookie=None):
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirects)
        self.token = None
        if cookie is not None:
            self.set_cookie(cookie)

    def request(self, path, form=None):
        """(status, headers, body text)."""
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode('ascii')
        try:
            with self.opener.open(self.base_url + path, data=data,
                                  timeout=REQUEST_TIMEOUT) as response:
                return (response.status, response.headers,
                        response.read().decode('utf-8'))
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read().decode('utf-8')

    def page(self):
        """GET / (counts a visit); keeps the page's CSRF token."""
        status, headers, body = self.request('/')
        assert status == 200, body
        self.token = TOKEN.search(body).group(1)
        return body

    def post(self, path, **fields):
        status, headers, body = self.request(
            path, dict(fields, csrf_token=self.token))
        assert status == 303, (status, body)
        return headers

    def state(self):
        status, headers, body = self.request('/session.json')
        assert status == 200, body
        return json.loads(body)

    @property
    def cookie(self):
        values = [c.value for c in self.jar if c.name == 'zodbsession']
        assert len(values) <= 1
        return values[0] if values else None

    def set_cookie(self, value):
        self.jar.clear()
        self.jar.set_cookie(http.cookiejar.Cookie(
            0, 'zodbsession', value, None, False, '127.0.0.1', False, False,
            '/', True, False, None, False, None, None, {}))


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp('demo')
    running = DemoServer(directory / 's.fs', directory).start()
    yield running
    assert running.stop() == 0, running.errors()


def run_concurrently(functions):
    """Call each function in its own thread, all at once; their results."""
    barrier = threading.Barrier(len(functions))
    results = [None] * len(functions)
    errors = []

    def call(index, function):
        try:
            barrier.wait(timeout=REQUEST_TIMEOUT)
            results[index] = function()
        except BaseException as exc:     # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i, f))
               for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=4 * REQUEST_TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]
    return results


def shopper(base_url, number):
    """A client's scripted visit; returns (client, the data it expects)."""
    client = Client(base_url)

    def visit():
        cart = {}
        for step in range(INCREMENTS):
            client.page()
            if step % 5 == number % 5:
                item = ITEMS[(number + step) % len(ITEMS)]
                client.post('/cart/add', item=item, quantity=number + 1)
                cart[item] = cart.get(item, 0) + number + 1
        prefs = {'theme': THEMES[number % 2],
                 'language': LANGUAGES[number % 3]}
        client.post('/prefs', **prefs)
        return client, {'demo.counter': {'count': INCREMENTS},
                        'demo.cart': cart, 'demo.prefs': prefs}
    return visit


def test_startup_line_names_url_and_database(server):
    assert server.first_line() == (
        f'serving the zodbsession demo on {server.url}/'
        f' (database {server.db_uri})')


def test_concurrent_clients_each_keep_exactly_their_data(server):
    started = time.monotonic()
    logged = len(server.errors())
    results = run_concurrently(
        [shopper(server.url, number) for number in range(CLIENTS)])
    cookies = {client.cookie for client, _ in results}
    assert len(cookies) == CLIENTS and None not in cookies
    for client, expected in results:
        state = client.state()
        assert state['client_id'] == client.cookie[:8]
        assert state['data'] == expected
    assert time.monotonic() - started < 45
    assert 'Traceback' not in server.errors()[logged:]


def test_one_clients_concurrent_increments_lose_nothing(server):
    client = Client(server.url)
    client.page()
    cookie = client.cookie

    def increments():
        # Same cookie, another connection: like several browser tabs.
        # All change the same key, so they conflict and are retried.
        tab = Client(server.url, cookie)
        return [tab.request('/')[0] for _ in range(10)]
    statuses = sum(run_concurrently([increments] * 4), [])
    # A request that ran out of retries (500) changed nothing; every
    # other one counted exactly once.
    assert set(statuses) <= {200, 500}
    assert statuses.count(200) >= 30
    assert client.state()['data']['demo.counter'] == {
        'count': 1 + statuses.count(200)}
    assert client.cookie == cookie


def test_login_regenerates_the_id_and_keeps_the_data(server):
    client = Client(server.url)
    client.page()
    client.post('/cart/add', item='tea', quantity=2)
    before = client.cookie
    old_token = client.token
    client.post('/login', username='ada')
    after = client.cookie
    assert after != before
    state = client.state()
    assert state['data'] == {'demo.counter': {'count': 1},
                             'demo.cart': {'tea': 2},
                             'demo.auth': {'user': 'ada'}}
    # The old id reaches nothing any more (fixation defence).
    assert Client(server.url, before).state()['data'] == {}
    # The token was renewed at login: the old one is refused.
    status, _, _ = client.request(
        '/cart/add', {'item': 'tea', 'quantity': '1', 'csrf_token': old_token})
    assert status == 400
    assert '<strong id="user">ada</strong>' in client.page()


def test_logout_invalidates(server):
    client = Client(server.url)
    client.page()
    client.post('/login', username='bob')
    client.page()
    client.post('/cart/add', item='bread', quantity=1)
    logged_in = client.cookie
    client.post('/logout')
    assert client.cookie not in (None, logged_in)
    assert client.state()['data'] == {}
    assert Client(server.url, logged_in).state()['data'] == {}
    assert 'Any name will do' in client.page()


@pytest.mark.parametrize('token', [None, '', 'forged', 'other-client'])
def test_posts_without_the_right_csrf_token_are_refused(server, token):
    victim = Client(server.url)
    victim.page()
    other = Client(server.url)
    other.page()
    form = {'theme': 'dark', 'language': 'de'}
    if token == 'other-client':
        form['csrf_token'] = other.token
    elif token is not None:
        form['csrf_token'] = token
    status, _, body = victim.request('/prefs', form)
    assert status == 400
    assert 'CSRF token' in body
    assert 'demo.prefs' not in victim.state()['data']


def test_a_post_without_a_session_is_refused_and_creates_none(server):
    client = Client(server.url)
    status, headers, _ = client.request(
        '/login', {'username': 'eve', 'csrf_token': 'x'})
    assert status == 400
    assert client.cookie is None
    assert headers.get_all('Set-Cookie') is None


def test_bad_form_values_are_refused(server):
    client = Client(server.url)
    client.page()
    for path, form in [('/cart/add', {'item': 'caviar', 'quantity': '1'}),
                       ('/cart/add', {'item': 'tea', 'quantity': '1000'}),
                       ('/prefs', {'theme': 'pink', 'language': 'en'}),
                       ('/login', {'username': ''})]:
        form['csrf_token'] = client.token
        status, _, body = client.request(path, form)
        assert status == 400, (path, form)
    assert client.state()['data'] == {'demo.counter': {'count': 1}}


def test_healthz_sets_no_cookie(server):
    client = Client(server.url)
    status, headers, body = client.request('/healthz')
    assert (status, body) == (200, 'ok')
    assert headers.get_all('Set-Cookie') is None
    assert client.cookie is None
    # Reading an absent session creates none either.
    assert client.state() == {'client_id': None, 'data': {}}
    assert client.cookie is None


def test_data_survives_a_restart(tmp_path):
    server = DemoServer(tmp_path / 's.fs', tmp_path).start()
    try:
        alice, bob = Client(server.url), Client(server.url)
        for _ in range(3):
            alice.page()
        alice.post('/cart/add', item='coffee', quantity=4)
        bob.page()
        bob.post('/login', username='bob')
        expected = {alice.cookie: alice.state(), bob.cookie: bob.state()}
    finally:
        assert server.stop() == 0, server.errors()
    server = DemoServer(tmp_path / 's.fs', tmp_path).start()
    try:
        for client in (alice, bob):
            client.base_url = server.url     # a new port; same cookies
            assert client.state() == expected[client.cookie]
        assert alice.state()['data']['demo.cart'] == {'coffee': 4}
        alice.page()
        assert alice.state()['data']['demo.counter'] == {'count': 4}
    finally:
        assert server.stop() == 0, server.errors()


def test_log_out_my_other_sessions(server):
    laptop, phone = Client(server.url), Client(server.url)
    for client in (laptop, phone):
        client.page()
        client.post('/login', username='grace')
    page = laptop.page()
    assert '<strong id="other-sessions">1</strong>' in page
    assert 'log out my other sessions' in page
    laptop.post('/logout-others')
    # The phone starts afresh: signed out, its data gone.
    assert 'Any name will do' in phone.page()
    assert '<strong id="user">grace</strong>' in laptop.page()
    assert '<strong id="other-sessions">0</strong>' in laptop.page()
