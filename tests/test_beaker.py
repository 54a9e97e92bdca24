"""zodbsession.beaker: Beaker's options and session API, through the
middleware as an application uses it (``SessionTestClient.call``)."""
import datetime
import json

import pytest
import webob

from zodbsession import clock
from zodbsession.beaker import SessionMiddleware
from zodbsession.testing import SessionTestClient
from zodbsession.testing import last_transaction_records
from zodbsession.validated import InvalidSetting

KEY = 'k' * 16


def app(environ, start_response):
    """Runs the session operations the query string names, in order:
    ``set=k:v``, ``append=k:v`` (in place), ``save``, ``persist``,
    ``revert``, ``delete``, ``invalidate``, ``regenerate``, ``fail``;
    replies the session's keys and attributes as JSON."""
    request = webob.Request(environ)
    session = environ['beaker.session']
    for name, value in request.GET.items():
        if name == 'set':
            key, _, item = value.partition(':')
            session[key] = item
        elif name == 'append':
            key, _, item = value.partition(':')
            session.setdefault(key, []).append(item)
        elif name == 'fail':
            raise RuntimeError('the application failed')
        elif name == 'regenerate':
            session.regenerate_id()
        else:
            getattr(session, name)()
    body = json.dumps({'data': dict(session), 'new': session.is_new,
                       'created': session.created,
                       'last_accessed': session.last_accessed}).encode()
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]


def call(client, middleware, query=''):
    status, headers, body = client.call(middleware, QUERY_STRING=query)
    return json.loads(body)['data'], headers


@pytest.fixture(params=['memory', 'file', 'cookie'])
def middleware(request, tmp_path):
    options = {'session.type': request.param,
               'session.data_dir': str(tmp_path)}
    if request.param == 'cookie':
        options.update({'session.validate_key': KEY,
                        'session.encrypt_key': 'e' * 24})
    wrapped = SessionMiddleware(app, options)
    yield wrapped
    wrapped.db.close()


def test_nothing_is_kept_without_save(middleware):
    client = SessionTestClient()
    data, headers = call(client, middleware, 'set=a:1')
    assert data == {'a': '1'}
    assert not [h for h in headers if h[0] == 'Set-Cookie']
    assert call(client, middleware)[0] == {}


def test_save_keeps_the_requests_changes_in_place_ones_too(middleware):
    client = SessionTestClient()
    call(client, middleware, 'append=items:x&save')
    assert call(client, middleware)[0] == {'items': ['x']}
    call(client, middleware, 'append=items:y&save')
    assert call(client, middleware)[0] == {'items': ['x', 'y']}
    # In place, not saved: not kept.
    call(client, middleware, 'append=items:z')
    assert call(client, middleware)[0] == {'items': ['x', 'y']}


def test_auto_saves_what_the_request_changed(tmp_path):
    middleware = SessionMiddleware(app, {'session.type': 'file',
                                         'session.data_dir': str(tmp_path),
                                         'session.auto': 'true'})
    client = SessionTestClient()
    call(client, middleware, 'set=a:1')
    call(client, middleware, 'append=b:1')
    assert call(client, middleware)[0] == {'a': '1', 'b': ['1']}
    middleware.db.close()


def test_an_error_keeps_nothing_but_persist_did(middleware):
    client = SessionTestClient()
    call(client, middleware, 'set=a:1&save')
    with pytest.raises(RuntimeError):
        call(client, middleware, 'set=a:2&save&fail')
    assert call(client, middleware)[0] == {'a': '1'}
    if middleware.config.type != 'cookie':
        # persist() committed before the failure (a cookie container's
        # cookie goes out only with a response, and there was none).
        with pytest.raises(RuntimeError):
            call(client, middleware, 'set=a:3&persist&fail')
        assert call(client, middleware)[0] == {'a': '3'}


def test_revert_undoes_the_changes(middleware):
    client = SessionTestClient()
    call(client, middleware, 'set=a:1&save')
    data, _ = call(client, middleware, 'set=a:2&set=b:3&revert&save')
    assert data == {'a': '1'}
    assert call(client, middleware)[0] == {'a': '1'}


def test_delete_removes_the_data_and_the_cookie(middleware):
    client = SessionTestClient()
    call(client, middleware, 'set=a:1&save')
    assert 'beaker_session_id' in client.cookies
    call(client, middleware, 'delete')
    assert 'beaker_session_id' not in client.cookies
    assert call(client, middleware)[0] == {}


def test_invalidate_starts_a_new_session(middleware):
    client = SessionTestClient()
    call(client, middleware, 'set=a:1&save')
    old_id = client.cookies['beaker_session_id']
    data, _ = call(client, middleware, 'invalidate&set=b:2&save')
    assert data == {'b': '2'}
    assert client.cookies['beaker_session_id'] != old_id
    assert call(client, middleware)[0] == {'b': '2'}
    # The old id's data is gone too.
    replay = SessionTestClient()
    replay.cookies['beaker_session_id'] = old_id
    assert call(replay, middleware)[0] == {}


def test_regenerate_id_keeps_the_data(middleware):
    client = SessionTestClient()
    call(client, middleware, 'set=a:1&save')
    old_id = client.cookies['beaker_session_id']
    call(client, middleware, 'regenerate')
    assert client.cookies['beaker_session_id'] != old_id
    assert call(client, middleware)[0] == {'a': '1'}


