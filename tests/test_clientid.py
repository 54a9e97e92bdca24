"""Client ids: signed cookies, rotation, hostile input, cookie attributes."""
import base64

import pytest
import transaction
import zope.component
import zope.schema
from zope.interface.verify import verifyObject

from zodbsession import clock
from zodbsession import CookieClientIdManager
from zodbsession import IClientId
from zodbsession import IClientIdManager
from zodbsession import ICookieClientIdManager
from zodbsession import MissingClientIdException
from zodbsession import testing
from zodbsession.testing import SessionTestClient
from zodbsession.testing import response_headers

NEW_SECRET = 'the-new-secret-after-rotation!!'


def set_cookie_headers(request):
    return [value for name, value in response_headers(request)
            if name == 'Set-Cookie']


def cookie_attributes(header):
    """{'name': ..., 'value': ..., lower-cased attribute: value or True}."""
    first, *rest = [part.strip() for part in header.split(';')]
    name, _, value = first.partition('=')
    attributes = {'name': name, 'value': value}
    for part in rest:
        key, sep, val = part.partition('=')
        attributes[key.lower()] = val if sep else True
    return attributes


def issue(manager, client=None, method='GET'):
    """A request that asked for an id; returns (id, request)."""
    client = client or SessionTestClient()
    request = client.request(method)
    client_id = manager.getClientId(request)
    client.receive(request)
    return client_id, request


def test_verify_object(sessions):
    manager, container = sessions
    assert verifyObject(ICookieClientIdManager, manager)
    assert verifyObject(IClientIdManager, manager)


def test_iclientid_adapter_gives_the_id_string(sessions):
    manager, container = sessions
    request = SessionTestClient().request()
    client_id = IClientId(request)
    assert isinstance(client_id, str)
    assert IClientId.providedBy(client_id)
    assert manager.verify(client_id)
    # The same request keeps its id (the cookie set on its response wins).
    assert IClientId(request) == client_id
    assert manager.getClientId(request) == client_id


def test_a_second_request_with_the_cookie_gets_the_same_id(sessions):
    manager, container = sessions
    client = SessionTestClient()
    first = client.request()
    client_id = IClientId(first)
    client.receive(first)
    second = client.request()
    assert IClientId(second) == client_id
    # An unchanged id without a lifetime needs no new cookie.
    assert set_cookie_headers(second) == []


def test_a_request_without_the_cookie_gets_a_different_id(sessions):
    manager, container = sessions
    one, _ = issue(manager)
    two, _ = issue(manager)
    assert one != two


def test_ids_carry_256_random_bits_and_a_sha256_signature(sessions):
    manager, container = sessions
    client_id = manager.generateUniqueId()
    random_part, issued, signature = client_id.split('.')
    assert len(random_part) >= 43
    assert len(base64.urlsafe_b64decode(random_part + '=')) >= 32
    assert int(issued, 16) == manager.issuedAt(client_id)
    assert len(base64.urlsafe_b64decode(signature + '=')) == 32
    assert len(client_id) <= 128


def test_ids_tell_when_they_were_issued(sessions):
    manager, container = sessions
    with clock.use_clock(clock.ManualClock(1_700_000_000)):
        client_id = manager.generateUniqueId()
    assert manager.issuedAt(client_id) == 1_700_000_000
    # Only a validly signed id tells anything.
    forged = client_id.replace(client_id.split('.')[1], '7fffffff')
    assert manager.issuedAt(forged) is None
    assert manager.issuedAt('garbage') is None


