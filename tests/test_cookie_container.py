"""CookieSessionDataContainer: one package's data in a signed cookie.

Most tests drive real requests through SessionMiddleware (FileStorage in a
temporary directory) with WebTest: package ``demo.prefs`` lives in the
cookie, ``shop.cart`` in the database's unnamed container. A test action
travels in the WSGI environ and is called with the request's session.
"""
import copy
import enum
import json
import pickle

import pytest
import transaction
import webtest
from zope.interface.verify import verifyObject
from zope.schema.interfaces import ValidationError

from zodbsession import CookieSessionDataContainer
from zodbsession import IClientId
from zodbsession import IRequestBoundContainer
from zodbsession import ISession
from zodbsession import ISessionDataContainer
from zodbsession import SessionTooLarge
from zodbsession import testing
from zodbsession.clock import ManualClock
from zodbsession.clock import use_clock
from zodbsession.cookiecodec import _SALT
from zodbsession.cookiecodec import CookieCodec
from zodbsession.cookiecodec import generate_encryption_key
from zodbsession.cookiecodec import normalize_encryption_keys
from zodbsession.signing import Signer
from zodbsession.signing import b64encode
from zodbsession.site import change_site
from zodbsession.wsgi import SessionMiddleware

PREFS = 'demo.prefs'
CART = 'shop.cart'
DATA = 'zodbsession_data'
SECRET = 'cookie-container-test-secret-1'
NEW_SECRET = 'cookie-container-test-secret-2'
KEY = generate_encryption_key()
NEW_KEY = generate_encryption_key()


# -- the site under test ------------------------------------------------------

def app(environ, start_response):
    """Runs the test's action, then shows both packages' data."""
    session = environ['zodbsession.session']
    action = environ.get('test.action')
    if action is not None:
        action(session)
    shown = {}
    for pkg_id in (PREFS, CART):
        data = session.get(pkg_id)
        shown[pkg_id] = None if data is None else dict(data)
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(shown).encode('utf-8')]


class Site:
    """A middleware on ``db`` with a cookie container for PREFS."""

    def __init__(self, db, container, **settings):
        self.db = db
        self.middleware = SessionMiddleware(app, db=db, **settings)
        change_site(db, lambda site: site.register_container(
            PREFS, container))
        self.codec = CookieCodec(
            container.secret, container.encryption_key,
            container.cookie_name)

    def browser(self):
        return webtest.TestApp(self.middleware)


@pytest.fixture
def make_site(db):
    def make(secret=SECRET, settings=None, **container_settings):
        return Site(db, CookieSessionDataContainer(
            secret=secret, **container_settings), **(settings or {}))
    return make


@pytest.fixture
def site(make_site):
    return make_site()


@pytest.fixture
def clock():
    with use_clock(ManualClock(1_700_000_000)) as manual:
        yield manual


def visit(browser, action=None, **kw):
    environ = {'test.action': action} if action is not None else {}
    return browser.get('/', extra_environ=environ, **kw)


def setter(pkg_id, **values):
    def action(session):
        session[pkg_id].update(values)
    return action


def set_cookies(response):
    """{name: (value, lower-case attribute text)} of the response."""
    found = {}
    for header in response.headers.getall('Set-Cookie'):
        morsel, _, attributes = header.partition(';')
        name, _, value = morsel.partition('=')
        found[name] = (value, attributes.lower())
    return found


def put_cookie(browser, name, value):
    """Make the browser send ``value``, verbatim, as its cookie ``name``.

    An existing cookie is changed in place (WebTest's set_cookie would add
    a second one beside it, and the server might read either).
    """
    for cookie in browser.cookiejar:
        if cookie.name == name:
            cookie.value = value
            return
    browser.set_cookie(name, value)


def data_cookie(response):
    """The data cookie the response sets ('' = deleted), or None."""
    return set_cookies(response).get(DATA, (None,))[0]


# -- where the data lives ---------------------------------------------------

def test_data_travels_in_the_cookie_and_is_read_back(site):
    browser = site.browser()
    response = visit(browser, setter(PREFS, theme='dark', sizes=[1, 2.5]))
    document = site.codec.decode(data_cookie(response))
    assert document['d'] == {PREFS: {'theme': 'dark', 'sizes': [1, 2.5]}}
    assert visit(browser).json[PREFS] == {'theme': 'dark', 'sizes': [1, 2.5]}


def test_cookie_only_change_writes_nothing_to_storage(site):
    browser = site.browser()
    visit(browser, setter(CART, items=['apple']))
    before = site.db.storage.lastTransaction()
    response = visit(browser, setter(PREFS, theme='dark'))
    assert data_cookie(response)
    assert site.db.storage.lastTransaction() == before
    # The other package's change does reach the database.
    visit(browser, setter(CART, items=['apple', 'pear']))
    assert site.db.storage.lastTransaction() != before
    assert visit(browser).json == {
        PREFS: {'theme': 'dark'}, CART: {'items': ['apple', 'pear']}}


def test_verify_objects(site):
    container = CookieSessionDataContainer(secret=SECRET)
    assert verifyObject(IRequestBoundContainer, container)
    view = container.bind(testing.SessionTestClient().request())
    assert verifyObject(ISessionDataContainer, view)


def test_container_without_a_request_says_how_to_use_it():
    container = CookieSessionDataContainer(secret=SECRET)
    with pytest.raises(TypeError, match=r'bind\(request\)'):
        container['some-client-id']
    with pytest.raises(TypeError, match='ISession'):
        'some-client-id' in container
    assert container.sweep_expired() == 0
    assert repr(container) == (
        "<CookieSessionDataContainer cookie='zodbsession_data'"
        " encrypted=False>")


def test_two_cookie_containers_keep_separate_cookies(db):
    site = Site(db, CookieSessionDataContainer(secret=SECRET))
    change_site(db, lambda s: s.register_container(CART, (
        CookieSessionDataContainer(secret=SECRET, cookie_name='cart_data'))))
    browser = site.browser()
    response = visit(browser, lambda session: (
        session[PREFS].update(theme='dark'),
        session[CART].update(items=['apple'])))
    assert {DATA, 'cart_data'} <= set(set_cookies(response))
    assert site.db.storage.lastTransaction() == db.storage.lastTransaction()
    assert visit(browser).json == {
        PREFS: {'theme': 'dark'}, CART: {'items': ['apple']}}


# -- bad cookies: empty data, status 200 --------------------------------------

def _resigned(site, good, change):
    """``good``'s document, changed, re-encoded with our own keys."""
    document = site.codec.decode(good)
    change(document)
    return CookieCodec(SECRET, max_length=100_000).encode(document)


def _retexted(site, good, old, new):
    """``good``'s JSON text with ``old`` replaced by ``new``, signed with
    our own keys: what only a holder of the secret can make."""
    text = site.codec.decode_text(good)[1]
    assert old in text
    return CookieCodec(SECRET).encode_text(text.replace(old, new))


def _flip(text, index):
    return text[:index] + ('B' if text[index] != 'B' else 'C') + \
        text[index + 1:]


def _signed(payload):
    return Signer(SECRET, _SALT).sign(payload)


