"""Hostile cookies: hypothesis strategies and the invariants they attack.

Shared by ``tests/test_fuzz_cookies.py`` (a few thousand examples, the
same ones every run) and ``bench/fuzz_campaign.py`` (as many as you let
it run, new ones each time). A *target* is a name, a strategy and a check;
the check raises AssertionError when an invariant breaks:

- no exception escapes a parser or verifier, and no request gets a 500;
- nothing but an exact, validly signed value is accepted;
- a client never sees another client's data;
- a client without a valid cookie is given a fresh, valid id.
"""
import io
import json
import string

import webob
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st

from zodbsession import IClientId
from zodbsession import ISession
from zodbsession import clock
from zodbsession.clientid import CookieClientIdManager
from zodbsession.cookiecodec import CookieCodec
from zodbsession.cookiecodec import generate_encryption_key
from zodbsession.cookiecodec import normalize_encryption_keys
from zodbsession.cookiecontainer import CookieSessionDataContainer
from zodbsession.requests import EnvironCookies
from zodbsession.requests import WSGIRequest
from zodbsession.signing import Signer
from zodbsession.signing import b64decode
from zodbsession.signing import b64encode
from zodbsession.site import change_site
from zodbsession.wsgi import REQUEST_KEY
from zodbsession.wsgi import SessionMiddleware

SECRET = 'fuzz-secret-number-one-long-enough'
RETIRED_SECRET = 'fuzz-secret-retired-long-enough'
NAMESPACE = 'zodbsession'
DATA_COOKIE = 'zodbsession_data'
DB_PKG = 'fuzz.db'            # kept in the persistent container
COOKIE_PKG = 'fuzz.cookie'    # kept in the client-side cookie container
START = 1_700_000_000

B64 = string.ascii_letters + string.digits + '-_'


