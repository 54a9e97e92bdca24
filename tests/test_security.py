"""The security checklist of docs/security.rst, one test (or a few) per item.

Each test names the guarantee it checks; docs/security.rst points here.
"""
import ast
import hashlib
import hmac
import json
import logging
import os
import threading

import pytest
import webtest

import zodbsession
from zodbsession import IClientId
from zodbsession import ISession
from zodbsession import RAMSessionDataContainer
from zodbsession import clientid as clientid_module
from zodbsession import placement
from zodbsession import signing
from zodbsession.clientid import CookieClientIdManager
from zodbsession.clock import ManualClock
from zodbsession.clock import use_clock
from zodbsession.cookiecodec import CookieCodec
from zodbsession.cookiecontainer import CookieSessionDataContainer
from zodbsession.db import DatabaseOpenError
from zodbsession.db import open_database
from zodbsession.requests import cookie_value
from zodbsession.signing import Signer
from zodbsession.signing import b64decode
from zodbsession.site import SessionSite
from zodbsession.site import change_site
from zodbsession.site import site_of
from zodbsession.testing import filestorage_db
from zodbsession.wsgi import REQUEST_KEY
from zodbsession.wsgi import SessionMiddleware

SECRET = 'security-test-secret-number-one'
OLD_SECRET = 'security-test-secret-the-old-one'
COOKIE = 'zodbsession'
DATA_COOKIE = 'zodbsession_data'
DB_PKG, RAM_PKG, COOKIE_PKG = 'sec.db', 'sec.ram', 'sec.cookie'
PACKAGES = (DB_PKG, RAM_PKG, COOKIE_PKG)
START = 1_700_000_000


@pytest.fixture
def clock():
    with use_clock(ManualClock(START)) as manual:
        yield manual


def app(environ, start_response):
    """/store?v stores v in every package; /invalidate, /regenerate do so;
    every response lists what the session holds and the client id."""
    request = environ[REQUEST_KEY]
    session = ISession(request)
    action = environ.get('PATH_INFO', '/')
    if action == '/store':
        for pkg_id in PACKAGES:
            session[pkg_id]['v'] = environ['QUERY_STRING']
    elif action == '/invalidate':
        session.invalidate()
    elif action == '/regenerate':
        session.regenerate()
    elif action == '/fail':
        raise ConnectionError('storage server went away')
    found = {}
    for pkg_id in PACKAGES:
        data = session.get(pkg_id)
        if data is not None and 'v' in data:
            found[pkg_id] = data['v']
    body = json.dumps({'found': found, 'id': IClientId(request)}).encode()
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]


def make_site(db, **settings):
    """A browser on a middleware with a persistent, a RAM and a cookie
    container; settings go to the middleware; ``lifetime`` to all three."""
    lifetime = settings.pop('lifetime', 0)
    settings.setdefault('secret', SECRET)
    middleware = SessionMiddleware(app, db=db, **settings)

    def configure(site):
        timeout = site.container.timeout
        site.container.lifetime = lifetime
        site.register_container(RAM_PKG, RAMSessionDataContainer(
            timeout=timeout, resolution=site.container.resolution,
            lifetime=lifetime))
        site.register_container(COOKIE_PKG, CookieSessionDataContainer(
            secret=SECRET, timeout=timeout, lifetime=lifetime,
            resolution=site.container.resolution))
    change_site(db, configure)
    return webtest.TestApp(middleware)


def jar(browser):
    return {cookie.name: cookie.value for cookie in browser.cookiejar}


def replay(browser, cookies, path='/'):
    """A request carrying exactly ``cookies``, whatever the jar holds."""
    browser.cookiejar.clear()
    header = '; '.join(f'{name}={value}' for name, value in cookies.items())
    response = browser.get(path, headers={'Cookie': header})
    return response.json


def set_cookies(response):
    return response.headers.getall('Set-Cookie')


EVERYWHERE = {pkg_id: 'mine' for pkg_id in PACKAGES}


# -- client ids -------------------------------------------------------------

def test_client_id_is_256_bits_from_secrets(monkeypatch):
    calls = []
    real = clientid_module._secrets.token_bytes

    def spy(nbytes=None):
        calls.append(nbytes)
        return real(nbytes)
    monkeypatch.setattr(clientid_module._secrets, 'token_bytes', spy)
    manager = CookieClientIdManager(secret=SECRET)
    calls.clear()
    client_id = manager.generateUniqueId()
    assert calls == [32]
    # The placement character (where the session is filed), then the
    # random bits.
    placement_char, random_part = client_id[0], client_id.split('.')[0][1:]
    assert placement_char == placement.home_character()
    assert len(b64decode(random_part)) * 8 == 256