BAD_COOKIES = {
    'tampered payload': lambda site, good: _flip(good, 20),
    'tampered signature': lambda site, good: _flip(good, len(good) - 10),
    'truncated': lambda site, good: good[:len(good) // 2],
    'signature cut off': lambda site, good: good.rpartition('.')[0],
    'other secret': lambda site, good: CookieCodec(NEW_SECRET).encode(
        site.codec.decode(good)),
    'non-JSON, validly signed': lambda site, good: _signed(
        'p' + b64encode(b'{"t": 1, oops')),
    'JSON list, validly signed': lambda site, good: _signed(
        'p' + b64encode(json.dumps([1, 2]).encode())),
    'client binding missing': lambda site, good: _resigned(
        site, good, lambda document: document.pop('c')),
    'time missing': lambda site, good: _resigned(
        site, good, lambda document: document.pop('t')),
    'data missing': lambda site, good: _resigned(
        site, good, lambda document: document.pop('d')),
    'time not a number': lambda site, good: _resigned(
        site, good, lambda document: document.update(t='soon')),
    'time true': lambda site, good: _resigned(
        site, good, lambda document: document.update(t=True)),
    'creation time not a number': lambda site, good: _resigned(
        site, good, lambda document: document.update(o='long ago')),
    'data not an object': lambda site, good: _resigned(
        site, good, lambda document: document.update(d=[1])),
    'package data not an object': lambda site, good: _resigned(
        site, good, lambda document: document['d'].update({PREFS: 'x'})),
    'oversize, validly signed': lambda site, good: _resigned(
        site, good, lambda document: document['d'][PREFS].update(
            pad='x' * 5000)),
    'non-ASCII garbage': lambda site, good: 'p\xe9\xff' + good[3:],
    # JSON's proper text only, and one document in the layout written:
    # these read back as data no commit could store again, or failed.
    'NaN, validly signed': lambda site, good: _retexted(
        site, good, '{"n":1}', '{"n":NaN}'),
    'Infinity in a list, validly signed': lambda site, good: _retexted(
        site, good, '{"n":1}', '{"n":[-Infinity]}'),
    'a lone surrogate, validly signed': lambda site, good: _retexted(
        site, good, '{"n":1}', '{"n":["\\ud800"]}'),
    'a key after the data, validly signed': lambda site, good: _retexted(
        site, good, '{"n":1}}}', '{"n":[1]}},"x":1}'),
    'the data twice, validly signed': lambda site, good: _retexted(
        site, good, '"d":{"demo.prefs":{"n":1}}',
        '"d":{},"d":{"demo.prefs":{"n":[1]}}'),
}


@pytest.mark.parametrize('kind', list(BAD_COOKIES))
def test_bad_cookie_means_empty_data_never_an_error(site, kind):
    browser = site.browser()
    good = data_cookie(visit(browser, setter(PREFS, n=1)))
    bad = BAD_COOKIES[kind](site, good)
    assert bad != good
    put_cookie(browser, DATA, bad)

    sent = []
    response = visit(browser, lambda session: sent.append(
        session.request.environ['HTTP_COOKIE']), status=200)
    assert f'{DATA}={bad}' in sent[0]        # the server did get it
    assert response.json[PREFS] is None

    # The client starts afresh, in a new, valid cookie.
    response = visit(browser, setter(PREFS, fresh=True), status=200)
    assert response.json[PREFS] == {'fresh': True}
    assert site.codec.decode(data_cookie(response))['d'] == {
        PREFS: {'fresh': True}}


def test_oversize_cookie_value_is_ignored(site):
    browser = site.browser()
    visit(browser, setter(PREFS, n=1))
    put_cookie(browser, DATA, 'p' + 'A' * 5000)
    assert visit(browser, status=200).json[PREFS] is None


def test_expired_cookie_means_empty_data(make_site, clock):
    site = make_site(timeout=600, resolution=60)
    browser = site.browser()
    visit(browser, setter(PREFS, n=1))
    clock.advance(600)
    assert visit(browser).json[PREFS] == {'n': 1}   # refreshes the cookie
    clock.advance(601)   # unread for more than the timeout: expired
    assert visit(browser, status=200).json[PREFS] is None


def test_a_remembered_cookie_value_still_expires_and_a_forged_one_is_not_remembered(
        make_site, clock):
    # A value that passed is remembered (its signature is not checked
    # again when it comes back), but its times are judged on every read:
    # past the timeout the same value reads as absent. A value that fails
    # never enters the memory.
    site = make_site(timeout=600, resolution=60)
    # Containers of the same settings share one memory (the site's
    # snapshot copies its container).
    reads = CookieSessionDataContainer(secret=SECRET).remembered_reads
    browser = site.browser()
    visit(browser, setter(PREFS, n=1))
    value = browser.cookies[DATA]
    clock.advance(10)
    assert visit(browser).json[PREFS] == {'n': 1}
    assert value in reads
    assert browser.cookies[DATA] == value       # nothing was sent again
    clock.advance(600)
    assert visit(browser, status=200).json[PREFS] is None
    forged = value[:-1] + ('A' if value[-1] != 'A' else 'B')
    put_cookie(browser, DATA, forged)
    assert visit(browser, status=200).json[PREFS] is None
    assert forged not in reads


def test_another_clients_cookie_shows_nothing(site):
    alice, bob = site.browser(), site.browser()
    visit(alice, setter(PREFS, secret_note='for alice only'))
    visit(bob, setter(CART, items=['apple']))      # bob has his own id
    assert alice.cookies['zodbsession'] != bob.cookies['zodbsession']

    put_cookie(bob, DATA, alice.cookies[DATA])
    assert visit(bob, status=200).json == {
        PREFS: None, CART: {'items': ['apple']}}
    assert visit(alice).json[PREFS] == {'secret_note': 'for alice only'}


def test_data_cookie_without_a_client_id_shows_nothing(site):
    alice = site.browser()
    visit(alice, setter(PREFS, n=1))
    stranger = site.browser()
    stranger.set_cookie(DATA, alice.cookies[DATA])
    assert visit(stranger, status=200).json[PREFS] is None


@pytest.mark.parametrize('kind', [
    'clear text', 'other encryption key', 'tampered ciphertext'])
def test_bad_cookie_for_an_encrypting_container(make_site, kind):
    site = make_site(encryption_key=KEY)
    browser = site.browser()
    good = data_cookie(visit(browser, setter(PREFS, n=1)))
    document = site.codec.decode(good)
    assert document['d'] == {PREFS: {'n': 1}}
    bad = {
        'clear text': lambda: CookieCodec(SECRET).encode(document),
        'other encryption key': lambda: CookieCodec(
            SECRET, normalize_encryption_keys(NEW_KEY), DATA).encode(
                document),
        'tampered ciphertext': lambda: _flip(good, 30),
    }[kind]()
    put_cookie(browser, DATA, bad)
    assert visit(browser, status=200).json[PREFS] is None


# -- encryption ---------------------------------------------------------------

def test_encrypted_cookie_hides_the_data(make_site):
    site = make_site(encryption_key=KEY)
    browser = site.browser()
    value = data_cookie(visit(browser, setter(PREFS, theme='dark')))
    assert value.startswith('e')
    assert 'dark' not in value and CookieCodec(SECRET).decode(value) is None
    assert site.codec.decode(value)['d'] == {PREFS: {'theme': 'dark'}}
    assert visit(browser).json[PREFS] == {'theme': 'dark'}


# -- key rotation -----------------------------------------------------------

def _reconfigure(db, **settings):
    def change(site):
        container = site.containers()[PREFS]
        for name, value in settings.items():
            setattr(container, name, value)
    change_site(db, change)


def test_secret_rotation(site, db):
    browser = site.browser()
    visit(browser, setter(PREFS, n=1))
    _reconfigure(db, secret=[NEW_SECRET, SECRET])
    assert visit(browser).json[PREFS] == {'n': 1}    # old cookie still read

    value = data_cookie(visit(browser, setter(PREFS, n=2)))
    assert CookieCodec(NEW_SECRET).decode(value)['d'] == {PREFS: {'n': 2}}
    assert CookieCodec(SECRET).decode(value) is None

    _reconfigure(db, secret=[NEW_SECRET])            # old secret retired
    assert visit(browser).json[PREFS] == {'n': 2}


def test_encryption_key_rotation(make_site, db):
    site = make_site(encryption_key=KEY)
    browser = site.browser()
    visit(browser, setter(PREFS, n=1))
    _reconfigure(db, encryption_key=[NEW_KEY, KEY])
    assert visit(browser).json[PREFS] == {'n': 1}

    value = data_cookie(visit(browser, setter(PREFS, n=2)))
    only_new = CookieCodec(SECRET, normalize_encryption_keys(NEW_KEY), DATA)
    only_old = CookieCodec(SECRET, normalize_encryption_keys(KEY), DATA)
    assert only_new.decode(value)['d'] == {PREFS: {'n': 2}}
    assert only_old.decode(value) is None

    _reconfigure(db, encryption_key=NEW_KEY)
    assert visit(browser).json[PREFS] == {'n': 2}


def test_retired_secret_makes_old_cookies_empty(site, db):
    browser = site.browser()
    visit(browser, setter(PREFS, n=1))
    _reconfigure(db, secret=NEW_SECRET)
    assert visit(browser, status=200).json[PREFS] is None


# -- configuration ---------------------------------------------------------

def test_short_secret_is_rejected_at_configuration():
    with pytest.raises(ValueError, match='at least 16 bytes'):
        CookieSessionDataContainer(secret='short')
    with pytest.raises(ValueError, match='at least 16 bytes'):
        CookieSessionDataContainer(secret=[SECRET, 'short'])
    container = CookieSessionDataContainer(secret=SECRET)
    with pytest.raises(ValueError, match='at least 16 bytes'):
        container.secret = 'short'
    assert container.secret == (SECRET,)


@pytest.mark.parametrize('key', [b'\0' * 16, b'\0' * 31, 'c2hvcnQ'])
def test_encryption_key_not_32_bytes_is_rejected(key):
    with pytest.raises(ValueError, match=r'32 bytes \(AES-256\)'):
        CookieSessionDataContainer(secret=SECRET, encryption_key=key)


def test_rejected_configuration_change_is_not_stored(site, db):
    with pytest.raises(ValueError, match='32 bytes'):
        _reconfigure(db, encryption_key=b'too short')
    browser = site.browser()
    value = data_cookie(visit(browser, setter(PREFS, n=1)))
    assert value.startswith('p')     # still signing only


def test_default_secret_is_generated():
    first = CookieSessionDataContainer()
    second = CookieSessionDataContainer()
    assert len(first.secret[0]) >= 32 and first.secret != second.secret


def test_bad_cookie_settings_are_rejected():
    with pytest.raises(TypeError, match="no setting 'samesite'.*sameSite"):
        CookieSessionDataContainer(secret=SECRET, samesite='Strict')
    with pytest.raises(ValidationError):
        CookieSessionDataContainer(secret=SECRET, sameSite='Sometimes')
    with pytest.raises(ValidationError):
        CookieSessionDataContainer(secret=SECRET, cookie_name='bad name!')


@pytest.mark.parametrize('setting, value', [
    ('max_size', -5), ('max_size', 0), ('max_size', 'big'),
    ('max_size', 10 ** 9), ('cookie_name', 'bad name;'), ('cookie_name', ''),
    ('secure', 'yes'), ('httpOnly', 'no'), ('sameSite', 'Loose'),
    ('timeout', -1), ('resolution', -3), ('lifetime', -1),
])
def test_each_bad_setting_is_refused_naming_the_setting_and_value(
        setting, value):
    # One error type for every setting: zope.schema's ValidationError
    # (which zope.session code catches) and a ValueError, whose message
    # names the setting and the value it refused.
    with pytest.raises(ValidationError) as refused:
        CookieSessionDataContainer(secret=SECRET, **{setting: value})
    assert isinstance(refused.value, ValueError)
    assert f"setting {setting!r}: {value!r} is not allowed" in str(
        refused.value)
    # Set later, on a container in use, the same; the old value stays.
    container = CookieSessionDataContainer(secret=SECRET)
    if hasattr(container, setting):
        before = getattr(container, setting)
        with pytest.raises(ValidationError):
            setattr(container, setting, value)
        assert getattr(container, setting) == before


def test_the_smallest_cookie_size_limit_allowed_holds_a_small_session(
        make_site):
    # A limit below 256 bytes is refused (above): at 256, a session of a
    # few small values still fits, and is read back.
    site = make_site(max_size=256)
    browser = site.browser()
    visit(browser, setter(PREFS, theme='dark', n=1))
    assert len(DATA) + 1 + len(browser.cookies[DATA]) <= 256
    assert visit(browser).json[PREFS] == {'theme': 'dark', 'n': 1}


# -- size limit ---------------------------------------------------------------

def test_too_large_fails_the_whole_transaction(site):
    browser = site.browser()
    visit(browser, setter(PREFS, n=1))
    cookie_before = browser.cookies[DATA]
    storage_before = site.db.storage.lastTransaction()
    requests = []

    def too_much(session):
        requests.append(session.request)
        session[CART]['items'] = ['apple']          # server-side change
        session[PREFS]['essay'] = 'x' * 5000        # does not fit

    with pytest.raises(SessionTooLarge) as raised:
        visit(browser, too_much)
    message = str(raised.value)
    assert "'zodbsession_data'" in message and '4096-byte' in message
    size = int(message.split(' bytes')[0].rsplit(' ', 1)[1])
    assert size > 4096

    # Nothing half-written: no data cookie, no database change.
    assert DATA not in {
        value.split('=', 1)[0]
        for name, value in testing.response_headers(requests[0])
        if name == 'Set-Cookie'}
    assert site.db.storage.lastTransaction() == storage_before
    assert browser.cookies[DATA] == cookie_before
    assert visit(browser).json == {PREFS: {'n': 1}, CART: None}


def test_large_but_fitting_session_is_kept(site):
    browser = site.browser()
    response = visit(browser, setter(PREFS, essay='x' * 2500))
    assert len(DATA) + 1 + len(data_cookie(response)) <= 4096
    assert visit(browser).json[PREFS] == {'essay': 'x' * 2500}


# -- JSON only ----------------------------------------------------------------

@pytest.fixture
def cookie_sessions():
    """Global registrations: PREFS in a cookie, the rest in memory."""
    container = CookieSessionDataContainer(secret=SECRET)
    testing.setUpSessions(**{PREFS: container})
    yield container
    testing.tearDown()


@pytest.mark.parametrize('value, type_name', [
    (object(), 'object'),
    ((1, 2), 'tuple'),
    ({1, 2}, 'set'),
    ({1: 'one'}, 'int'),
    (float('nan'), 'float'),
    (float('inf'), 'float'),
    (b'bytes', 'bytes'),
    ([1, [2, (3,)]], 'tuple'),
    ({'a': {'b': object()}}, 'object'),
], ids=['object', 'tuple', 'set', 'dict with int keys', 'NaN', 'infinity',
        'bytes', 'tuple inside lists', 'object inside dicts'])
def test_non_json_value_is_refused_at_assignment(
        cookie_sessions, value, type_name):
    request = testing.SessionTestClient().request()
    data = ISession(request)[PREFS]
    with pytest.raises(TypeError) as raised:
        data['bad'] = value
    message = str(raised.value)
    assert "'demo.prefs'['bad']" in message
    assert f'found {type_name}' in message
    assert 'bad' not in data


@pytest.mark.parametrize('key', [1, None, ('a', 1), b'raw'],
                         ids=['int', 'None', 'tuple', 'bytes'])
def test_a_key_json_cannot_carry_is_refused_at_assignment(
        cookie_sessions, key):
    # JSON names values with str only: an int key came back as a str (the
    # value lost under its key), a tuple failed the commit unexplained.
    request = testing.SessionTestClient().request()
    data = ISession(request)[PREFS]
    data['kept'] = 1
    with pytest.raises(TypeError) as raised:
        data[key] = 'value'
    message = str(raised.value)
    assert f"'demo.prefs'[{key!r}]" in message and 'keys must be str' in (
        message)
    assert key not in data and dict(data) == {'kept': 1}
    with pytest.raises(TypeError, match='keys must be str'):
        data.update({key: 'value'})
    # The same for a package handed over whole (zope.session's idiom).
    from zodbsession import SessionPkgData
    from zodbsession.jsondata import JSONSessionData
    package = SessionPkgData()
    package[key] = 'value'
    whole = JSONSessionData()
    with pytest.raises(TypeError, match='keys must be str'):
        whole[PREFS] = package
    assert PREFS not in whole
    transaction.commit()
    assert dict(ISession(request)[PREFS]) == {'kept': 1}


class _Tag(str):
    """A str that JSON would bring back as a plain str."""


def test_values_json_would_change_or_not_write_are_refused(cookie_sessions):
    request = testing.SessionTestClient().request()
    data = ISession(request)[PREFS]
    refused = {
        # More digits than Python writes: the commit failed with a
        # ValueError naming no key.
        'huge': (10 ** 5000, r"'demo.prefs'\['huge'\].*found int \(too many"
                             r" digits"),
        'huge_inside': ([1, -10 ** 5000], r"found int at \[1\] \(too many"),
        # A subclass came back as its base type.
        'tag': (_Tag('x'), r"'demo.prefs'\['tag'\].*found [\w.]*_Tag"),
        'flag': ([enum.IntFlag('F', 'A')(1)], r"found [\w.]*F at \[0\]"),
        'nan_inside': ([float('nan')], r"found float at \[0\] \(not finite"),
        # A lone surrogate (what json.loads makes of a client's "\ud800"):
        # UTF-8 cannot carry it, and the commit failed naming nothing.
        'lone': ('caf\ud800', r"'demo.prefs'\['lone'\].*found str \(a lone"
                              r" surrogate"),
        'lone_inside': ({'a': ['\udfff']}, r"found str at \['a'\]\[0\] \(a"
                                         r" lone surrogate"),
        'lone_key_inside': ({'\ud800': 1}, r"found str as a key \(a lone"
                                           r" surrogate"),
    }
    for key, (value, message) in refused.items():
        with pytest.raises(TypeError, match=message):
            data[key] = value
    with pytest.raises(TypeError, match=r"\['\\ud800'\].*the key holds a"
                                        r" lone surrogate"):
        data['\ud800'] = 1
    data['café ☃'] = 'Zoë'      # what UTF-8 carries is kept
    data['big'] = 10 ** 4000       # what Python writes is kept
    data['items'] = []
    data['items'].append(10 ** 5000)
    with pytest.raises(TypeError, match=r"'demo.prefs'\['items'\].*found"
                                        r" int at \[0\] \(too many"):
        transaction.commit()
    transaction.abort()
    assert list(ISession(request)[PREFS]) == []
    data = ISession(request)[PREFS]
    data['items'] = []
    data['items'].append('\ud800')
    with pytest.raises(TypeError, match=r"'demo.prefs'\['items'\].*found"
                                        r" str at \[0\] \(a lone"):
        transaction.commit()
    transaction.abort()


def test_json_values_round_trip_exactly(site):
    value = {'s': 'Zoë ☃', 'i': 2 ** 60, 'f': 0.1, 'b': False, 'n': None,
             'l': [1, [2, {'x': []}]]}
    browser = site.browser()
    visit(browser, setter(PREFS, value=value))
    assert visit(browser).json[PREFS] == {'value': value}


def test_in_place_mutation_with_non_json_is_caught_at_commit(cookie_sessions):
    request = testing.SessionTestClient().request()
    data = ISession(request)[PREFS]
    data['items'] = []
    data['items'].append(object())
    with pytest.raises(TypeError, match=r"'demo.prefs'\['items'\].*object"):
        transaction.commit()
    transaction.abort()
    assert all(not value.startswith(DATA + '=')
               for name, value in testing.response_headers(request))


def test_in_place_mutation_is_noticed_without_changed(site):
    browser = site.browser()
    visit(browser, setter(PREFS, items=['apple']))
    response = visit(browser, lambda session: session[PREFS][
        'items'].append('pear'))
    assert data_cookie(response)
    assert visit(browser).json[PREFS] == {'items': ['apple', 'pear']}


# -- transactions decide ------------------------------------------------------

def test_app_error_leaves_the_cookie_as_it_was(site):
    browser = site.browser()
    visit(browser, setter(PREFS, theme='dark'))
    before = browser.cookies[DATA]

    def change_then_fail(session):
        session[PREFS]['theme'] = 'light'
        raise RuntimeError('the view failed')

    with pytest.raises(RuntimeError, match='the view failed'):
        visit(browser, change_then_fail)
    assert browser.cookies[DATA] == before
    assert visit(browser).json[PREFS] == {'theme': 'dark'}


def test_doomed_transaction_sends_no_data_cookie(site):
    browser = site.browser()
    visit(browser, setter(PREFS, theme='dark'))

    def change_then_doom(session):
        session[PREFS]['theme'] = 'light'
        transaction.doom()

    response = visit(browser, change_then_doom, status=200)
    assert data_cookie(response) is None
    assert visit(browser).json[PREFS] == {'theme': 'dark'}


def test_persist_mid_request_then_abort_keeps_the_persisted_part(site):
    browser = site.browser()

    def persist_then_doom(session):
        session[PREFS]['step'] = 1
        session.persist()
        session[PREFS]['step'] = 2
        transaction.doom()

    response = visit(browser, persist_then_doom)
    assert site.codec.decode(data_cookie(response))['d'] == {
        PREFS: {'step': 1}}
    assert visit(browser).json[PREFS] == {'step': 1}


def test_a_cookie_request_commits_only_when_it_changes_something(site):
    # A read runs no transaction; a change is one transaction, which the
    # cookie's data takes part in (with the database's, when both change).
    browser = site.browser()
    visit(browser, setter(CART, items=['apple']))     # a stored session
    visit(browser, setter(PREFS, theme='blue'))
    with testing.CompletedTransactions() as completed:
        visit(browser)
    assert completed.statuses == []
    with testing.CompletedTransactions() as completed:
        response = visit(browser, setter(PREFS, theme='dark'))
    assert completed.statuses == ['Committed']
    assert site.codec.decode(data_cookie(response))['d'] == {
        PREFS: {'theme': 'dark'}}
    # With a change in the database too, both take part in one commit.
    with testing.CompletedTransactions() as completed:
        response = visit(browser, lambda session: (
            session[PREFS].update(theme='light'),
            session[CART].update(items=['pear'])))
    assert completed.statuses == ['Committed']
    assert site.codec.decode(data_cookie(response))['d'] == {
        PREFS: {'theme': 'light'}}
    assert visit(browser).json == {
        PREFS: {'theme': 'light'}, CART: {'items': ['pear']}}


def test_a_transaction_committed_mid_request_takes_the_cookie_with_it(site):
    # The application commits mid-request: the cookie's change goes with
    # that transaction; the next change takes part in the next one, and is
    # sent if it commits, not if it is doomed.
    browser = site.browser()

    def commit_then_doom(session):
        session[PREFS]['step'] = 1
        transaction.commit()
        session[PREFS]['step'] = 2
        transaction.doom()

    response = visit(browser, commit_then_doom)
    assert site.codec.decode(data_cookie(response))['d'] == {
        PREFS: {'step': 1}}
    assert visit(browser).json[PREFS] == {'step': 1}

    def commit_then_change(session):
        session[PREFS]['step'] = 3
        transaction.commit()
        session[PREFS]['step'] = 4

    response = visit(browser, commit_then_change)
    assert site.codec.decode(data_cookie(response))['d'] == {
        PREFS: {'step': 4}}
    assert visit(browser).json[PREFS] == {'step': 4}


def test_a_savepoint_rolled_back_takes_the_cookie_change_with_it(site):
    # The data manager joined after the savepoint (the database's change
    # began the transaction): rolling back drops it, as it drops the
    # database's change.
    browser = site.browser()
    visit(browser, lambda session: (session[PREFS].update(theme='dark'),
                                    session[CART].update(items=['apple'])))

    def change_after_a_savepoint_then_roll_back(session):
        session[CART]['items'] = ['pear']
        savepoint = transaction.savepoint()
        session[PREFS]['theme'] = 'light'
        session[CART]['items'] = ['plum']
        savepoint.rollback()

    visit(browser, change_after_a_savepoint_then_roll_back)
    assert visit(browser).json == {
        PREFS: {'theme': 'dark'}, CART: {'items': ['pear']}}



def test_a_savepoint_taken_after_a_cookie_change_rolls_back_to_it(site):
    # As zope.sqlalchemy users take them: the cookie session had changed
    # before the savepoint; rolling back undoes only what came after, in
    # the very objects the application holds.
    browser = site.browser()
    visit(browser, lambda session: (session[PREFS].update(theme='dark'),
                                    session[CART].update(items=['apple'])))

    def change_then_savepoint_then_roll_back(session):
        prefs = session[PREFS]
        prefs['theme'] = 'light'
        prefs['tags'] = ['a']
        savepoint = transaction.savepoint()
        prefs['theme'] = 'blue'
        prefs['tags'].append('b')           # changed in place
        prefs['size'] = 3
        session[CART]['items'] = ['plum']
        savepoint.rollback()
        assert dict(session[PREFS]) == {'theme': 'light', 'tags': ['a']}
        assert session[PREFS] is prefs
        # What follows the rollback counts, and a second rollback to the
        # same savepoint undoes it again.
        prefs['size'] = 4
        assert dict(session[PREFS])['size'] == 4
        savepoint.rollback()
        prefs['size'] = 5

    response = visit(browser, change_then_savepoint_then_roll_back)
    assert site.codec.decode(data_cookie(response))['d'] == {
        PREFS: {'theme': 'light', 'tags': ['a'], 'size': 5}}
    assert visit(browser).json == {
        PREFS: {'theme': 'light', 'tags': ['a'], 'size': 5},
        CART: {'items': ['apple']}}


def test_a_savepoint_rolled_back_drops_a_cookie_change_made_after_it(site):
    # The cookie session took part in the transaction already (another
    # value of it changed first): a session first changed after the
    # savepoint is rolled back whole, the earlier change is kept.
    browser = site.browser()
    visit(browser, setter(PREFS, theme='dark'))

    def two_containers(session):
        session[CART]['items'] = ['pear']
        savepoint = transaction.savepoint()
        session[PREFS]['theme'] = 'light'
        savepoint.rollback()

    response = visit(browser, two_containers)
    assert data_cookie(response) is None        # nothing to send again
    assert visit(browser).json == {
        PREFS: {'theme': 'dark'}, CART: {'items': ['pear']}}


def test_an_abort_mid_request_drops_the_cookie_change(site):
    browser = site.browser()
    visit(browser, setter(PREFS, theme='dark'))

    def change_then_abort(session):
        session[PREFS]['theme'] = 'light'
        transaction.abort()

    response = visit(browser, change_then_abort)
    assert data_cookie(response) is None
    assert visit(browser).json[PREFS] == {'theme': 'dark'}


def test_a_mixed_request_whose_commit_fails_keeps_neither(site):
    # The cookie's data and the database's are one transaction: a failed
    # commit keeps neither.
    browser = site.browser()
    visit(browser, lambda session: (session[PREFS].update(theme='dark'),
                                    session[CART].update(items=['apple'])))

    def fail():
        raise RuntimeError('the commit failed')

    def change_both_then_fail_the_commit(session):
        session[PREFS]['theme'] = 'light'
        session[CART]['items'] = ['pear']
        transaction.get().addBeforeCommitHook(fail)

    with pytest.raises(RuntimeError, match='the commit failed'):
        visit(browser, change_both_then_fail_the_commit)
    assert visit(browser).json == {
        PREFS: {'theme': 'dark'}, CART: {'items': ['apple']}}


def test_a_new_client_that_aborts_then_writes_gets_its_session(site):
    # The id issued in the aborted transaction never reached the client
    # (its cookie went with the abort): the next write issues one again.
    for pkg_id in (PREFS, CART):
        browser = site.browser()

        def write_abort_write(session):
            session[pkg_id]['a'] = 1
            transaction.abort()
            session[pkg_id]['b'] = 2

        visit(browser, write_abort_write)
        assert visit(browser).json[pkg_id] == {'b': 2}


def test_a_change_after_persist_is_sent_too(site):
    browser = site.browser()
    visit(browser, setter(PREFS, step=0))

    def persist_then_change(session):
        session[PREFS]['step'] = 1
        session.persist()
        session[PREFS]['step'] = 2
        session[CART]['x'] = 1          # with the database's change

    visit(browser, persist_then_change)
    assert visit(browser).json == {PREFS: {'step': 2}, CART: {'x': 1}}


def test_an_in_place_change_after_persist_is_sent_too(site):
    # The list read (or set) before persist() and changed in place in the
    # request's next transaction: sent like the database session's.
    browser = site.browser()
    visit(browser, setter(PREFS, tabs=[1]))
    visit(browser, setter(CART, tabs=[1]))

    def read_persist_then_append(session):
        session[PREFS]['tabs']
        session[CART]['tabs']
        session.persist()
        session[PREFS]['tabs'].append(2)
        session[CART]['tabs'].append(2)

    visit(browser, read_persist_then_append)
    assert visit(browser).json == {PREFS: {'tabs': [1, 2]},
                                   CART: {'tabs': [1, 2]}}

    def set_persist_then_append(session):
        session[PREFS]['more'] = [1]
        session.persist()
        session[PREFS]['more'].append(2)

    visit(browser, set_persist_then_append)
    assert visit(browser).json[PREFS] == {'tabs': [1, 2], 'more': [1, 2]}


def test_a_cookie_read_again_later_in_the_request_is_sent_when_due(
        make_site, clock):
    # The session made again from the cookie (after the deletion was
    # aborted) is due by the time it is read again: the refreshed cookie
    # goes out, as for a request that first read it then.
    site = make_site(timeout=600, resolution=60)
    browser = site.browser()
    visit(browser, setter(PREFS, theme='dark'))
    clock.advance(10)

    def read_delete_abort_wait_read(session):
        assert session[PREFS]['theme'] == 'dark'     # not due yet
        session.delete()
        transaction.abort()
        clock.advance(61)
        assert session[PREFS]['theme'] == 'dark'     # due now

    response = visit(browser, read_delete_abort_wait_read)
    document = site.codec.decode(data_cookie(response))
    assert document['t'] == 1_700_000_071
    assert document['d'] == {PREFS: {'theme': 'dark'}}


def test_a_committed_cookie_deletion_outlives_a_later_abort(site):
    from zodbsession.context import container_for
    browser = site.browser()
    visit(browser, setter(PREFS, theme='dark'))

    def delete_commit_then_abort(session):
        del container_for(PREFS, session.request)[session.client_id]
        transaction.commit()            # the deletion commits
        transaction.abort()             # a later transaction aborts

    response = visit(browser, delete_commit_then_abort)
    assert data_cookie(response) == ''
    assert visit(browser).json[PREFS] is None


# -- set only when needed -----------------------------------------------------

def test_cookie_is_set_only_when_changed_or_due(make_site, clock):
    site = make_site(timeout=3600, resolution=60)
    browser = site.browser()
    first = site.codec.decode(data_cookie(visit(browser, setter(PREFS, n=1))))
    assert first['t'] == 1_700_000_000

    assert data_cookie(visit(browser)) is None                   # read only
    assert data_cookie(visit(browser, setter(PREFS, n=1))) is None  # same
    clock.advance(60)
    assert data_cookie(visit(browser)) is None                   # not due

    clock.advance(1)
    refreshed = site.codec.decode(data_cookie(visit(browser)))
    assert refreshed['t'] == 1_700_000_061
    assert refreshed['d'] == first['d']
    assert data_cookie(visit(browser)) is None                   # once

    # The refresh moved the timeout: alive past the first cookie's end.
    clock.advance(3600)
    assert visit(browser).json[PREFS] == {'n': 1}


def test_a_cookie_in_another_layout_is_read_and_not_resent_unchanged(
        site, clock):
    # tpc_vote writes the packages last, so their text is taken from the
    # cookie as it is; a validly signed cookie laid out otherwise (keys in
    # another order, spaces) is read the same, and unchanged data is still
    # seen as unchanged.
    browser = site.browser()
    written = site.codec.decode(data_cookie(
        visit(browser, setter(PREFS, b=[1, 2], a='x'))))
    relaid = {'d': written['d'], 'c': written['c'], 'o': written['o'],
              't': written['t']}
    put_cookie(browser, DATA, Signer(SECRET, _SALT).sign(
        'p' + b64encode(json.dumps(relaid, indent=1).encode())))
    response = visit(browser, setter(PREFS, a='x'))
    assert response.json[PREFS] == {'a': 'x', 'b': [1, 2]}
    assert data_cookie(response) is None
    changed = visit(browser, setter(PREFS, a='y'))
    assert site.codec.decode(data_cookie(changed))['d'] == {
        PREFS: {'a': 'y', 'b': [1, 2]}}


def test_requests_that_do_not_use_the_package_send_no_data_cookie(site):
    browser = site.browser()
    response = visit(browser, setter(CART, items=['apple']))
    assert data_cookie(response) is None
    assert DATA not in browser.cookies


# -- cookie attributes --------------------------------------------------------

def _attributes(response):
    return set_cookies(response)[DATA][1]


def test_cookie_attributes_follow_the_client_id_manager(make_site):
    site = make_site(settings=dict(
        path='/shop', domain='example.com', secure=True, httpOnly=False,
        sameSite='Strict'))
    response = visit(site.browser(), setter(PREFS, n=1))
    attributes = _attributes(response)
    assert 'path=/shop' in attributes
    assert 'domain=example.com' in attributes
    assert 'secure' in attributes
    assert 'httponly' not in attributes
    assert 'samesite=strict' in attributes
    assert 'max-age=3600' in attributes


def test_default_cookie_attributes(site):
    attributes = _attributes(visit(site.browser(), setter(PREFS, n=1)))
    assert 'path=/' in attributes and 'httponly' in attributes
    assert 'samesite=lax' in attributes
    assert 'secure' not in attributes and 'domain' not in attributes


def test_container_overrides_cookie_attributes(make_site):
    site = make_site(sameSite='Strict', secure=True, path='/prefs',
                     httpOnly=True, timeout=600,
                     settings=dict(httpOnly=False, sameSite='Lax'))
    response = visit(site.browser(), setter(PREFS, n=1))
    attributes = _attributes(response)
    assert 'samesite=strict' in attributes and 'secure' in attributes
    assert 'path=/prefs' in attributes and 'httponly' in attributes
    assert 'max-age=600' in attributes
    # The client id cookie keeps the manager's own settings.
    assert 'samesite=lax' in set_cookies(response)['zodbsession'][1]


def test_same_site_none_forces_secure(make_site):
    site = make_site(sameSite='None')
    attributes = _attributes(visit(site.browser(), setter(PREFS, n=1)))
    assert 'samesite=none' in attributes and 'secure' in attributes


def test_cookie_attributes_follow_settings_changed_between_requests():
    # A container and manager used as they are (registered globally, no
    # database): a setting changed between requests, on the manager or on
    # the container (its cookie attributes changed in place too), reaches
    # the next cookie.
    container = CookieSessionDataContainer(secret=SECRET)
    manager, _ = testing.setUpSessions(**{PREFS: container})
    client = testing.SessionTestClient()

    def attributes_sent(n):
        request = client.request()
        ISession(request)[PREFS]['n'] = n
        transaction.commit()
        client.receive(request)
        [sent] = [value for value in testing.set_cookie_headers(
            testing.response_headers(request))
            if value.startswith(DATA + '=')]
        return sent.lower()

    try:
        assert '; path=/;' in attributes_sent(1)
        manager.secure = True
        assert '; secure' in attributes_sent(2)
        container.cookie_attributes['path'] = '/prefs'
        assert '; path=/prefs;' in attributes_sent(3)
        container.cookie_attributes['sameSite'] = 'Strict'
        assert '; samesite=strict' in attributes_sent(4)
        container.cookie_attributes = {}
        assert '; path=/;' in attributes_sent(5)
    finally:
        testing.tearDown()


# -- invalidate and regenerate ------------------------------------------------

def test_invalidate_clears_the_cookie_data(site):
    browser = site.browser()
    visit(browser, lambda session: (session[PREFS].update(theme='dark'),
                                    session[CART].update(items=['apple'])))
    old_id = browser.cookies['zodbsession']

    response = visit(browser, lambda session: session.invalidate())
    assert data_cookie(response) == ''                # expired
    assert 'max-age=0' in _attributes(response)
    assert response.json == {PREFS: None, CART: None}
    assert browser.cookies['zodbsession'] != old_id
    assert DATA not in browser.cookies
    assert visit(browser).json == {PREFS: None, CART: None}


def test_invalidated_data_cookie_kept_by_the_browser_is_useless(site):
    browser = site.browser()
    visit(browser, setter(PREFS, theme='dark'))
    stale = browser.cookies[DATA]
    visit(browser, lambda session: session.invalidate())
    put_cookie(browser, DATA, stale)       # a browser that ignored the delete
    assert visit(browser).json[PREFS] is None


def test_regenerate_keeps_the_data_under_the_new_id(site):
    browser = site.browser()
    visit(browser, lambda session: (session[PREFS].update(theme='dark'),
                                    session[CART].update(items=['apple'])))
    old_id = browser.cookies['zodbsession']
    old_document = site.codec.decode(browser.cookies[DATA])

    response = visit(browser, lambda session: session.regenerate())
    new_id = browser.cookies['zodbsession']
    assert new_id != old_id
    new_document = site.codec.decode(data_cookie(response))
    assert new_document['d'] == old_document['d']
    assert new_document['c'] != old_document['c']       # re-bound
    assert visit(browser).json == {
        PREFS: {'theme': 'dark'}, CART: {'items': ['apple']}}

    # The new data cookie is worthless with the old id.
    thief = site.browser()
    thief.set_cookie('zodbsession', old_id)
    thief.set_cookie(DATA, browser.cookies[DATA])
    assert visit(thief).json[PREFS] is None


def test_session_exists_with_only_cookie_data(site):
    browser = site.browser()
    visit(browser, setter(PREFS, n=1))
    seen = []
    visit(browser, lambda session: seen.append(session.exists()))
    visit(site.browser(), lambda session: seen.append(session.exists()))
    assert seen == [True, False]


# -- without the middleware ---------------------------------------------------

def test_works_with_globally_registered_containers(cookie_sessions):
    client = testing.SessionTestClient()
    request = client.request()
    ISession(request)[PREFS]['theme'] = 'dark'
    transaction.commit()
    client.receive(request)
    assert DATA in client.cookies
    document = cookie_sessions.codec.decode(client.cookies[DATA])
    assert document['d'] == {PREFS: {'theme': 'dark'}}

    second = client.request()
    assert IClientId(second) == IClientId(request)
    assert ISession(second)[PREFS]['theme'] == 'dark'
    transaction.commit()
    assert all(not value.startswith(DATA + '=')
               for name, value in testing.response_headers(second))


# -- absolute lifetime --------------------------------------------------------

def test_lifetime_ends_an_active_session(make_site, clock):
    site = make_site(timeout=600, resolution=60, lifetime=1000)
    browser = site.browser()
    visit(browser, setter(PREFS, n=1))
    for _ in range(3):              # active every 300 seconds
        clock.advance(300)
        assert visit(browser).json[PREFS] == {'n': 1}
    clock.advance(101)              # 1001 seconds after creation
    assert visit(browser, status=200).json[PREFS] is None


def test_regenerate_keeps_the_creation_time(make_site, clock):
    site = make_site(lifetime=1000)
    browser = site.browser()
    visit(browser, setter(PREFS, n=1))
    clock.advance(500)
    response = visit(browser, lambda session: session.regenerate())
    assert site.codec.decode(data_cookie(response))['o'] == 1_700_000_000
    clock.advance(501)
    assert visit(browser).json[PREFS] is None


def test_a_value_beside_the_packages_is_refused_not_lost():
    from zodbsession.jsondata import JSONSessionData
    data = JSONSessionData()
    with pytest.raises(TypeError, match="package data only.*'name'"):
        data['name'] = 'bob'
    assert 'name' not in data


def test_a_package_given_to_a_cookie_session_becomes_a_view_onto_it():
    # zope.session's idiom, data[pkg_id] = SessionPkgData(): the package
    # object given stays the session's (JSON is still enforced on it).
    from zodbsession import SessionPkgData
    from zodbsession.jsondata import JSONSessionData
    data = JSONSessionData()
    package = SessionPkgData()
    package['theme'] = 'dark'
    data[PREFS] = package
    package['tabs'] = [1, 2]
    del package['theme']
    assert data.to_plain() == {PREFS: {'tabs': [1, 2]}}
    assert data[PREFS]['tabs'] == [1, 2] and 'theme' not in data[PREFS]
    with pytest.raises(TypeError, match=r"\(1, 2\)|tuple"):
        package['pair'] = (1, 2)
    assert data.to_plain() == {PREFS: {'tabs': [1, 2]}}
    # A package read from the session is one object per package id.
    assert data.package('other') is data.package('other')
    assert 'other' not in data          # handed out, nothing stored
    data['other']['n'] = 1
    assert data.to_plain()['other'] == {'n': 1}


@pytest.mark.parametrize('copied', [
    copy.copy, copy.deepcopy, lambda data: pickle.loads(pickle.dumps(data))])
def test_a_copy_of_a_cookie_session_is_independent_of_it(copied):
    # As a SessionData's copy is: changing the copy's lists and dicts in
    # place leaves the original (what the cookie will carry) as it was.
    from zodbsession.jsondata import JSONSessionData
    data = JSONSessionData.from_plain(
        {PREFS: {'tabs': [1], 'layout': {'w': 1}}}, 5, 3)
    twin = copied(data)
    twin[PREFS]['tabs'].append(2)
    twin[PREFS]['layout']['h'] = 2
    twin[PREFS]['theme'] = 'dark'
    assert data.to_plain() == {PREFS: {'tabs': [1], 'layout': {'w': 1}}}
    assert twin.to_plain() == {
        PREFS: {'tabs': [1, 2], 'layout': {'w': 1, 'h': 2}, 'theme': 'dark'}}
    assert (twin.getLastAccessTime(), twin.getCreated()) == (5, 3)


def test_a_package_written_back_stays_the_one_package_object(
        cookie_sessions):
    # zope.session's idiom, data[pkg_id] = package, with the session's
    # own package (or another session's): session[pkg_id] is still the
    # one object the request was handed.
    from zodbsession.jsondata import JSONSessionData
    request = testing.SessionTestClient().request()
    prefs = ISession(request)[PREFS]
    prefs['theme'] = 'dark'
    data = cookie_sessions.bind(request)[IClientId(request)]
    data[PREFS] = prefs
    assert ISession(request)[PREFS] is prefs
    other = JSONSessionData.from_plain({PREFS: {'theme': 'light'}})
    data[PREFS] = other[PREFS]
    assert ISession(request)[PREFS] is prefs
    assert dict(prefs) == {'theme': 'light'}
    transaction.commit()
    assert dict(ISession(request)[PREFS]) == {'theme': 'light'}


def test_copies_of_a_container_share_the_cookie_values_they_verified():
    # As a site's snapshot copies its cookie containers every few
    # seconds: what one copy verified and decoded, the next finds.

    container = CookieSessionDataContainer(secret=SECRET)
    twin = copy.deepcopy(container)
    assert twin.codec is container.codec
    assert twin.remembered_reads is container.remembered_reads
    # Other keys, other memory.
    twin.encryption_key = generate_encryption_key()
    assert twin.codec is not container.codec
    assert twin.remembered_reads is not container.remembered_reads


def test_a_cookie_session_first_changed_after_a_savepoint_rolls_back_whole(
        site):
    # Two cookie containers: the first took part before the savepoint,
    # the second joins the request's data manager after it. Rolling back
    # keeps the first's earlier change and drops the second's.
    other = CookieSessionDataContainer(secret=SECRET,
                                       cookie_name='other_data')
    change_site(site.db, lambda s: s.register_container('test.other', other))
    browser = site.browser()
    visit(browser, lambda session: (session[PREFS].update(theme='dark'),
                                    session['test.other'].update(n=1)))

    def change_both(session):
        session[PREFS]['theme'] = 'light'
        savepoint = transaction.savepoint()
        session['test.other']['n'] = 2
        session[PREFS]['theme'] = 'blue'
        savepoint.rollback()

    response = visit(browser, change_both)
    assert site.codec.decode(data_cookie(response))['d'] == {
        PREFS: {'theme': 'light'}}
    assert 'other_data' not in set_cookies(response)
    seen = {}
    visit(browser, lambda session: seen.update(
        other=dict(session['test.other']), prefs=dict(session[PREFS])))
    assert seen == {'other': {'n': 1}, 'prefs': {'theme': 'light'}}


def test_a_cookie_session_rolled_back_to_before_it_changed_keeps_counting(
        site):
    # The session read from the cookie had not changed when the savepoint
    # was taken (the request's data manager joined after it, or took part
    # already for another container): rolling back gives the object the
    # application holds the cookie's values back, and its next change is
    # sent, as with a database container's objects.
    browser = site.browser()
    visit(browser, setter(PREFS, theme='dark'))
    seen = []

    def change_roll_back_change(session, other_first):
        prefs = session[PREFS]
        if other_first:
            session[CART]['items'] = ['apple']
        savepoint = transaction.savepoint()
        prefs['theme'] = 'light'
        savepoint.rollback()
        seen.append((dict(prefs), session[PREFS] is prefs))
        prefs['size'] = len(seen)

    for other_first in (False, True):
        visit(browser, lambda session: change_roll_back_change(
            session, other_first))
    assert seen == [({'theme': 'dark'}, True),
                    ({'theme': 'dark', 'size': 1}, True)]
    assert visit(browser).json[PREFS] == {'theme': 'dark', 'size': 2}


def test_a_pending_cookie_session_stored_after_a_savepoint_rolls_back(site):
    # A new client's cookie session is pending (held under the id its
    # first database write issued) when the savepoint is taken; its first
    # change stores it. Rolling back makes it pending and empty again,
    # and its next change is stored and sent.
    browser = site.browser()
    seen = []

    def change_roll_back_change(session):
        prefs = session[PREFS]
        session[CART]['items'] = ['apple']      # issues the client's id
        savepoint = transaction.savepoint()
        prefs['theme'] = 'light'
        savepoint.rollback()
        seen.append(dict(session[PREFS]))
        session[PREFS]['theme'] = 'dark'

    visit(browser, change_roll_back_change)
    assert seen == [{}]
    assert visit(browser).json == {
        PREFS: {'theme': 'dark'}, CART: {'items': ['apple']}}


def test_a_cookie_session_stored_in_the_database_fails_clearly(db):
    # Cookie session data lives in cookies only (it is never a ghost, so
    # it skips persistent's attribute machinery): put in a database, its
    # commit fails, naming it, and stores nothing.
    from zodbsession import PersistentSessionDataContainer
    from zodbsession.jsondata import JSONSessionData

    with db.transaction() as connection:
        connection.root()['sessions'] = PersistentSessionDataContainer()
    before = db.storage.lastTransaction()
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        data = JSONSessionData.from_plain({PREFS: {'theme': 'dark'}}, 0)
        connection.root()['sessions']['client'] = data
        with pytest.raises(TypeError, match='JSONSessionData'):
            manager.commit()
        manager.abort()
    finally:
        connection.close()
    assert db.storage.lastTransaction() == before


def test_an_active_client_keeps_its_session_whatever_the_resolution(
        make_site, clock):
    # The cookie's timeout counts from its last sending, and it was sent
    # again only once per resolution: with a resolution longer than the
    # timeout, a client active every 30 seconds lost its session after 90.
    site = make_site(timeout=60, resolution=120)
    browser = site.browser()
    visit(browser, setter(PREFS, n=1))
    for _ in range(6):
        clock.advance(30)
        assert visit(browser).json[PREFS] == {'n': 1}
    clock.advance(61)       # unread for more than the timeout: expired
    assert visit(browser, status=200).json[PREFS] is None


def test_a_snapshots_frozen_container_still_follows_each_requests_path_and_site_changes(  # noqa: E501
        site, db):
    # The site's snapshot freezes its copies: a request keeps on them
    # what it derives from their settings (the cookie's attributes among
    # them). What differs from request to request (the application's
    # path) still counts, and a change to the site applies at once.
    from zodbsession.hosting.snapshot import snapshots
    from zodbsession.site import site_of

    browser = site.browser()
    for index, script_name in enumerate(('/shop', '/blog', '/shop')):
        response = browser.get('/', extra_environ={
            'test.action': setter(PREFS, n=index),
            'SCRIPT_NAME': script_name})
        assert f'path={script_name}' in set_cookies(response)[DATA][1]
    frozen = snapshots.get(db).getUtility(ISessionDataContainer, PREFS)
    assert frozen._v_frozen
    connection = db.open()
    try:
        stored = site_of(connection).containers()[PREFS]
        assert not stored._v_frozen     # the database's own: not frozen
    finally:
        connection.close()

    _reconfigure(db, cookie_attributes={'path': '/fixed'})
    response = browser.get('/', extra_environ={
        'test.action': setter(PREFS, n='fixed'), 'SCRIPT_NAME': '/shop'})
    assert 'path=/fixed' in set_cookies(response)[DATA][1]