def test_attributes():
    start = clock.ManualClock(1_000_000)
    with clock.use_clock(start):
        middleware = SessionMiddleware(app, {'session.type': 'memory'})
        client = SessionTestClient()
        _, _, body = client.call(middleware, QUERY_STRING='save')
        first = json.loads(body)
        assert first['new'] and first['created'] == 1_000_000
        assert first['last_accessed'] is None
        start.advance(700)
        second = json.loads(client.call(middleware)[2])
        assert not second['new'] and second['created'] == 1_000_000
        # The last recorded use, to the container's resolution (300 s):
        # this request's, as it came after more than that.
        assert second['last_accessed'] == 1_000_700
        start.advance(100)
        third = json.loads(client.call(middleware)[2])
        assert third['last_accessed'] == 1_000_700


def test_reading_creates_nothing(tmp_path):
    middleware = SessionMiddleware(app, {'session.type': 'file',
                                         'session.data_dir': str(tmp_path),
                                         'session.auto': True})
    before = middleware.db.storage.lastTransaction()
    client = SessionTestClient()
    call(client, middleware)
    assert client.cookies == {}
    assert middleware.db.storage.lastTransaction() == before
    call(client, middleware, 'set=a:1')
    assert client.cookies
    assert 'zodbsession.data.SessionData' in [
        name for _, name in last_transaction_records(middleware.db)]
    middleware.db.close()


def test_the_encrypted_cookie_hides_the_data(tmp_path):
    middleware = SessionMiddleware(app, {
        'session.type': 'cookie', 'session.validate_key': KEY,
        'session.encrypt_key': 'e' * 24})
    client = SessionTestClient()
    call(client, middleware, 'set=secret_word:swordfish&save')
    assert 'swordfish' not in ' '.join(client.cookies.values())
    assert call(client, middleware)[0] == {'secret_word': 'swordfish'}


def test_options_map_and_fail_clearly(tmp_path):
    middleware = SessionMiddleware(app, **{
        'session.type': 'file', 'session.data_dir': str(tmp_path),
        'session.key': 'my.app', 'session.secret': 's' * 16,
        'session.timeout': '300', 'session.cookie_expires': 600,
        'session.secure': 'true', 'session.samesite': 'strict',
        'session.cookie_domain': 'example.org', 'session.lock_dir': '/x'})
    client = SessionTestClient()
    _, headers = call(client, middleware, 'set=a:1&save')
    cookie = dict(headers)['Set-Cookie']
    assert cookie.startswith('my_app=')
    for part in ('Max-Age=600', 'Domain=example.org', 'secure',
                 'SameSite=strict'):
        assert part in cookie
    middleware.db.close()

    def refused(options, *words):
        with pytest.raises(InvalidSetting) as caught:
            SessionMiddleware(app, options)
        for word in words:
            assert word in str(caught.value)

    refused({'session.type': 'ext:memcached'}, 'session.type', 'zeo://')
    refused({'session.type': 'ext:redis', 'session.url': 'x'},
            'session.type', 'postgres://')
    refused({'session.type': 'file', 'session.url': 'x'},
            'session.url', 'zeo://')
    refused({'session.memcache_module': 'pylibmc'},
            'session.memcache_module', 'zeo://')
    refused({'session.type': 'cookie'}, 'session.validate_key')
    refused({'session.type': 'cookie', 'session.validate_key': 'short'},
            'session.validate_key', '16 bytes')
    refused({'session.type': 'cookie', 'session.validate_key': KEY,
             'session.encrypt_key': 'short'}, 'session.encrypt_key')
    refused({'session.secret': 'short'}, 'session.secret', '16 bytes')
    refused({'session.timeout': 'soon'}, 'session.timeout')
    refused({'session.cookie_expires': datetime.datetime(2030, 1, 1)},
            'session.cookie_expires', 'timedelta')
    refused({'session.no_such_option': 1}, 'session.no_such_option')


def test_lock_is_not_needed(tmp_path):
    def locking(environ, start_response):
        environ['beaker.session'].lock()

    middleware = SessionMiddleware(locking, {'session.type': 'memory'})
    with pytest.raises(NotImplementedError, match='no lock'):
        SessionTestClient().call(middleware)


def test_json_only_data_in_cookie_sessions():
    def storing_a_set(environ, start_response):
        session = environ['beaker.session']
        session['tags'] = {'a', 'b'}
        session.save()
        start_response('200 OK', [])
        return [b'']

    middleware = SessionMiddleware(storing_a_set, {
        'session.type': 'cookie', 'session.validate_key': KEY})
    with pytest.raises(TypeError, match='tags'):
        SessionTestClient().call(middleware)


def test_dbm_is_file_sessions_and_environ_key_is_honoured(tmp_path):
    def app_with_key(environ, start_response):
        session = environ['my.session']
        session['a'] = 1
        session.save()
        start_response('200 OK', [])
        return [b'']

    middleware = SessionMiddleware(app_with_key, {
        'session.type': 'dbm', 'session.data_dir': str(tmp_path / 'data')},
        environ_key='my.session')
    client = SessionTestClient()
    client.call(middleware)
    assert (tmp_path / 'data' / 'sessions.fs').exists()
    assert client.cookies
    middleware.db.close()


def test_a_request_leaves_nothing_of_ours_in_reference_cycles(middleware):
    # The middleware takes Beaker's session out of the environ once it is
    # written, so reference counting frees the request's objects.
    from zodbsession.testing.garbage import cycles_left_by
    client = SessionTestClient()
    call(client, middleware, 'set=a:1&save')

    def requests():
        for value in '234':
            data, _headers = call(client, middleware, f'set=a:{value}&save')
            assert data == {'a': value}

    assert cycles_left_by(requests) == []