def suite_settings(max_examples):
    """Settings for the test suite: the same examples on every run."""
    return settings(max_examples=max_examples, derandomize=True,
                    database=None, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


# -- strategies -----------------------------------------------------------

def any_text(max_size=200):
    """Any code points at all, lone surrogates and control chars included."""
    return st.text(st.characters(exclude_categories=()), max_size=max_size)


def latin1_text(max_size=200):
    """What a WSGI server can put in a header: code points below 256."""
    return st.text(st.characters(max_codepoint=255, exclude_categories=()),
                   max_size=max_size)


def cookie_syntax_text(max_size=60):
    """Text dense in what cookie parsers split and unquote on."""
    return st.text(st.sampled_from(
        list(';=," \\\t.\x00\x7f\xff-_') + list('aA0')), max_size=max_size)


def huge_text(alphabet='A.=;"\\ é\x00'):
    """Values from just under to far over every length limit."""
    return st.builds(lambda char, count: char * count,
                     st.sampled_from(alphabet), st.integers(100, 70_000))


def b64_text(min_size=0, max_size=90):
    return st.text(st.sampled_from(B64), min_size=min_size, max_size=max_size)


def payloads():
    """Payloads a signer may be asked to sign (ASCII, maybe with dots)."""
    return st.one_of(b64_text(1, 60),
                     st.text(st.characters(max_codepoint=127,
                                           exclude_categories=()),
                             min_size=1, max_size=60))


def _flip(value, index, char):
    index %= len(value)
    return value[:index] + char + value[index + 1:]


def _swap(mine, theirs):
    """My payload under their signature."""
    return mine.rpartition('.')[0] + '.' + theirs.rpartition('.')[2]


def _sibling_last_char(value):
    """The same signature bytes spelled differently (non-zero spare bits)."""
    head, last = value[:-1], value[-1:]
    if last not in B64:
        return value + 'A'
    return head + B64[B64.index(last) ^ 1]


# Each takes (value, number, text, char, other valid value).
MUTATIONS = {
    'truncate': lambda v, n, t, c, o: v[:n % len(v)],
    'flip': lambda v, n, t, c, o: _flip(v, n, c),
    'append': lambda v, n, t, c, o: v + t,
    'prepend': lambda v, n, t, c, o: t + v,
    'insert': lambda v, n, t, c, o: v[:n % len(v)] + t + v[n % len(v):],
    'swap': lambda v, n, t, c, o: _swap(v, o),
    'swap_back': lambda v, n, t, c, o: _swap(o, v),
    'padded': lambda v, n, t, c, o: v + '=' * (1 + n % 3),
    'plus_slash': lambda v, n, t, c, o: v.replace('-', '+').replace('_', '/'),
    'sibling': lambda v, n, t, c, o: _sibling_last_char(v),
    'upper': lambda v, n, t, c, o: v.swapcase(),
    'doubled': lambda v, n, t, c, o: v + '.' + v.rpartition('.')[2],
    'no_signature': lambda v, n, t, c, o: v.rpartition('.')[0],
    'concatenated': lambda v, n, t, c, o: v + o,
}


def tampered(valid_values):
    """(original, tampered) pairs: a valid value and a forgery of it."""
    def apply(args):
        original, name, number, text, char, other = args
        return original, MUTATIONS[name](original, number, text, char, other)
    return st.tuples(
        st.sampled_from(valid_values), st.sampled_from(sorted(MUTATIONS)),
        st.integers(0, 10**6), any_text(8).filter(bool),
        st.sampled_from(B64 + '.=+/ '), st.sampled_from(valid_values),
    ).map(apply)


def cookie_values(known_values):
    """Cookie values: known good ones, their forgeries, and garbage."""
    return st.one_of(
        st.sampled_from(known_values),
        tampered(known_values).map(lambda pair: pair[1]),
        st.sampled_from(known_values).map(lambda v: f'"{v}"'),
        cookie_syntax_text(),
        latin1_text(40),
        b64_text(80, 90).map(lambda text: text[:43] + '.' + text[43:]),
        huge_text(),
    )


def cookie_names(known_names):
    known = st.sampled_from(known_names)
    return st.one_of(known, known, known, known.map(str.upper),
                     known.map(lambda name: ' ' + name),
                     cookie_syntax_text(12), latin1_text(12))


SEPARATORS = ['; ', ';', ',', ', ', ' ; ', '\t;', ';;', '; ; ']


def _join_pairs(pairs):
    header = ''.join(
        (f'{name}={value}' if with_equals else name) + separator
        for name, value, separator, with_equals in pairs)
    # Browsers send no code point above 255 in a header, and a WSGI
    # server hands the header on as latin-1 text: keep what survives that.
    return header.encode('latin-1', 'replace').decode('latin-1')


def cookie_headers(known_names, known_values, known_pairs=()):
    """A raw ``Cookie`` header, as a WSGI server would pass it on.

    Mostly structured (repeated names, known values and their forgeries,
    quotes, odd separators), sometimes arbitrary or huge. ``known_pairs``,
    real (name, value) cookies of several clients, are also mixed as they
    are: one client's id with another's data, in any order.
    """
    pair = st.tuples(cookie_names(known_names), cookie_values(known_values),
                     st.sampled_from(SEPARATORS), st.booleans())
    structured = st.lists(pair, max_size=6).map(_join_pairs)
    choices = [structured, structured, structured, structured,
               latin1_text(300), huge_text()]
    if known_pairs:
        real = st.tuples(st.sampled_from(known_pairs).map(lambda p: p[0]),
                         st.sampled_from(known_pairs).map(lambda p: p[1]),
                         st.just('; '), st.just(True))
        mixed = st.lists(st.one_of(
            st.sampled_from(known_pairs).map(lambda p: (*p, '; ', True)),
            real, pair), min_size=1, max_size=4).map(_join_pairs)
        choices += [mixed, mixed, mixed]
    return st.one_of(*choices)


# -- targets ----------------------------------------------------------------

class Target:
    """A strategy and the invariants a drawn example must keep."""

    def __init__(self, name, strategy, check):
        self.name = name
        self.strategy = strategy
        self.check = check


def signer_targets():
    signer = Signer(SECRET, 'fuzz')
    retired = Signer(RETIRED_SECRET, 'fuzz')
    rotated = Signer([SECRET, RETIRED_SECRET], 'fuzz')
    known = [signer.sign(p) for p in ('alice', 'bob', 'a.b.c', 'x' * 60)]

    def check_unsign(value):
        result = signer.unsign(value)
        if result is not None:
            # Accepted: then it is exactly what we would have signed.
            assert signer.sign(result) == value

    def check_round_trip(payload):
        value = signer.sign(payload)
        assert signer.unsign(value) == payload
        assert rotated.unsign(value) == payload
        assert retired.unsign(value) is None
        # Signed with a secret that was rotated out: rejected once it
        # leaves the list, accepted while it is still on it.
        old = retired.sign(payload)
        assert signer.unsign(old) is None
        assert rotated.unsign(old) == payload

    def check_tampered(pair):
        original, forged = pair
        if forged == original:
            return
        result = signer.unsign(forged)
        assert result is None or signer.sign(result) == forged, forged

    def check_b64decode(text):
        try:
            data = b64decode(text)
        except ValueError:
            return
        assert b64encode(data) == text

    return [
        Target('signer.unsign(any text)', st.one_of(
            any_text(), cookie_syntax_text(), huge_text(),
            st.sampled_from(known)), check_unsign),
        Target('signer.unsign(non-str)', st.one_of(
            st.binary(max_size=100), st.integers(), st.none(),
            st.lists(st.text(max_size=5), max_size=3)), check_unsign),
        Target('signer rotation round trip', payloads(), check_round_trip),
        Target('signer.unsign(tampered)', tampered(known), check_tampered),
        Target('b64decode', st.one_of(b64_text(), any_text(40),
                                      b64_text().map(lambda t: t + '=')),
               check_b64decode),
    ]


def codec_targets():
    key = generate_encryption_key()
    plain = CookieCodec(SECRET, cookie_name=DATA_COOKIE)
    sealed = CookieCodec(SECRET, normalize_encryption_keys(key), DATA_COOKIE)
    other_name = CookieCodec(SECRET, normalize_encryption_keys(key), 'other')
    retired = CookieCodec(RETIRED_SECRET, cookie_name=DATA_COOKIE)
    documents = [{'owner': 'alice'}, {'owner': 'bob', 'n': [1, 2]}, {}]
    known = ([plain.encode(d) for d in documents]
             + [sealed.encode(d) for d in documents])

    def check_decode(value):
        for codec in (plain, sealed):
            document = codec.decode(value)
            assert document is None or isinstance(document, dict)
            if document is not None:
                assert value in known, value

    def check_tampered(pair):
        original, forged = pair
        for codec in (plain, sealed):
            document = codec.decode(forged)
            if forged != original:
                assert document is None, forged

    def check_cross(document):
        # Sealed for another cookie name, or signed with a retired
        # secret, or in the clear once encryption is on: not ours.
        assert sealed.decode(other_name.encode(document)) is None
        assert plain.decode(retired.encode(document)) is None
        assert sealed.decode(plain.encode(document)) is None
        assert sealed.decode(sealed.encode(document)) == document

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(-2**53, 2**53)
        | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=10)
    return [
        Target('codec.decode(any text)', st.one_of(
            any_text(), cookie_syntax_text(), huge_text(),
            st.sampled_from(['p', 'e', 'p.', 'e.', 'pAAAA.', 'eAAAA.'])),
            check_decode),
        Target('codec.decode(tampered)', tampered(known), check_tampered),
        Target('codec cross-use', st.dictionaries(
            st.text(max_size=8), json_values, max_size=4), check_cross),
    ]