def test_ids_are_unique_over_many_draws(sessions):
    manager, container = sessions
    ids = [manager.generateUniqueId() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    payloads = {client_id.split('.')[0] for client_id in ids}
    assert len(payloads) == len(ids)


def test_secret_rotation():
    old = CookieClientIdManager(secret=testing.TEST_SECRET)
    old_id = old.generateUniqueId()
    rotated = CookieClientIdManager(
        secret=[NEW_SECRET, testing.TEST_SECRET])
    assert rotated.verify(old_id)
    new_id = rotated.generateUniqueId()
    assert CookieClientIdManager(secret=NEW_SECRET).verify(new_id)
    assert not old.verify(new_id)
    # Once the old secret is dropped, its ids are worthless.
    assert not CookieClientIdManager(secret=NEW_SECRET).verify(old_id)


def test_rotated_manager_keeps_an_old_cookie(sessions):
    manager, container = sessions
    client = SessionTestClient()
    client_id, _ = issue(manager, client)
    manager.secret = [NEW_SECRET, testing.TEST_SECRET]
    assert manager.getClientId(client.request()) == client_id


def _valid_id():
    return CookieClientIdManager(
        secret=testing.TEST_SECRET).generateUniqueId()


def _flip(text, index):
    return text[:index] + ('A' if text[index] != 'A' else 'B') + \
        text[index + 1:]


def _hostile_cookies():
    valid = _valid_id()
    dot = valid.index('.')
    other = CookieClientIdManager(secret=NEW_SECRET).generateUniqueId()
    return {
        'malformed': 'not-a-client-id',
        'no signature': valid[:dot],
        'tampered payload': _flip(valid, 3),
        'tampered signature': _flip(valid, dot + 5),
        'wrongly signed': other,
        'truncated': valid[:-1],
        'empty': '',
        'non-ascii': valid[:-2] + 'é',
        'two dots': valid + '.' + valid,
        '100 KB': 'x' * 100_000,
        '100 KB of a valid id': valid * 1200,
    }


@pytest.mark.parametrize('kind', sorted(_hostile_cookies()))
def test_bad_cookies_get_a_fresh_id(sessions, kind):
    manager, container = sessions
    bad = _hostile_cookies()[kind]
    client = SessionTestClient()
    client.cookies[manager.namespace] = bad
    request = client.request()
    assert manager.getRequestId(request) is None
    client_id = IClientId(request)
    assert client_id != bad
    assert manager.verify(client_id)
    [header] = set_cookie_headers(request)
    assert cookie_attributes(header)['value'] == client_id


def test_unparsable_cookie_header_gets_a_fresh_id(sessions):
    manager, container = sessions
    request = SessionTestClient().request(
        HTTP_COOKIE=f'{manager.namespace}="\\\x00\xff; ;;=; =x')
    assert manager.verify(IClientId(request))


def test_default_cookie_attributes(sessions):
    manager, container = sessions
    client_id, request = issue(manager)
    [header] = set_cookie_headers(request)
    attributes = cookie_attributes(header)
    assert attributes['name'] == 'zodbsession'
    assert attributes['value'] == client_id
    assert attributes['httponly'] is True
    assert attributes['samesite'].lower() == 'lax'
    assert attributes['path'] == '/'
    assert 'secure' not in attributes
    assert 'max-age' not in attributes      # a browser-session cookie
    assert 'domain' not in attributes


def test_configured_cookie_attributes(sessions):
    manager, container = sessions
    manager.secure = True
    manager.domain = '.example.org'
    manager.path = '/app'
    manager.cookieLifetime = 3600
    manager.httpOnly = False
    manager.sameSite = 'Strict'
    manager.namespace = 'sid'
    _, request = issue(manager)
    attributes = cookie_attributes(set_cookie_headers(request)[0])
    assert attributes['name'] == 'sid'
    assert attributes['secure'] is True
    assert attributes['domain'] == '.example.org'
    assert attributes['path'] == '/app'
    assert attributes['max-age'] == '3600'
    assert 'httponly' not in attributes
    assert attributes['samesite'].lower() == 'strict'


def test_settings_changed_on_a_manager_in_use_reach_its_next_cookie(
        sessions):
    # The manager remembers its cookie's attributes between requests; a
    # setting changed since (each in turn, then back) shows in the next
    # cookie all the same.
    manager, container = sessions
    issue(manager)
    changes = [('secure', True, 'secure', True),
               ('domain', '.example.org', 'domain', '.example.org'),
               ('path', '/app', 'path', '/app'),
               ('httpOnly', False, 'httponly', None),
               ('sameSite', 'Strict', 'samesite', 'strict'),
               ('cookieLifetime', 600, 'max-age', '600')]
    for setting, value, attribute, shown in changes:
        before = getattr(manager, setting)
        setattr(manager, setting, value)
        _, request = issue(manager)
        attributes = cookie_attributes(set_cookie_headers(request)[0])
        assert attributes.get(attribute) == shown, setting
        setattr(manager, setting, before)
        _, request = issue(manager)
        attributes = cookie_attributes(set_cookie_headers(request)[0])
        assert attributes.get(attribute) != shown, setting


def test_cookie_path_defaults_to_the_application_root(sessions):
    manager, container = sessions
    request = SessionTestClient().request(SCRIPT_NAME='/site')
    manager.getClientId(request)
    attributes = cookie_attributes(set_cookie_headers(request)[0])
    assert attributes['path'] == '/site'


def test_samesite_none_forces_secure(sessions):
    manager, container = sessions
    manager.sameSite = 'None'
    _, request = issue(manager)
    attributes = cookie_attributes(set_cookie_headers(request)[0])
    assert attributes['samesite'].lower() == 'none'
    assert attributes['secure'] is True


def test_lifetime_zero_means_a_very_long_cookie(sessions):
    manager, container = sessions
    manager.cookieLifetime = 0
    _, request = issue(manager)
    attributes = cookie_attributes(set_cookie_headers(request)[0])
    assert int(attributes['max-age']) >= 5 * 365 * 24 * 3600


def test_finite_lifetime_renews_the_cookie_on_every_request(sessions):
    manager, container = sessions
    manager.cookieLifetime = 600
    client = SessionTestClient()
    client_id, _ = issue(manager, client)
    again = client.request()
    assert manager.getClientId(again) == client_id
    attributes = cookie_attributes(set_cookie_headers(again)[0])
    assert attributes['value'] == client_id
    assert attributes['max-age'] == '600'


def test_setting_the_cookie_forbids_caching(sessions):
    manager, container = sessions
    _, request = issue(manager)
    headers = dict(response_headers(request))
    assert 'no-cache' in headers['Cache-Control']
    assert headers['Pragma'] == 'no-cache'
    assert '1997' in headers['Expires']


def test_post_only_refuses_to_issue_an_id_on_get(sessions):
    manager, container = sessions
    manager.postOnly = True
    request = SessionTestClient().request('GET')
    with pytest.raises(MissingClientIdException):
        manager.getClientId(request)
    assert response_headers(request) == []
    client = SessionTestClient()
    client_id, _ = issue(manager, client, method='POST')
    # Once issued, a GET may use it.
    assert manager.getClientId(client.request('GET')) == client_id


def test_thirdparty_only_reads_the_cookie(sessions):
    manager, container = sessions
    manager.thirdparty = True
    request = SessionTestClient().request()
    with pytest.raises(MissingClientIdException):
        manager.getClientId(request)
    client = SessionTestClient()
    client.cookies[manager.namespace] = 'issued-by-the-front-end'
    request = client.request()
    assert manager.getClientId(request) == 'issued-by-the-front-end'
    assert response_headers(request) == []


def test_delete_request_id_expires_the_cookie(sessions):
    manager, container = sessions
    client = SessionTestClient()
    client_id, _ = issue(manager, client)
    request = client.request()
    manager.deleteRequestId(request)
    attributes = cookie_attributes(set_cookie_headers(request)[0])
    assert attributes['max-age'] == '0'
    client.receive(request)
    assert manager.namespace not in client.cookies


@pytest.mark.parametrize('setting, value', [
    ('namespace', 'has-dash'),
    ('namespace', 'x' * 31),
    ('namespace', 'ünïcode'),
    ('sameSite', 'bogus'),
    ('cookieLifetime', -1),
    ('secure', 'yes'),
    # Sent escaped, these made a cookie the browser sent back to no page:
    # a new session on every request, and no error anywhere.
    ('path', '/; Domain=evil.example'),
    ('path', 'shop'),
    ('path', '/shop\tx'),
    ('domain', 'example.org; Secure'),
    ('domain', 'exa mple.org'),
])
def test_schema_rejects_bad_settings(setting, value):
    manager = CookieClientIdManager(secret=testing.TEST_SECRET)
    with pytest.raises(zope.schema.ValidationError):
        setattr(manager, setting, value)
    with pytest.raises(zope.schema.ValidationError):
        CookieClientIdManager(secret=testing.TEST_SECRET, **{setting: value})


def test_cookie_paths_and_domains_a_browser_takes():
    manager = CookieClientIdManager(secret=testing.TEST_SECRET)
    for path in ('/', '/shop', '/a b/~x', ''):
        manager.path = path
    for domain in ('example.org', '.example.org', 'localhost',
                   'xn--bcher-kva.example', ''):
        manager.domain = domain


def test_empty_namespace_is_rejected():
    manager = CookieClientIdManager(secret=testing.TEST_SECRET)
    with pytest.raises(zope.schema.ValidationError):
        manager.namespace = ''
    assert manager.namespace == 'zodbsession'


def test_namespace_of_30_word_characters_is_fine():
    manager = CookieClientIdManager('a_1' * 10, secret=testing.TEST_SECRET)
    assert manager.namespace == 'a_1' * 10


def test_unknown_setting_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match='cookieLifeTime'):
        CookieClientIdManager(secret=testing.TEST_SECRET, cookieLifeTime=5)


