"""Log out everywhere (``zodbsession.principals``): two real clients of
one principal, one revokes the other; across processes over ZEO; costs
what the principal has; index entries expire with the sessions."""
import pytest
import webtest
from zope.interface.verify import verifyObject

from zodbsession import RAMSessionDataContainer
from zodbsession import clock
from zodbsession.interfaces import ISessionInfo
from zodbsession.maintenance import maintenance_of
from zodbsession.principals import indexed_sessions
from zodbsession.principals import remember_principal
from zodbsession.principals import revoke_sessions
from zodbsession.principals import sessions_of
from zodbsession.site import change_site
from zodbsession.testing import filestorage_db
from zodbsession.testing import last_transaction_records
from zodbsession.testing.workers import SessionHTTPClient
from zodbsession.testing.workers import session_worker
from zodbsession.testing.zeo import count_round_trips
from zodbsession.testing.zeo import zeo_server
from zodbsession.wsgi import SessionMiddleware

START = 1_700_000_000
FOUND = {}


def app(environ, start_response):
    request = environ['zodbsession.request']
    session = environ['zodbsession.session']
    path, query = environ['PATH_INFO'], environ.get('QUERY_STRING', '')
    # /list?ada reads no session of its own (so it could touch none).
    auth = session.get('auth') if path != '/list' else None
    user = auth.get('user') if auth is not None else None
    body = 'ok'
    if path == '/login':
        session.regenerate()
        session['auth']['user'] = user = query
        session['ram']['note'] = f'ram of {query}'
        remember_principal(request, user)
    elif path == '/list':
        FOUND['infos'] = sessions_of(request, query or user)
    elif path == '/revoke':
        body = str(revoke_sessions(request, user,
                                   keep_current=query != 'all'))
    elif path == '/ram':
        ram = session.get('ram')
        body = 'none' if ram is None else ram['note']
    elif path == '/visit':
        session['auth']['seen'] = clock.now()
    else:
        body = user or 'stranger'
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [body.encode()]


@pytest.fixture
def manual_clock():
    with clock.use_clock(clock.ManualClock(START)) as manual:
        yield manual


@pytest.fixture
def wsgi(tmp_path, manual_clock):
    with filestorage_db(str(tmp_path)) as db:
        yield SessionMiddleware(app, db=db)


def log_in(wsgi, user):
    browser = webtest.TestApp(wsgi)
    browser.get(f'/login?{user}')
    return browser


def test_one_client_revokes_the_other(wsgi):
    laptop, phone = log_in(wsgi, 'ada'), log_in(wsgi, 'ada')
    bob = log_in(wsgi, 'bob')
    assert phone.get('/').text == 'ada'
    laptop.get('/list?ada')
    infos = FOUND['infos']
    assert sorted(info.current for info in infos) == [False, True]
    for info in infos:
        verifyObject(ISessionInfo, info)
        assert info.containers == ('',)
        assert info.created == info.last_access == START
    # Never the client id, which the cookie carries.
    assert not any(info.session_id in value
                   for value in list(laptop.cookies.values())
                   + list(phone.cookies.values()))
    assert laptop.get('/revoke').text == '1'
    assert phone.get('/').text == 'stranger'
    assert laptop.get('/').text == 'ada'
    assert bob.get('/').text == 'bob'
    assert indexed_sessions(wsgi.db, 'ada') == 1


def test_revoking_all_includes_the_current_session(wsgi):
    laptop, phone = log_in(wsgi, 'ada'), log_in(wsgi, 'ada')
    assert laptop.get('/revoke?all').text == '2'
    assert laptop.get('/').text == phone.get('/').text == 'stranger'
    assert indexed_sessions(wsgi.db, 'ada') == 0


def test_ram_containers_are_revoked_in_this_process(wsgi):
    change_site(wsgi.db, lambda site: site.register_container(
        'ram', RAMSessionDataContainer()))
    laptop, phone = log_in(wsgi, 'ada'), log_in(wsgi, 'ada')
    assert phone.get('/ram').text == 'ram of ada'
    laptop.get('/list?ada')
    assert FOUND['infos'][1].containers == ('', 'ram')
    laptop.get('/revoke')
    assert phone.get('/ram').text == 'none'
    assert laptop.get('/ram').text == 'ram of ada'


def test_listing_writes_nothing(wsgi, manual_clock):
    laptop = log_in(wsgi, 'ada')
    log_in(wsgi, 'ada')
    # Past the resolution: reading the sessions would touch them.
    manual_clock.advance(700)
    last = wsgi.db.lastTransaction()
    laptop.get('/list?ada')
    assert len(FOUND['infos']) == 2
    assert wsgi.db.lastTransaction() == last


def test_revoking_costs_what_the_principal_has(wsgi):
    for number in range(40):
        log_in(wsgi, f'user{number}')
    laptop = log_in(wsgi, 'ada')
    log_in(wsgi, 'ada')
    laptop.get('/revoke')
    written = [name for _oid, name in last_transaction_records(wsgi.db)]
    # The revoked session's bucket, ada's index entry; nothing of the
    # other forty principals.
    assert written.count('zodbsession.records.PrincipalSessions') == 1
    assert len(written) <= 3, written


