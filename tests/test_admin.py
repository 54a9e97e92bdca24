"""The metrics app (Prometheus text format), its Pyramid view, and the
token-protected admin page (WSGI level; tests/test_admin_browser.py
drives it in Chromium)."""
import re

import pytest
import webtest
from prometheus_client.parser import text_string_to_metric_families
from pyramid.config import Configurator

from zodbsession import clock
from zodbsession.admin import TokenError
from zodbsession.admin import admin_app
from zodbsession.admin import metrics_app
from zodbsession.maintenance import maintenance_of
from zodbsession.testing import SessionTestClient
from zodbsession.testing import filestorage_db
from zodbsession.wsgi import SessionMiddleware

TOKEN = 'an-admin-token-for-tests'
START = 1_700_000_000


def app(environ, start_response):
    data = environ['zodbsession.session']['app']
    data['n'] = data.get('n', 0) + 1
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'ok']


@pytest.fixture
def db(tmp_path):
    with clock.use_clock(clock.ManualClock(START)), \
            filestorage_db(str(tmp_path)) as database:
        sessions = SessionMiddleware(app, db=database)
        for _ in range(4):
            SessionTestClient().call(sessions, PATH_INFO='/')
        maintenance_of(database).tick()
        yield database


def samples(text):
    return {(sample.name, tuple(sorted(sample.labels.items()))):
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples}


def test_metrics_in_the_prometheus_text_format(db):
    response = webtest.TestApp(metrics_app(db)).get('/metrics')
    assert response.content_type == 'text/plain'
    found = samples(response.text)
    assert found[('zodbsession_sessions', (('container', ''),))] == 4
    assert found[('zodbsession_live_slices', (('container', ''),))] == 1
    assert found[('zodbsession_storage_bytes', ())] == db.getSize()
    assert found[('zodbsession_last_pack_timestamp_seconds', ())] == START
    assert ('zodbsession_record_bytes',
            (('container', ''), ('quantile', '0.99'))) in found
    assert any(name == 'zodbsession_requests_total' and value >= 4
               for (name, _labels), value in found.items())


def test_metrics_with_a_token_need_the_bearer_header(db):
    browser = webtest.TestApp(metrics_app(db, token=TOKEN))
    assert browser.get('/', status=401).headers['WWW-Authenticate']
    browser.get('/', headers={'Authorization': 'Bearer wrong'}, status=401)
    browser.get('/', headers={'Authorization': f'Bearer {TOKEN}'},
                status=200)


def test_metrics_as_a_pyramid_view(db):
    with Configurator(settings={'zodbsession.metrics_token': TOKEN}) as (
            config):
        from zodbsession.pyramid import session_factory
        config.set_session_factory(session_factory(db=db))
        config.include('zodbsession.pyramid')
        config.include('zodbsession.admin.pyramid')
        wsgi = config.make_wsgi_app()
    browser = webtest.TestApp(wsgi)
    browser.get('/metrics', status=401)
    text = browser.get('/metrics', headers={
        'Authorization': f'Bearer {TOKEN}'}).text
    assert samples(text)[('zodbsession_sessions', (('container', ''),))] == 4


def test_metrics_settings_beside_the_session_factorys_settings(tmp_path):
    # The factory made from zodbsession.* settings leaves the metrics
    # view's own settings to it.
    uri = f'file://{tmp_path}/sessions.fs'
    with Configurator(settings={
            'zodbsession.db_uri': uri,
            'zodbsession.metrics_token': TOKEN,
            'zodbsession.metrics_path': '/figures'}) as config:
        config.include('zodbsession.pyramid')
        config.include('zodbsession.admin.pyramid')
        wsgi = config.make_wsgi_app()
    browser = webtest.TestApp(wsgi)
    try:
        browser.get('/figures', status=401)
        assert 'zodbsession_sessions' in browser.get('/figures', headers={
            'Authorization': f'Bearer {TOKEN}'}).text
    finally:
        from pyramid.interfaces import ISessionFactory
        wsgi.registry.getUtility(ISessionFactory).close()