def test_settings_keywords_are_applied():
    manager = CookieClientIdManager(
        'sid', secret=testing.TEST_SECRET, cookieLifetime=60, secure=True)
    assert (manager.namespace, manager.cookieLifetime, manager.secure) == (
        'sid', 60, True)
    defaults = CookieClientIdManager(secret=testing.TEST_SECRET)
    assert (defaults.httpOnly, defaults.sameSite, defaults.secure,
            defaults.postOnly, defaults.thirdparty,
            defaults.cookieLifetime) == (True, 'Lax', False, False, False,
                                         None)


def test_short_secret_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match='at least 16 bytes'):
        CookieClientIdManager(secret='tooshort')
    manager = CookieClientIdManager(secret=testing.TEST_SECRET)
    with pytest.raises(ValueError, match='secrets.token_urlsafe'):
        manager.secret = [NEW_SECRET, 'short']
    assert manager.verify(manager.generateUniqueId())


def test_no_secret_generates_a_random_one():
    one, two = CookieClientIdManager(), CookieClientIdManager()
    assert one.secret != two.secret
    assert not two.verify(one.generateUniqueId())


def test_repr_never_contains_the_secret():
    manager = CookieClientIdManager(
        'sid', secret=[NEW_SECRET, testing.TEST_SECRET])
    for text in (repr(manager), str(manager), repr(manager._signer)):
        assert NEW_SECRET not in text
        assert testing.TEST_SECRET not in text
    assert 'sid' in repr(manager)


def test_manager_stored_in_zodb_keeps_verifying(db):
    manager = CookieClientIdManager(secret=[NEW_SECRET, testing.TEST_SECRET])
    client_id = manager.generateUniqueId()
    connection = db.open()
    connection.root()['manager'] = manager
    transaction.commit()
    # A second connection, open at the same time, loads its own copy.
    other = db.open(transaction.TransactionManager())
    loaded = other.root()['manager']
    assert loaded is not manager
    assert loaded.verify(client_id)
    assert not loaded.verify(_flip(client_id, 0))
    assert loaded.generateUniqueId() != client_id
    other.close()
    connection.close()


def test_iclientid_uses_the_registered_manager(sessions):
    manager, container = sessions
    other = CookieClientIdManager(secret=NEW_SECRET)
    zope.component.provideUtility(other, IClientIdManager)
    client_id = IClientId(SessionTestClient().request())
    assert other.verify(client_id)
    assert not manager.verify(client_id)
