"""Two worker processes share sessions through a real ZEO server.

Each worker is ``SessionMiddleware`` over ``zeo://...`` served by waitress
in a process of its own (``zodbsession.testing.workers``); the test is
the browser, sending one client's cookie to either worker.
"""
import pytest

from zodbsession.testing.checks import check_concurrent_increments
from zodbsession.testing.checks import check_different_keys
from zodbsession.testing.checks import check_shared_sessions
from zodbsession.testing.workers import session_worker
from zodbsession.testing.zeo import count_round_trips
from zodbsession.testing.zeo import zeo_server

pytest.importorskip('ZEO')

INCREMENTS = 25            # per thread; two threads per worker


@pytest.fixture(scope='module')
def workers(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('zeo'))
    with zeo_server(directory) as uri, \
            session_worker(uri, directory) as first, \
            session_worker(uri, directory) as second:
        yield first, second


def test_clients_are_shared_between_processes(workers):
    check_shared_sessions(*workers)


def test_different_keys_across_processes_merge_without_retries(workers):
    check_different_keys(*workers, changes=INCREMENTS)


def test_concurrent_increments_across_processes(workers, record_property):
    retries = check_concurrent_increments(*workers, INCREMENTS)
    record_property('retries', retries)
    print(f'ZEO: {4 * INCREMENTS} increments from two processes needed'
          f' {retries} retries')


def test_a_stopped_zeo_server_gives_503_to_session_requests_only(
        registry, tmp_path):
    import webob
    import webob.dec
    import webtest

    from zodbsession import ISession
    from zodbsession.db import open_database
    from zodbsession.testing import TEST_SECRET
    from zodbsession.wsgi import REQUEST_KEY
    from zodbsession.wsgi import SessionMiddleware

    @webob.dec.wsgify
    def app(request):
        if request.path_info == '/session':
            ISession(request.environ[REQUEST_KEY])['pkg']['n'] = 1
        return webob.Response('ok')

    with zeo_server(str(tmp_path)) as uri:
        db = open_database(uri + '?wait_timeout=1')
        browser = webtest.TestApp(SessionMiddleware(
            app, db=db, retries=1, retry_after=7, secret=TEST_SECRET))
        assert browser.get('/session').text == 'ok'
    try:
        # The server is gone.
        response = browser.get('/session', status=503)
        assert response.headers['Retry-After'] == '7'
        assert response.headers.getall('Set-Cookie') == []
        assert browser.get('/static').text == 'ok'
    finally:
        db.close()


def test_only_requests_that_read_a_session_wait_for_the_server(tmp_path):
    # A request whose client sent no id reads no session: its connection
    # needs no round trip to the server first (what it stores is a new
    # session). A returning client's request makes one, so that it sees
    # what other processes committed before it started.
    import webtest

    from zodbsession import ISession
    from zodbsession.hosting.db import open_database
    from zodbsession.wsgi import SessionMiddleware

    def app(environ, start_response):
        data = ISession(environ['zodbsession.request'])['pkg']
        if environ['PATH_INFO'] == '/write':
            data['n'] = data.get('n', 0) + 1
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [str(data.get('n')).encode()]

    with zeo_server(str(tmp_path)) as uri:
        db = open_database(uri)
        try:
            pings = count_round_trips(db)
            browser = webtest.TestApp(SessionMiddleware(
                app, db=db, pack_interval=0))
            assert browser.get('/write').text == '1'      # a new client
            assert pings == []
            assert browser.get('/write').text == '2'      # returning
            assert browser.get('/read').text == '2'
            assert len(pings) == 2
            stranger = webtest.TestApp(browser.app)
            assert stranger.get('/read').text == 'None'
            assert len(pings) == 2
        finally:
            db.close()