def test_client_id_signature_is_hmac_sha256():
    manager = CookieClientIdManager(secret=SECRET)
    payload, _, signature = manager.generateUniqueId().rpartition('.')
    key = hashlib.sha256(
        clientid_module._SALT.encode() + b'\0' + SECRET.encode()).digest()
    expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    assert b64decode(signature) == expected


class CompareDigestSpy:
    def __init__(self, monkeypatch):
        self.calls = 0
        self._real = hmac.compare_digest
        monkeypatch.setattr(signing.hmac, 'compare_digest', self)

    def __call__(self, a, b):
        self.calls += 1
        return self._real(a, b)


def test_signatures_are_compared_in_constant_time_with_every_key(
        monkeypatch):
    spy = CompareDigestSpy(monkeypatch)
    rotated = Signer([SECRET, OLD_SECRET], 'salt')
    good = rotated.sign('payload')
    forged = good[:-1] + ('A' if good[-1] != 'A' else 'B')
    for value in (good, forged, Signer(OLD_SECRET, 'salt').sign('x')):
        before = spy.calls
        rotated.unsign(value)
        # One constant-time comparison per key, even when the first
        # matches: timing tells neither validity nor which key.
        assert spy.calls - before == 2
    # The client id manager and the cookie codec verify the same way.
    manager = CookieClientIdManager(secret=SECRET)
    before = spy.calls
    assert manager.verify(manager.generateUniqueId())
    assert spy.calls - before == 1
    codec = CookieCodec(SECRET)
    before = spy.calls
    assert codec.decode(codec.encode({'a': 1})) == {'a': 1}
    assert spy.calls - before == 1


def test_signing_module_never_compares_with_equals():
    # Structural: the only comparison of MACs is hmac.compare_digest.
    with open(signing.__file__) as source:
        tree = ast.parse(source.read())
    unsign = next(node for node in ast.walk(tree)
                  if isinstance(node, ast.FunctionDef)
                  and node.name == 'unsign')
    compares = [node for node in ast.walk(unsign)
                if isinstance(node, ast.Compare)
                and any(isinstance(op, (ast.Eq, ast.NotEq))
                        for op in node.ops)]
    assert compares == []


def test_key_rotation_keeps_sessions_then_retires_old_ids(db, clock):
    browser = make_site(db, secret=OLD_SECRET)
    browser.get('/store?mine')
    old_cookies = jar(browser)
    # New secret first, old one still accepted: nobody is logged out.
    change_site(db, lambda site: site.configure(secret=[SECRET, OLD_SECRET]))
    body = replay(browser, old_cookies)
    assert body['found'][DB_PKG] == 'mine'
    assert body['id'] == old_cookies[COOKIE]
    fresh = CookieClientIdManager(secret=SECRET)
    response = browser.get('/', headers={'Cookie': ''})
    assert fresh.verify(response.json['id'])   # new ids use the new secret
    # Old secret dropped: its ids are foreign now, their data unreachable.
    change_site(db, lambda site: site.configure(secret=[SECRET]))
    body = replay(browser, old_cookies)
    assert body['found'].get(DB_PKG) is None
    assert body['found'].get(RAM_PKG) is None
    assert body['id'] != old_cookies[COOKIE] and fresh.verify(body['id'])


# -- session fixation ---------------------------------------------------------

@pytest.mark.parametrize('kind', ['unsigned', 'foreign', 'quoted-forgery'])
def test_client_chosen_id_is_never_adopted(db, clock, kind):
    browser = make_site(db)
    chosen = {
        'unsigned': 'attacker-chosen-session-id',
        'foreign': CookieClientIdManager(
            secret='some-other-sites-secret').generateUniqueId(),
        'quoted-forgery': '"' + 'A' * 43 + '.' + 'B' * 43 + '"',
    }[kind]
    response = browser.get('/store?mine', headers={
        'Cookie': f'{COOKIE}={chosen}'})
    issued = response.json['id']
    assert issued != chosen.strip('"')
    assert any(header.startswith(f'{COOKIE}={issued};')
               for header in set_cookies(response))
    with db.transaction() as connection:
        site = site_of(connection)
        assert site.container.get(chosen) is None
        assert site.container.get(issued)[DB_PKG]['v'] == 'mine'


# -- expiry -----------------------------------------------------------------

def test_expired_session_returns_no_old_data(db, clock):
    browser = make_site(db, timeout=60, resolution=10)
    browser.get('/store?mine')
    cookies = jar(browser)
    clock.advance(60 + 10 + 1)
    body = replay(browser, cookies)
    assert body['found'] == {}


def test_expired_session_id_gets_a_new_id(db, clock):
    browser = make_site(db, timeout=60, resolution=10)
    browser.get('/store?mine')
    cookies = jar(browser)
    clock.advance(60 + 10 + 1)
    body = replay(browser, cookies, '/store?again')
    assert body['id'] != cookies[COOKIE]