def _environ(header=None, method='GET'):
    environ = {
        'REQUEST_METHOD': method, 'SCRIPT_NAME': '', 'PATH_INFO': '/',
        'QUERY_STRING': '', 'SERVER_NAME': 'localhost',
        'SERVER_PORT': '80', 'SERVER_PROTOCOL': 'HTTP/1.1',
        'wsgi.version': (1, 0), 'wsgi.url_scheme': 'http',
        'wsgi.input': io.BytesIO(b''), 'wsgi.errors': io.StringIO(),
        'wsgi.multithread': False, 'wsgi.multiprocess': False,
        'wsgi.run_once': False,
    }
    if header is not None:
        environ['HTTP_COOKIE'] = header
    return environ


def manager_targets():
    """CookieClientIdManager reading raw headers of WSGI and WebOb
    requests (registry needed)."""
    manager = CookieClientIdManager(NAMESPACE, secret=SECRET)
    retired = CookieClientIdManager(NAMESPACE, secret=RETIRED_SECRET)
    known = [manager.generateUniqueId() for _ in range(3)]
    retired_ids = [retired.generateUniqueId() for _ in range(2)]

    def check_header(header):
        request = WSGIRequest(_environ(header))
        accepted = manager.getRequestId(request)
        assert accepted is None or manager.verify(accepted)
        assert accepted not in retired_ids
        if accepted is not None:
            assert accepted in header
        # A WebOb (so Pyramid) request on the same header reads the same.
        assert manager.getRequestId(webob.Request(_environ(header))) == (
            accepted)
        client_id = manager.getClientId(request)
        assert manager.verify(client_id)
        cookies = EnvironCookies(request)
        if accepted is None:
            # A fresh id, set on the response: never one the client chose.
            assert client_id not in header
            assert cookies.get_cookie(NAMESPACE) == client_id
        else:
            assert client_id == accepted

    return [
        Target('manager.getClientId(raw header)', st.one_of(
            cookie_headers([NAMESPACE], known + retired_ids),
            any_text(300)), check_header),
    ]


def publisher_targets():
    """The zope.publisher adapter reading raw headers (registry needed)."""
    from zope.publisher.http import HTTPRequest

    manager = CookieClientIdManager(NAMESPACE, secret=SECRET)
    retired = CookieClientIdManager(NAMESPACE, secret=RETIRED_SECRET)
    known = [manager.generateUniqueId() for _ in range(3)]
    retired_ids = [retired.generateUniqueId()]

    def check_header(header):
        request = HTTPRequest(io.BytesIO(), _environ(header))
        accepted = manager.getRequestId(request)
        assert accepted is None or (manager.verify(accepted)
                                    and accepted in header)
        client_id = manager.getClientId(request)
        assert manager.verify(client_id)
        if accepted is None:
            assert client_id not in header
            cookie = request.response.getCookie(NAMESPACE)
            assert cookie['value'] == client_id

    return [
        Target('publisher cookies(raw header)', st.one_of(
            cookie_headers([NAMESPACE], known + retired_ids),
            any_text(300)), check_header),
    ]