def test_index_entries_expire_with_their_sessions(wsgi, manual_clock):
    log_in(wsgi, 'ada')
    active = log_in(wsgi, 'bob')
    for _ in range(24):     # bob keeps coming for four hours
        manual_clock.advance(600)
        active.get('/visit')
    maintenance_of(wsgi.db).tick()
    assert indexed_sessions(wsgi.db, 'ada') == 0
    assert indexed_sessions(wsgi.db, 'bob') == 1
    active.get('/list?bob')
    assert len(FOUND['infos']) == 1


def test_a_principal_id_must_be_a_string(wsgi):
    def bad_app(environ, start_response):
        with pytest.raises(TypeError, match='principal_id'):
            remember_principal(environ['zodbsession.request'], 42)
        start_response('200 OK', [])
        return [b'']
    webtest.TestApp(SessionMiddleware(bad_app, db=wsgi.db)).get('/')


def test_revocation_across_processes_over_zeo(tmp_path):
    directory = str(tmp_path)
    with zeo_server(directory) as uri, \
            session_worker(uri, directory) as first, \
            session_worker(uri, directory) as second:
        laptop, phone = SessionHTTPClient(), SessionHTTPClient()
        laptop.request(first.url, '/login', form={'user': 'ada'})
        phone.request(second.url, '/login', form={'user': 'ada'})
        assert phone.request(second.url, '/read')['data']['user'] == 'ada'
        reply = laptop.request(first.url, '/revoke', form={})
        assert reply['data'] == {'revoked': 1}
        # The other process sees the committed revocation once the ZEO
        # server's invalidation reached it (asynchronously, within
        # milliseconds; ZEO's own server_sync option would make every
        # transaction wait for it): read until then, within a bound.
        assert reads_until(phone, second.url,
                           lambda data: data is None) is None
        assert laptop.request(second.url, '/read')['data']['user'] == 'ada'


def reads_until(client, url, done, timeout=5):
    """GET /read until ``done(data)``, at most ``timeout`` seconds;
    the last data read."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        data = client.request(url, '/read')['data']
        if done(data) or time.monotonic() > deadline:
            return data


def test_two_logins_of_one_principal_at_once_merge():
    from zodbsession.records import PrincipalSessions
    merged = PrincipalSessions()._p_resolveConflict(
        {'sessions': {'a': 1}}, {'sessions': {'a': 1, 'b': 2}},
        {'sessions': {'a': 1, 'c': 3}})
    assert merged == {'sessions': {'a': 1, 'b': 2, 'c': 3}}


def test_a_revocation_by_a_client_without_an_id_sees_other_processes(
        tmp_path):
    # A request whose client sent no id (a password reset opened from an
    # e-mail, say) touches its session first, which needs no round trip
    # to the ZEO server; then it revokes a principal's sessions. The index
    # is written by every process: it must read it up to date, as every
    # request that reads what others write does (after the server's
    # round trip: ping).
    from zodbsession import ISession
    from zodbsession.hosting.db import open_database

    def reset_app(environ, start_response):
        request = environ['zodbsession.request']
        session = ISession(request)
        body = 'ok'
        if environ['PATH_INFO'] == '/login':
            session.regenerate()
            session['auth']['user'] = 'ada'
            remember_principal(request, 'ada')
        else:
            session.get('flash')
            body = str(revoke_sessions(request, 'ada'))
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [body.encode()]

    with zeo_server(str(tmp_path)) as uri:
        here, there = open_database(uri), open_database(uri)
        pings = count_round_trips(here)
        try:
            webtest.TestApp(SessionMiddleware(
                reset_app, db=there, pack_interval=0)).get('/login')
            browser = webtest.TestApp(SessionMiddleware(
                reset_app, db=here, pack_interval=0))
            browser.get('/login')
            webtest.TestApp(browser.app).get('/reset')   # warm, revokes
            webtest.TestApp(SessionMiddleware(
                reset_app, db=there, pack_interval=0)).get('/login')
            pings.clear()
            assert webtest.TestApp(browser.app).get('/reset').text == '1'
            assert pings == [1]
        finally:
            here.close()
            there.close()


def test_a_new_visitors_login_over_zeo_runs_once(tmp_path):
    # A new visitor's login reads its (absent) session first, so its
    # connection skips the ZEO round trip; filing the session under the
    # principal only writes the index (what another process filed
    # meanwhile conflicts with it or merges), so it needs no second run.
    from zodbsession.hosting.db import open_database

    calls = []

    def counted(environ, start_response):
        calls.append(environ['PATH_INFO'])
        return app(environ, start_response)

    with zeo_server(str(tmp_path)) as uri:
        db = open_database(uri)
        try:
            browser = webtest.TestApp(SessionMiddleware(
                counted, db=db, pack_interval=0))
            browser.get('/login?ada')
            assert calls == ['/login']
            assert browser.get('/').text == 'ada'
            assert indexed_sessions(db, 'ada') == 1
        finally:
            db.close()