def test_idle_timeout_ends_the_session_in_every_container(db, clock):
    browser = make_site(db, timeout=60, resolution=10)
    browser.get('/store?mine')
    clock.advance(50)
    assert browser.get('/').json['found'] == EVERYWHERE   # still alive
    cookies = jar(browser)
    clock.advance(60 + 10 + 1)
    assert replay(browser, cookies)['found'] == {}


def test_absolute_lifetime_ends_an_active_session(db, clock):
    browser = make_site(db, timeout=60, resolution=10, lifetime=300)
    browser.get('/store?mine')
    for _ in range(9):             # active every 30 s: never idle
        clock.advance(30)
        assert browser.get('/').json['found'] == EVERYWHERE
    clock.advance(30 + 1)          # 301 s after creation
    assert browser.get('/').json['found'] == {}


# -- invalidate and regenerate ------------------------------------------------

def test_invalidate_changes_the_id_and_the_old_id_reaches_nothing(db, clock):
    browser = make_site(db)
    browser.get('/store?mine')
    old = jar(browser)
    body = browser.get('/invalidate').json
    assert body['id'] != old[COOKIE] and body['found'] == {}
    assert browser.get('/').json['found'] == {}
    assert server_side(replay(browser, old)['found']) == {}


def test_regenerate_changes_the_id_and_the_old_id_reaches_nothing(db, clock):
    browser = make_site(db)
    browser.get('/store?mine')
    old = jar(browser)
    body = browser.get('/regenerate').json
    assert body['id'] != old[COOKIE]
    assert browser.get('/').json['found'] == EVERYWHERE   # data kept
    assert server_side(replay(browser, old)['found']) == {}


def server_side(found):
    return {pkg_id: v for pkg_id, v in found.items() if pkg_id != COOKIE_PKG}


@pytest.mark.parametrize('action', ['/invalidate', '/regenerate'])
def test_replayed_cookie_session_lives_at_most_its_timeout(db, clock, action):
    # The documented limit of client-side data: the server keeps no state
    # to revoke, so a copy of the old cookies (not the browser, which was
    # told to drop them) still reads its own old data until the
    # container's timeout.
    browser = make_site(db, timeout=60, resolution=10)
    browser.get('/store?mine')
    old = jar(browser)
    browser.get(action)
    assert replay(browser, old)['found'] == {COOKIE_PKG: 'mine'}
    clock.advance(61)
    assert replay(browser, old)['found'] == {}


# -- cookies -----------------------------------------------------------------

def _cookie_header(response, name):
    [header] = [h for h in set_cookies(response)
                if h.startswith(name + '=')]
    return [part.strip().lower() for part in header.split(';')]


def test_cookies_default_to_httponly_and_samesite_lax(db, clock):
    browser = make_site(db)
    response = browser.get('/store?mine')
    for name in (COOKIE, DATA_COOKIE):
        attributes = _cookie_header(response, name)
        assert 'httponly' in attributes
        assert 'samesite=lax' in attributes
        assert 'secure' not in attributes


def test_secure_when_configured(db, clock):
    browser = make_site(db, secure=True)
    response = browser.get('/store?mine',
                           extra_environ={'wsgi.url_scheme': 'https'})
    for name in (COOKIE, DATA_COOKIE):
        assert 'secure' in _cookie_header(response, name)


def test_samesite_none_forces_secure(db, clock):
    browser = make_site(db, sameSite='None')
    response = browser.get('/', extra_environ={'wsgi.url_scheme': 'https'})
    attributes = _cookie_header(response, COOKIE)
    assert 'samesite=none' in attributes and 'secure' in attributes


def _no_cache(response):
    return ('no-cache' in response.headers.get('Cache-Control', '')
            and response.headers.get('Pragma') == 'no-cache'
            and 'Expires' in response.headers)


def test_every_response_that_sets_a_cookie_forbids_caching(db, clock):
    browser = make_site(db)
    first = browser.get('/store?one')         # sets the id and data cookie
    assert set_cookies(first) and _no_cache(first)
    second = browser.get('/store?two')        # sets only the data cookie
    assert [h for h in set_cookies(second) if h.startswith(DATA_COOKIE)]
    assert not [h for h in set_cookies(second) if h.startswith(COOKIE + '=')]
    assert _no_cache(second)
    third = browser.get('/')                  # sets nothing
    assert set_cookies(third) == [] and not _no_cache(third)


# -- secrets ------------------------------------------------------------------

