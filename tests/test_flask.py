"""zodbsession.flask through Flask's test client, at the defaults."""
import datetime
import threading

import flask
import pytest

from zodbsession import clock
from zodbsession.flask import ZODBSession
from zodbsession.flask import regenerate_session
from zodbsession.validated import InvalidSetting

TIMEOUT = 30


def make_app(directory, **config):
    app = flask.Flask('flask_test', instance_path=str(directory))
    app.config.update(config)
    ZODBSession(app)
    app.state = {'runs': 0, 'barrier': None}

    @app.get('/read')
    def read():
        return {'data': dict(flask.session), 'new': flask.session.new,
                'permanent': flask.session.permanent}

    @app.get('/set/<key>/<value>')
    def set_key(key, value):
        flask.session[key] = value
        return {}

    @app.get('/append/<key>/<value>')
    def append(key, value):
        flask.session.setdefault(key, []).append(value)
        if flask.request.args.get('modified'):
            flask.session.modified = True
        return {}

    @app.get('/status/<int:status>')
    def with_status(status):
        flask.session['seen'] = status
        if flask.request.args.get('x_tm'):
            return {}, status, {'X-Tm': flask.request.args['x_tm']}
        if status >= 400:
            flask.abort(status)
        return flask.redirect('/read') if status >= 300 else {}

    @app.get('/append-then/<how>')
    def append_then_fail(how):
        flask.session['items'].append(how)      # in place, then a failure
        if how == 'raise':
            raise RuntimeError('the view failed')
        if how == 'abort':
            flask.abort(403)
        return {}, 500

    @app.get('/raise')
    def raising():
        flask.session['seen'] = 'raised'
        raise RuntimeError('the view failed')

    @app.get('/flash')
    def flash_then_redirect():
        flask.flash('saved')
        flask.abort(flask.redirect('/read'))

    @app.get('/flashes')
    def flashes():
        return {'messages': flask.get_flashed_messages()}

    @app.get('/permanent')
    def permanent():
        flask.session.permanent = True
        flask.session['kept'] = 'long'
        return {}

    @app.get('/login')
    def login():
        flask.session['user'] = 'grace'
        regenerate_session()
        return {}

    @app.get('/increment')
    def increment():
        app.state['runs'] += 1
        value = flask.session.get('n', 0)
        first_attempt = flask.request.environ['zodbsession.attempt'] == 0
        if app.state['barrier'] is not None and first_attempt:
            app.state['barrier'].wait(TIMEOUT)
        flask.session['n'] = value + 1
        return {'n': value + 1}

    return app


@pytest.fixture
def app(tmp_path):
    application = make_app(tmp_path)
    yield application
    application.extensions['zodbsession'].db.close()


def cookies_of(response):
    return response.headers.getlist('Set-Cookie')


def test_reading_creates_nothing_and_secret_key_plays_no_part(app):
    assert app.secret_key is None
    client = app.test_client()
    response = client.get('/read')
    assert response.json == {'data': {}, 'new': True, 'permanent': False}
    assert cookies_of(response) == []
    assert 'Cookie' in response.headers['Vary']
    response = client.get('/set/a/1')
    assert cookies_of(response)[0].startswith('session=')
    assert client.get('/read').json['data'] == {'a': '1'}
    assert client.get('/read').json['new'] is False


def test_the_cookie_follows_flasks_settings(tmp_path):
    app = make_app(tmp_path, SESSION_COOKIE_NAME='flask_sid',
                   SESSION_COOKIE_SECURE=True,
                   SESSION_COOKIE_SAMESITE='Strict',
                   SESSION_COOKIE_DOMAIN='example.org',
                   SESSION_COOKIE_PATH='/app')
    cookie = cookies_of(app.test_client().get('/set/a/1'))[0]
    assert cookie.startswith('flask_sid=')
    for part in ('secure', 'SameSite=strict', 'Domain=example.org',
                 'Path=/app'):
        assert part in cookie
    # A browser-session cookie unless the session is permanent.
    assert 'Max-Age' not in cookie and 'expires' not in cookie
    app.extensions['zodbsession'].db.close()


def test_zodbsession_settings_from_app_config(tmp_path):
    app = make_app(tmp_path, ZODBSESSION_TIMEOUT='120',
                   ZODBSESSION_PACKAGE_ID='my.flask',
                   ZODBSESSION_RETRY_TIMEOUT=5)
    start = clock.ManualClock(1_000_000)
    with clock.use_clock(start):
        client = app.test_client()
        client.get('/set/a/1')
        start.advance(100)
        assert client.get('/read').json['data'] == {'a': '1'}
        start.advance(200)
        assert client.get('/read').json['data'] == {}
    app.extensions['zodbsession'].db.close()
    with pytest.raises(InvalidSetting, match='ZODBSESSION_TIMEOUTS'):
        make_app(tmp_path, ZODBSESSION_TIMEOUTS=1)
    with pytest.raises(InvalidSetting, match='SESSION_COOKIE_NAME'):
        make_app(tmp_path, SESSION_COOKIE_NAME='bad name!')