@pytest.mark.parametrize('token', [None, '', 'short', 12345])
def test_the_admin_app_will_not_start_without_a_token(token):
    with pytest.raises(TokenError, match='admin_app needs token='):
        admin_app(object(), token=token)


def test_every_admin_request_without_the_token_is_refused(db):
    browser = webtest.TestApp(admin_app(db, token=TOKEN))
    for method, path in (('get', '/'), ('post', '/sweep'),
                         ('post', '/pack'), ('get', '/nowhere')):
        response = getattr(browser, method)(path, status=401)
        assert 'storage' not in response.text and 'Sign in' in response.text
    browser.get('/', headers={'Authorization': 'Bearer nope'}, status=403)
    browser.post('/login', {'token': 'wrong'}, status=403)
    browser.set_cookie('zodbsession_admin', 'forged')
    browser.get('/', status=403)


def test_a_signed_in_browser_sees_the_figures_and_sweeps(db):
    browser = webtest.TestApp(admin_app(db, token=TOKEN))
    response = browser.post('/login', {'token': TOKEN}, status=303)
    cookie = response.headers['Set-Cookie']
    assert 'HttpOnly' in cookie and 'samesite=strict' in cookie.lower()
    assert TOKEN not in cookie
    page = browser.get('/')
    assert page.html.find(id='sessions').text == '4'
    assert '<svg' in page.text and 'polyline' in page.text
    csrf = page.html.find('input', attrs={'name': 'csrf'})['value']
    # Without the CSRF field (a form posted from another site): refused.
    browser.post('/sweep', status=403)
    browser.post('/pack', {'csrf': 'guess'}, status=403)
    before = db.lastTransaction()
    done = browser.post('/pack', {'csrf': csrf}, status=303)
    assert done.location.endswith('/?done=pack')
    assert db.lastTransaction() != before
    assert 'Packed.' in browser.get('/?done=pack').text
    browser.get('/sweep', status=405)


def test_a_script_uses_the_bearer_header(db):
    browser = webtest.TestApp(admin_app(db, token=TOKEN))
    headers = {'Authorization': f'Bearer {TOKEN}'}
    assert re.search(r'id="storage-size">[\d,]+ B',
                     browser.get('/', headers=headers).text)
    browser.post('/sweep', headers=headers, status=303)


def test_malformed_requests_get_the_sign_in_page_never_an_error(db):
    browser = webtest.TestApp(admin_app(db, token=TOKEN))
    # A cookie WebOb cannot decode (an escaped byte that is not UTF-8).
    response = browser.get('/', headers={
        'Cookie': 'zodbsession_admin="\\377"'}, status=401)
    assert 'Sign in' in response.text
    # Forms WebOb cannot read: another charset, a multipart form without
    # its boundary, bytes that are not UTF-8.
    for content_type, body in (
            ('application/x-www-form-urlencoded; charset=bogus', b'token=x'),
            ('multipart/form-data', b'token=x'),
            ('application/x-www-form-urlencoded', b'token=%ff%fe')):
        response = browser.post('/login', body, headers={
            'Content-Type': content_type}, status=403)
        assert 'not the admin token' in response.text
    headers = {'Authorization': f'Bearer {TOKEN}'}
    assert 'storage' in browser.get('/?done=%ff%fe', headers=headers).text
    headers['Content-Type'] = 'multipart/form-data'
    browser.post('/sweep', b'csrf=x', headers=headers, status=303)


def test_a_long_cookie_header_is_read_in_linear_time(db):
    # WebOb's reader takes quadratic time over a run without '=': 32 KB
    # of it held a worker for seconds, before the token was checked.
    import time
    browser = webtest.TestApp(admin_app(db, token=TOKEN))
    started = time.monotonic()
    browser.get('/', headers={'Cookie': 'a' * 32768}, status=401)
    assert time.monotonic() - started < 2