def test_default_secret_is_generated_per_database_and_stored(tmp_path):
    secrets = []
    for name in ('one', 'two'):
        directory = tmp_path / name
        directory.mkdir()
        with filestorage_db(str(directory)) as db:
            SessionMiddleware(app, db=db)
            with db.transaction() as connection:
                secrets.append(site_of(connection).client_id_manager.secret)
        # Reopened, the database keeps its secret.
        with filestorage_db(str(directory)) as db:
            SessionMiddleware(app, db=db)
            with db.transaction() as connection:
                assert site_of(connection).client_id_manager.secret == (
                    secrets[-1])
    first, second = secrets
    assert first != second
    for (secret,) in secrets:
        assert len(b64decode(secret)) == 32      # secrets.token_urlsafe(32)


def test_no_secret_is_a_constant_in_the_package_code():
    generated = CookieClientIdManager().secret[0]
    package = os.path.dirname(zodbsession.__file__)
    constants = set()
    for directory, _, files in os.walk(package):
        for filename in files:
            if not filename.endswith('.py') or filename.startswith(
                    'testing'):
                continue
            with open(os.path.join(directory, filename)) as source:
                tree = ast.parse(source.read())
            constants.update(node.value for node in ast.walk(tree)
                             if isinstance(node, ast.Constant)
                             and isinstance(node.value, str))
            # No parameter named like a secret defaults to a string.
            for function in ast.walk(tree):
                if not isinstance(function, ast.FunctionDef):
                    continue
                arguments = function.args
                named = arguments.args[len(arguments.args)
                                       - len(arguments.defaults):]
                pairs = list(zip(named, arguments.defaults)) + list(
                    zip(arguments.kwonlyargs, arguments.kw_defaults))
                for argument, default in pairs:
                    if 'secret' in argument.arg:
                        assert not (isinstance(default, ast.Constant)
                                    and isinstance(default.value, str)), (
                            filename, function.name)
    assert generated not in constants
    # Nothing in the code could serve as a default secret: the container
    # and the site generate theirs too, differently every time.
    assert CookieSessionDataContainer().secret != (
        CookieSessionDataContainer().secret)
    assert SessionSite().client_id_manager.secret != (
        SessionSite().client_id_manager.secret)


def _secret_texts():
    return [SECRET, OLD_SECRET, 'hunter2-database-password']


def test_no_secret_in_repr_or_str(db, clock):
    manager = CookieClientIdManager(secret=[SECRET, OLD_SECRET])
    objects = [manager, manager._signer, Signer(SECRET, 'x'),
               CookieCodec(SECRET), CookieSessionDataContainer(secret=SECRET),
               SessionSite()]
    browser = make_site(db)
    objects.append(browser.app)
    with db.transaction() as connection:
        site = site_of(connection)
        objects += [site, site.client_id_manager] + list(
            site.containers().values())
        texts = [repr(o) + str(o) for o in objects]
        generated = site.client_id_manager.secret
    for text in texts:
        for secret in _secret_texts() + list(generated):
            assert secret not in text, text


def test_no_secret_in_logs_or_error_messages(db, clock, caplog):
    caplog.set_level(logging.DEBUG)
    browser = make_site(db)
    messages = []
    browser.get('/store?mine')
    browser.get('/', headers={'Cookie': f'{COOKIE}=forged.value'})
    change_site(db, lambda site: site.configure(secret=[OLD_SECRET, SECRET]))
    browser.get('/regenerate')
    browser.get('/fail', status=503)
    for bad in ('too-short', ['ok-' + SECRET, 'short']):
        with pytest.raises(ValueError) as info:
            CookieClientIdManager(secret=bad)
        messages.append(str(info.value))
        assert 'too-short' not in messages[-1] and 'short' != messages[-1]
    with pytest.raises(DatabaseOpenError) as info:
        open_database('postgres://user:hunter2-database-password@/x?'
                      'host=/nonexistent')
    messages.append(str(info.value))
    assert 'hunter2' not in messages[-1] and '***' in messages[-1]
    logged = caplog.text + '\n'.join(messages)
    assert 'storage unavailable' in caplog.text     # the 503 was logged
    for secret in _secret_texts():
        assert secret not in logged


# -- hostile input cost -------------------------------------------------------

def test_hostile_cookie_header_is_read_in_linear_time():
    # WebOb's cookie regex is quadratic in a run without '=': a 256 KB
    # header (waitress' limit) would cost a worker about a quarter of an
    # hour of CPU. Reading ours must not; the bound is 10,000 times what
    # a linear scan needs, so this is no timing test on a loaded machine.
    header = 'A' * 256 * 1024 + f'; {COOKIE}=value'
    result = []
    worker = threading.Thread(
        target=lambda: result.append(cookie_value(header, COOKIE)),
        daemon=True)
    worker.start()
    worker.join(60)
    assert result == ['value']