def test_permanent_sessions_last_the_permanent_lifetime(tmp_path):
    lifetime = datetime.timedelta(hours=5)
    app = make_app(tmp_path, PERMANENT_SESSION_LIFETIME=lifetime)
    start = clock.ManualClock(1_000_000)
    with clock.use_clock(start):
        client = app.test_client()
        client.get('/set/a/1')
        cookie = cookies_of(client.get('/permanent'))[0]
        assert 'Max-Age=18000' in cookie
        assert client.get('/read').json == {
            'data': {'a': '1', 'kept': 'long'}, 'new': False,
            'permanent': True}
        # Past the idle timeout (an hour), within the lifetime: kept.
        start.advance(3 * 3600)
        assert client.get('/read').json['data'] == {'a': '1', 'kept': 'long'}
        # Past the lifetime since the last use: gone.
        start.advance(6 * 3600)
        assert client.get('/read').json['data'] == {}
        # A session that is not permanent ends after the idle timeout.
        other = app.test_client()
        other.get('/set/b/2')
        start.advance(2 * 3600)
        assert other.get('/read').json['data'] == {}
    app.extensions['zodbsession'].db.close()


def test_modified_as_flask_defines_it(app):
    db = app.extensions['zodbsession'].db
    client = app.test_client()

    def stored():
        # What the storage holds, not what a connection's cache kept
        # of an object changed in place.
        db.cacheMinimize()
        return client.get('/read').json['data']

    client.get('/append/items/x')
    assert stored() == {'items': ['x']}
    # Changed in place without saying so: stored all the same (Flask's
    # own sessions would lose it; zodbsession finds it at commit).
    client.get('/append/items/y')
    assert stored() == {'items': ['x', 'y']}
    client.get('/append/items/z?modified=1')
    assert stored() == {'items': ['x', 'y', 'z']}


@pytest.mark.parametrize('status, kept', [
    (200, True), (302, True), (400, False), (404, False), (500, False)])
def test_the_response_decides_the_commit(app, status, kept):
    client = app.test_client()
    client.get('/set/a/1')
    client.get(f'/status/{status}')
    assert ('seen' in client.get('/read').json['data']) is kept


@pytest.mark.parametrize('x_tm, kept', [('commit', True), ('abort', False)])
def test_an_x_tm_header_decides(app, x_tm, kept):
    client = app.test_client()
    client.get('/set/a/1')
    client.get(f'/status/400?x_tm={x_tm}')
    assert ('seen' in client.get('/read').json['data']) is kept


def test_an_unhandled_error_aborts(app):
    client = app.test_client()
    client.get('/set/a/1')
    assert client.get('/raise').status_code == 500
    assert client.get('/read').json['data'] == {'a': '1'}


@pytest.mark.parametrize('how', ['raise', 'abort', 'return'])
def test_a_change_in_place_is_aborted_with_its_request(app, how):
    db = app.extensions['zodbsession'].db
    client = app.test_client()
    client.get('/append/items/x')
    assert client.get(f'/append-then/{how}').status_code in (403, 500)
    # Neither seen by the thread's next request nor stored.
    assert client.get('/read').json['data'] == {'items': ['x']}
    db.cacheMinimize()
    assert client.get('/read').json['data'] == {'items': ['x']}


def test_a_flash_before_a_raised_redirect_is_kept(app):
    client = app.test_client()
    assert client.get('/flash').status_code == 302
    assert client.get('/flashes').json == {'messages': ['saved']}


def test_regenerate_after_login_keeps_the_data_under_a_new_id(app):
    client = app.test_client()
    client.get('/set/a/1')
    before = client.get_cookie('session').value
    client.get('/login')
    after = client.get_cookie('session').value
    assert after != before
    assert client.get('/read').json['data'] == {'a': '1', 'user': 'grace'}
    stale = app.test_client()
    stale.set_cookie('session', before)
    assert stale.get('/read').json['data'] == {}


def test_bad_cookies_are_absent(app):
    client = app.test_client()
    for value in ('garbage', 'x' * 5000, '"\\"'):
        client.set_cookie('session', value)
        response = client.get('/read')
        assert response.status_code == 200
        assert response.json['data'] == {}


def test_a_conflict_reruns_the_view(app):
    """Two requests of one client read the counter, then both write it:
    one commit conflicts, and its request (the view) runs again."""
    first = app.test_client()
    first.get('/set/a/1')
    second = app.test_client()
    second.set_cookie('session', first.get_cookie('session').value)
    app.state['barrier'] = threading.Barrier(2)
    replies = []
    threads = [threading.Thread(target=lambda c=c: replies.append(
        c.get('/increment').json)) for c in (first, second)]
    # Only the first attempts meet at the barrier: a re-run does not wait.
    app.state['runs'] = 0
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    app.state['barrier'] = None
    assert sorted(reply['n'] for reply in replies) == [1, 2]
    assert app.state['runs'] == 3
    assert first.get('/read').json['data']['n'] == 2


def test_a_request_context_without_a_request_has_an_empty_session(app):
    with app.test_request_context('/'):
        assert dict(flask.session) == {}
        with pytest.raises(RuntimeError, match='test_client'):
            flask.session['a'] = 1


def test_a_request_leaves_nothing_of_ours_in_reference_cycles(app):
    from zodbsession.testing.garbage import cycles_left_by
    client = app.test_client()
    client.get('/set/a/0')

    def requests():
        for value in '123':
            client.get(f'/set/a/{value}')
            assert client.get('/read').json['data'] == {'a': value}

    assert cycles_left_by(requests) == []