def _app(environ, start_response):
    """Lists the data this client's session holds, and its id."""
    request = environ[REQUEST_KEY]
    session = ISession(request)
    found = {}
    for pkg_id in (DB_PKG, COOKIE_PKG):
        data = session.get(pkg_id)
        if data is not None:
            found[pkg_id] = dict(data)
    if environ.get('PATH_INFO') == '/store':
        owner = environ['QUERY_STRING']
        for pkg_id in (DB_PKG, COOKIE_PKG):
            session[pkg_id]['owner'] = owner
    body = json.dumps({'id': IClientId(request), 'found': found}).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]


class MiddlewareWorld:
    """A middleware over ``db`` with three clients that have data.

    ``retired`` stored its data while the site signed with a secret that
    was then dropped; ``alice`` and ``bob`` are current clients. Their
    cookies are real ones, taken from the responses that set them.
    """

    def __init__(self, db):
        self.db = db
        self.clock = clock.ManualClock(START)
        self.middleware = SessionMiddleware(
            _app, db=db, secret=[RETIRED_SECRET], timeout=3600,
            resolution=60)
        change_site(db, lambda site: site.register_container(
            COOKIE_PKG, CookieSessionDataContainer(secret=RETIRED_SECRET)))
        self.clients = {}
        self.clients['retired'] = self._store('retired')
        change_site(db, lambda site: site.configure(secret=[SECRET]))
        change_site(db, lambda site: setattr(
            site.containers()[COOKIE_PKG], 'secret', SECRET))
        for owner in ('alice', 'bob'):
            self.clients[owner] = self._store(owner)
        self.known_values = [value for cookies in self.clients.values()
                             for value in cookies.values()]
        self.current = {owner: cookies[NAMESPACE]
                        for owner, cookies in self.clients.items()
                        if owner != 'retired'}
        self.manager = CookieClientIdManager(NAMESPACE, secret=SECRET)

    def call(self, header=None, path='/', query=''):
        with clock.use_clock(self.clock):
            return self._call(header, path, query)

    def _call(self, header, path, query):
        environ = _environ(header)
        environ['PATH_INFO'] = path
        environ['QUERY_STRING'] = query
        captured = {}

        def start_response(status, headers, exc_info=None):
            captured['status'] = status
            captured['headers'] = headers

        body = b''.join(self.middleware(environ, start_response))
        return captured['status'], captured['headers'], json.loads(body)

    def _store(self, owner):
        status, headers, body = self.call(path='/store', query=owner)
        assert status == '200 OK', status
        cookies = {}
        for name, value in headers:
            if name == 'Set-Cookie':
                morsel = value.split(';', 1)[0]
                cookie_name, _, cookie_value = morsel.partition('=')
                cookies[cookie_name] = cookie_value
        assert set(cookies) == {NAMESPACE, DATA_COOKIE}, cookies
        # The stored data is really there before anyone attacks it.
        header = '; '.join(f'{n}={v}' for n, v in cookies.items())
        status, headers, body = self.call(header)
        assert body['found'] == {DB_PKG: {'owner': owner},
                                 COOKIE_PKG: {'owner': owner}}, body
        return cookies

    def check(self, header):
        status, headers, body = self.call(header)
        # Never an error page.
        assert status == '200 OK', status
        client_id = body['id']
        assert self.manager.verify(client_id)
        owners = {data['owner'] for data in body['found'].values()}
        # Never somebody else's data: only the owner of the id the app
        # was given, and only when that exact id was in the header.
        for owner in owners:
            assert owner in self.current, (owner, header)
            assert self.current[owner] == client_id, (owner, header)
            assert client_id in header
        set_ids = [value.split(';', 1)[0].partition('=')[2]
                   for name, value in headers
                   if name == 'Set-Cookie'
                   and value.startswith(NAMESPACE + '=')]
        if client_id not in self.current.values():
            # Not a known client: a fresh id, issued now, that the
            # client did not choose.
            assert set_ids == [client_id], (set_ids, header)
            assert client_id not in header
            assert not owners
            assert 'Set-Cookie' in dict(headers)
            cache = dict(headers).get('Cache-Control', '')
            assert 'no-cache' in cache or 'no-store' in cache

    def target(self):
        pairs = [pair for cookies in self.clients.values()
                 for pair in sorted(cookies.items())]
        return Target('middleware end to end(raw header)', cookie_headers(
            [NAMESPACE, DATA_COOKIE], self.known_values, pairs), self.check)

