"""SessionMiddleware over a real FileStorage, driven through WebTest."""
import io
import sys
import threading

import pytest
import transaction
import webob
import webob.dec
import webtest
from ZODB.ActivityMonitor import ActivityMonitor
from ZODB.POSException import ConflictError
from zope.interface.verify import verifyObject

from zodbsession import testing
from zodbsession import IClientId
from zodbsession import ISession
from zodbsession import RAMSessionDataContainer
from zodbsession.clock import ManualClock
from zodbsession.clock import use_clock
from zodbsession.interfaces import ISessionLifecycle
from zodbsession.session import expire_session
from zodbsession.session import get_session
from zodbsession.site import change_site
from zodbsession.site import ensure_site
from zodbsession.site import site_of
from zodbsession.testing import TEST_SECRET
from zodbsession.testing import last_transaction_records
from zodbsession.transactions import has_transaction
from zodbsession.wsgi import ATTEMPT_KEY
from zodbsession.wsgi import REQUEST_KEY
from zodbsession.wsgi import SESSION_KEY
from zodbsession.environkeys import CONTEXT_KEY
from zodbsession.wsgi import SessionMiddleware

START = 1_700_000_000
PKG = 'test.app'
COOKIE = 'zodbsession'
TIMEOUT = 5       # seconds any thread of these tests may wait for another


@pytest.fixture
def clock():
    with use_clock(ManualClock(START)) as manual:
        yield manual


@pytest.fixture
def db(registry, db):
    """The FileStorage database, with a clean global registry."""
    yield db


def view(function):
    """A WSGI app whose response body is ``function(request)`` as text."""
    @webob.dec.wsgify
    def app(request):
        return webob.Response(str(function(request)))
    return app


def browser(db, function, **options):
    options.setdefault('secret', TEST_SECRET)
    return webtest.TestApp(SessionMiddleware(view(function), db=db,
                                             **options))


def stored(db, client_id, pkg_id=PKG):
    """The committed data of a client's package, as a dict (None: none)."""
    with db.transaction() as connection:
        site = site_of(connection)
        container = site.containers().get(pkg_id, site.container)
        data = container.get(client_id)
        if data is None or data.get(pkg_id) is None:
            return None
        return dict(data[pkg_id])


def set_cookies(response):
    return response.headers.getall('Set-Cookie')


def set_items(**items):
    def change(request):
        ISession(request.environ[REQUEST_KEY])[PKG].update(items)
        return 'ok'
    return change


def read_items(request):
    data = ISession(request.environ[REQUEST_KEY]).get(PKG)
    return None if data is None else sorted(data.items())


# -- what the application sees ----------------------------------------------


def test_environ_offers_a_session_and_adaptable_requests(db):
    seen = {}

    def handle(request):
        environ = request.environ
        session = environ[SESSION_KEY]
        seen['session'] = session
        ISession(environ[REQUEST_KEY])[PKG]['from_request'] = 1
        ISession(webob.Request(environ))[PKG]['from_webob'] = 2
        seen['ids'] = (str(IClientId(environ[REQUEST_KEY])),
                       str(IClientId(webob.Request(environ))))
        return sorted(session[PKG].items())

    app = browser(db, handle)
    response = app.get('/')
    assert verifyObject(ISession, seen['session'])
    assert ISessionLifecycle.providedBy(seen['session'])
    assert response.text == "[('from_request', 1), ('from_webob', 2)]"
    client_id = app.cookies[COOKIE]
    assert seen['ids'] == (client_id, client_id)
    assert stored(db, client_id) == {'from_request': 1, 'from_webob': 2}


def test_commit_on_return_and_later_requests_see_the_data(db):
    app = browser(db, set_items(colour='blue'))
    app.get('/')
    client_id = app.cookies[COOKIE]
    assert stored(db, client_id) == {'colour': 'blue'}
    reader = browser(db, read_items)
    reader.set_cookie(COOKIE, client_id)
    assert reader.get('/').text == "[('colour', 'blue')]"


def test_abort_when_the_application_raises(db):
    app = browser(db, set_items(n=1))
    app.get('/')
    client_id = app.cookies[COOKIE]
    before = db.storage.lastTransaction()

    def fail(request):
        ISession(request.environ[REQUEST_KEY])[PKG]['n'] = 2
        raise ValueError('boom')

    failing = browser(db, fail)
    failing.set_cookie(COOKIE, client_id)
    with pytest.raises(ValueError, match='boom'):
        failing.get('/')
    assert stored(db, client_id) == {'n': 1}
    assert db.storage.lastTransaction() == before


def answering(status, x_tm=None, in_place=False):
    """A WSGI app that changes the session, then answers ``status`` itself
    (as a framework answers an error it caught) with ``exc_info``."""
    def app(environ, start_response):
        data = ISession(environ[REQUEST_KEY])[PKG]
        if in_place:
            data['items'].append('half done')
        else:
            data['n'] = 2
        headers = [('Content-Type', 'text/plain')]
        if x_tm is not None:
            headers.append(('X-Tm', x_tm))
        try:
            raise ValueError('caught by the application')
        except ValueError:
            start_response(status, headers, sys.exc_info())
        return [b'answered']
    return app


@pytest.mark.parametrize('status, x_tm, kept', [
    ('500 Internal Server Error', None, False),
    ('404 Not Found', None, False),
    ('200 OK', None, True),
    ('302 Found', None, True),
    ('500 Internal Server Error', 'commit', True),
    ('200 OK', 'abort', False),
])
def test_the_response_decides_the_commit(db, status, x_tm, kept):
    first = browser(db, set_items(n=1, items=[]))
    first.get('/')
    client_id = first.cookies[COOKIE]
    app = webtest.TestApp(SessionMiddleware(
        answering(status, x_tm), db=db, secret=TEST_SECRET))
    app.set_cookie(COOKIE, client_id)
    assert app.get('/', status='*').text == 'answered'
    assert stored(db, client_id)['n'] == (2 if kept else 1)


def test_a_change_in_place_before_an_error_answer_is_not_kept(db):
    first = browser(db, set_items(items=[]))
    first.get('/')
    client_id = first.cookies[COOKIE]
    app = webtest.TestApp(SessionMiddleware(
        answering('500 Internal Server Error', in_place=True), db=db,
        secret=TEST_SECRET))
    app.set_cookie(COOKIE, client_id)
    app.get('/', status=500)
    # Neither left in the thread's connection for its next request, nor
    # stored.
    reader = browser(db, read_items)
    reader.set_cookie(COOKIE, client_id)
    assert reader.get('/').text == "[('items', [])]"
    assert stored(db, client_id) == {'items': []}


def test_a_new_client_answered_with_an_error_gets_no_cookie(db):
    app = webtest.TestApp(SessionMiddleware(
        answering('500 Internal Server Error'), db=db, secret=TEST_SECRET))
    before = db.storage.lastTransaction()
    response = app.get('/', status=500)
    assert set_cookies(response) == []
    assert db.storage.lastTransaction() == before


def catch_errors(app):
    """An outer error page, as a server or framework would add."""
    def wrapper(environ, start_response):
        try:
            return app(environ, start_response)
        except ValueError:
            start_response('500 Internal Server Error',
                           [('Content-Type', 'text/plain')])
            return [b'error']
    return wrapper


def test_a_new_client_whose_request_fails_gets_no_cookie(db):
    def fail(request):
        ISession(request.environ[REQUEST_KEY])[PKG]['n'] = 1
        raise ValueError('boom')

    app = webtest.TestApp(catch_errors(SessionMiddleware(view(fail), db=db)))
    before = db.storage.lastTransaction()
    response = app.get('/', status=500)
    assert set_cookies(response) == []
    assert 'Cache-Control' not in response.headers
    assert db.storage.lastTransaction() == before


# -- lazy ---------------------------------------------------------------------


def test_a_request_that_never_touches_the_session_costs_nothing(db):
    seen = {}

    def handle(request):
        seen['opened'] = request.environ[CONTEXT_KEY].site.opened
        return 'hello'

    app = browser(db, handle)
    monitor = ActivityMonitor()
    db.setActivityMonitor(monitor)
    before = db.storage.lastTransaction()
    response = app.get('/')
    assert response.text == 'hello'
    assert seen['opened'] is False
    assert monitor.log == []             # no connection was opened/closed
    assert db.storage.lastTransaction() == before
    assert set_cookies(response) == []


def test_get_without_a_session_creates_nothing(db):
    app = browser(db, read_items)
    before = db.storage.lastTransaction()
    response = app.get('/')
    assert response.text == 'None'
    assert set_cookies(response) == []
    assert db.storage.lastTransaction() == before


def test_a_read_only_request_within_resolution_writes_nothing(db, clock):
    app = browser(db, set_items(k='v'), resolution=60)
    app.get('/')
    client_id = app.cookies[COOKIE]
    reader = browser(db, read_items)
    reader.set_cookie(COOKIE, client_id)

    before = db.storage.lastTransaction()
    clock.advance(59)
    response = reader.get('/')
    assert response.text == "[('k', 'v')]"
    assert db.storage.lastTransaction() == before
    assert set_cookies(response) == []

    # Past the resolution one small record is written: the session itself.
    clock.advance(2)
    reader.get('/')
    assert db.storage.lastTransaction() != before
    classes = [name for _oid, name in last_transaction_records(db)]
    assert 'zodbsession.data.SessionData' in classes
    assert len(classes) <= 3


def test_a_new_clients_first_write_stores_its_session_and_one_tree(
        db, clock):
    """A new client's first write, once the site and the time slice
    exist: its session's record and the small tree that indexes it (one
    record, its bucket inline), never the container, the site or the
    slice. (Once in the 40, the thread's trees fill: that write also
    makes GROWTH more, and the record of its placement's trees that
    holds them.)"""
    from zodbsession.filing import GROWTH
    app = browser(db, set_items(k='v'))
    app.get('/')                        # the site, the slice
    written = []
    for _number in range(40):
        app.reset()                     # a new client: no cookie
        app.get('/')
        written.append(sorted(
            name for _oid, name in last_transaction_records(db)))
    usual = ['BTrees.OOBTree.OOBTree', 'zodbsession.data.SessionData']
    grew = [names for names in written if names != usual]
    assert len(grew) == 1, written
    assert grew[0] == sorted(usual + ['BTrees.OOBTree.OOBTree'] * GROWTH
                             + ['zodbsession.filing.PlacementTrees'])


def test_a_read_only_request_starts_no_transaction(db, clock):
    """Reading the session creates no transaction on the thread's manager
    (so there is none to commit); the first change starts one."""
    manager = transaction.manager.manager
    seen = {}

    def handle(request):
        session = ISession(request.environ[REQUEST_KEY])
        value = session[PKG].get('k')
        seen['after read'] = has_transaction(manager)
        if request.path == '/write':
            session[PKG]['k'] = 'w'
            seen['after write'] = has_transaction(manager)
        return value

    app = browser(db, handle)
    app.get('/write')       # a new client: its session is created
    assert seen['after write'] is True
    before = db.storage.lastTransaction()
    assert app.get('/read').text == 'w'
    assert seen['after read'] is False
    assert has_transaction(manager) is False
    assert db.storage.lastTransaction() == before


@pytest.mark.parametrize('path', ['/read', '/write'])
def test_a_transaction_left_on_the_thread_is_not_committed(db, path):
    """Work an earlier caller left uncommitted on the thread's manager
    is aborted when a request starts, never committed with it."""
    def handle(request):
        session = ISession(request.environ[REQUEST_KEY])
        if request.path == '/write':
            session[PKG]['k'] = 'v'
        return 'ok'

    app = browser(db, handle)
    stray = db.open()
    stray.root()['stray'] = 'uncommitted'
    assert has_transaction(transaction.manager.manager)
    assert app.get(path).text == 'ok'
    stray.close()
    with db.transaction() as connection:
        assert 'stray' not in connection.root()


def test_an_explicit_thread_manager_gets_a_transaction_begun(db):
    transaction.manager.explicit = True
    try:
        app = browser(db, set_items(k='v'))
        app.get('/')
        client_id = app.cookies[COOKIE]
        assert stored(db, client_id) == {'k': 'v'}
        assert browser(db, read_items).get(
            '/', headers={'Cookie': f'{COOKIE}={client_id}'}).text == (
            "[('k', 'v')]")
    finally:
        transaction.manager.explicit = False


# -- retries ------------------------------------------------------------------


def test_a_conflict_is_retried_with_the_same_body(db):
    seen = []

    def handle(request):
        environ = request.environ
        seen.append((environ[ATTEMPT_KEY], request.body))
        ISession(environ[REQUEST_KEY])[PKG]['attempt'] = environ[ATTEMPT_KEY]
        if environ[ATTEMPT_KEY] == 0:
            raise ConflictError('first attempt conflicts')
        return 'done'

    app = browser(db, handle)
    body = b'x=1&y=' + b'2' * 5000
    response = app.post('/', body,
                        content_type='application/x-www-form-urlencoded')
    assert response.text == 'done'
    assert seen == [(0, body), (1, body)]
    assert stored(db, app.cookies[COOKIE]) == {'attempt': 1}
    # Only the committed attempt's cookie reaches the client.
    assert len(set_cookies(response)) == 1


def test_a_retried_attempt_runs_apart_from_the_conflict_before_it(db):
    # The conflict of the first attempt is over when the next one runs:
    # the application sees no exception being handled, and what a retry
    # raises is not chained to the conflict it followed.
    handled = []

    def handle(request):
        handled.append(sys.exc_info()[1])
        if request.environ[ATTEMPT_KEY] == 0:
            raise ConflictError('first attempt conflicts')
        if request.path == '/fail':
            raise ValueError('the retry fails')
        return 'done'

    app = browser(db, handle)
    assert app.get('/').text == 'done'
    assert handled == [None, None]
    with pytest.raises(ValueError, match='the retry fails') as raised:
        app.get('/fail')
    assert raised.value.__context__ is None
    assert handled == [None, None, None, None]


def test_the_retry_budget_starts_after_the_body_is_read(db):
    # retry_timeout counts from the start of the first attempt: a slow
    # client's upload, read before it, does not use up the budget.
    import time
    attempts = []

    class SlowUpload(io.BytesIO):
        def read(self, *args):
            time.sleep(0.3)      # the client's upload, not a race
            return super().read(*args)

    def handle(request):
        attempts.append(request.environ[ATTEMPT_KEY])
        if request.environ[ATTEMPT_KEY] == 0:
            raise ConflictError('first attempt conflicts')
        return 'done'

    body = b'x=1'
    environ = webob.Request.blank('/', method='POST', body=body).environ
    environ['wsgi.input'] = SlowUpload(body)
    started = []
    middleware = SessionMiddleware(view(handle), db=db, secret=TEST_SECRET,
                                   retry_timeout=0.2)
    result = middleware(environ, lambda *args: started.append(args))
    assert started[0][0] == '200 OK'
    assert b''.join(result) == b'done'
    assert attempts == [0, 1]


def test_a_large_body_is_replayed_from_a_spool_file(db, monkeypatch):
    import zodbsession.wsgi
    monkeypatch.setattr(zodbsession.wsgi, 'MAX_MEMORY_BODY', 10)
    seen = []

    def handle(request):
        seen.append(request.body)
        if request.environ[ATTEMPT_KEY] == 0:
            raise ConflictError()
        return 'done'

    body = bytes(range(256)) * 300
    browser(db, handle).post('/', body,
                             content_type='application/octet-stream')
    assert seen == [body, body]


def test_a_body_without_length_is_replayed(db):
    """Servers that pass chunked bodies on (wsgi.input_terminated) give no
    CONTENT_LENGTH; the body must survive the retry all the same."""
    seen = []

    def handle(request):
        seen.append(request.environ['wsgi.input'].read())
        if request.environ[ATTEMPT_KEY] == 0:
            raise ConflictError()
        return 'done'

    body = b'chunk one, chunk two'
    environ = webob.Request.blank('/', method='POST', body=body).environ
    del environ['CONTENT_LENGTH']
    environ['wsgi.input_terminated'] = True
    started = []
    middleware = SessionMiddleware(view(handle), db=db, secret=TEST_SECRET)
    result = middleware(environ, lambda *args: started.append(args))
    assert b''.join(result) == b'done'
    assert started[0][0] == '200 OK'
    assert seen == [body, body]


def test_a_doomed_request_sends_no_session_cookie(db):
    def doomed(request):
        ISession(request.environ[REQUEST_KEY])[PKG]['n'] = 1
        transaction.doom()
        return 'doomed'

    app = browser(db, doomed)
    before = db.storage.lastTransaction()
    response = app.get('/')
    assert response.text == 'doomed'
    assert set_cookies(response) == []
    assert db.storage.lastTransaction() == before


def test_retries_run_out(db, caplog):
    """A conflict that persists: 503 with Retry-After, nothing written,
    and the log names what the request changed."""
    attempts = []

    def always_conflict(request):
        attempts.append(request.environ[ATTEMPT_KEY])
        ISession(request.environ[REQUEST_KEY])[PKG]['x'] = 1
        raise ConflictError('always')

    app = browser(db, always_conflict, retries=2)
    before = db.storage.lastTransaction()
    response = app.get('/', status=503)
    assert response.headers['Retry-After'] == '5'
    assert set_cookies(response) == []
    assert attempts == [0, 1, 2]
    assert db.storage.lastTransaction() == before
    assert 'giving up on a request after 3 attempt(s)' in caplog.text

    attempts.clear()
    browser(db, always_conflict, retries=0).get('/', status=503)
    assert attempts == [0]


def test_retries_are_bounded_by_time_by_default(db):
    """Without a count, the time budget ends a conflict that never
    resolves (the default budget is 10 s; a short one keeps this test
    short)."""
    attempts = []

    def always_conflict(request):
        attempts.append(request.environ[ATTEMPT_KEY])
        raise ConflictError('always')

    app = browser(db, always_conflict, retry_timeout=0.3)
    app.get('/', status=503)
    assert len(attempts) > 3
    assert attempts == list(range(len(attempts)))


def test_an_exhausted_conflict_names_the_keys_it_changed(db, caplog):
    """A real conflict: another request changes the same key while this
    one runs; with no retry left, the log names the package and key."""
    setup = browser(db, set_items(n=0))
    setup.get('/')

    def increment(request):
        data = ISession(request.environ[REQUEST_KEY])[PKG]
        data['n'] = data['n'] + 1
        if 'interfere' in request.params:
            # Another request of the client (in a thread of its own, as a
            # server would run it) commits the same key first.
            other = webtest.TestApp(patient)
            other.set_cookie(COOKIE, setup.cookies[COOKIE])
            run_in_threads([lambda: other.get('/')])
        return 'ok'

    patient = SessionMiddleware(view(increment), db=db, secret=TEST_SECRET)
    impatient = SessionMiddleware(view(increment), db=db, retries=0,
                                  secret=TEST_SECRET)
    app = webtest.TestApp(impatient)
    app.set_cookie(COOKIE, setup.cookies[COOKIE])
    app.get('/?interfere=1', status=503)
    assert f"changed session key '{PKG}/n'" in caplog.text
    assert stored(db, setup.cookies[COOKIE]) == {"n": 1}


def test_negative_retries_are_rejected(db):
    with pytest.raises(ValueError, match='retries'):
        SessionMiddleware(view(read_items), db=db, retries=-1)


@pytest.mark.parametrize('setting, value', [
    # Sent as "Retry-After: -5" or "2.5": not HTTP's delay-seconds.
    ('retry_after', -5), ('retry_after', 2.5), ('retry_after', '5'),
    # A conflict that never clears held its worker for ever.
    ('retry_timeout', float('inf')), ('retry_timeout', float('nan')),
])
def test_hosting_settings_out_of_bounds_are_rejected(db, setting, value):
    with pytest.raises(ValueError, match=f'{setting} must be'):
        SessionMiddleware(view(read_items), db=db, **{setting: value})


def test_hosting_settings_from_text_are_checked_too(tmp_path):
    from zodbsession.wsgi import make_filter
    with pytest.raises(ValueError, match='retry_after must be'):
        make_filter(view(read_items), {}, retry_after='-5',
                    db_uri=f'file://{tmp_path}/s.fs')
    assert list(tmp_path.iterdir()) == []       # nothing opened


def run_in_threads(targets):
    testing.run_in_threads(targets, 60)


def concurrent_rounds(db, change, rounds, keys):
    """Each of two threads runs ``rounds`` requests of one client, both
    reading before either commits; returns (client id, attempts)."""
    setup = browser(db, set_items(**{key: 0 for key in keys}))
    setup.get('/')
    client_id = setup.cookies[COOKIE]
    together = threading.Barrier(2, timeout=TIMEOUT)
    attempts = []

    def handle(request):
        environ = request.environ
        attempts.append(environ[ATTEMPT_KEY])
        data = ISession(environ[REQUEST_KEY])[PKG]
        key = request.params['key']
        value = data[key]
        if environ[ATTEMPT_KEY] == 0:
            together.wait()    # both have read: their commits overlap
        data[key] = change(value)
        return 'ok'

    middleware = SessionMiddleware(view(handle), db=db)   # the defaults

    # Each round starts once both threads' requests of the round before
    # have ended, retries included: a client whose requests conflicted
    # has them take turns while any of them runs (zodbsession.contention),
    # and a request waiting in its turn would never reach ``together``.
    rounds_start = threading.Barrier(2, timeout=TIMEOUT)

    def client(key):
        app = webtest.TestApp(middleware)
        app.set_cookie(COOKIE, client_id)
        for _ in range(rounds):
            rounds_start.wait()
            app.get('/', params={'key': key})

    run_in_threads([lambda: client(keys[0]), lambda: client(keys[-1])])
    return client_id, attempts


def test_two_threads_incrementing_one_counter_lose_nothing(db):
    rounds = 20
    client_id, attempts = concurrent_rounds(
        db, lambda n: n + 1, rounds, ['counter'])
    assert stored(db, client_id) == {'counter': 2 * rounds}
    # Every round both threads read the same value: one of them retried.
    assert attempts.count(0) == 2 * rounds
    assert sum(1 for attempt in attempts if attempt > 0) >= rounds


def test_two_threads_changing_different_keys_never_retry(db):
    rounds = 20
    client_id, attempts = concurrent_rounds(
        db, lambda n: n + 1, rounds, ['a', 'b'])
    assert stored(db, client_id) == {'a': rounds, 'b': rounds}
    assert attempts == [0] * (2 * rounds)


# -- session lifecycle --------------------------------------------------------


@pytest.fixture
def cart_in_ram(db):
    ensure_site(db, secret=TEST_SECRET)
    change_site(db, lambda site: site.register_container(
        'shop.cart', RAMSessionDataContainer()))


def fill_both(request):
    session = ISession(request.environ[REQUEST_KEY])
    session[PKG]['user'] = 'alice'
    session['shop.cart']['items'] = ['book']
    return 'ok'


def read_both(request):
    session = ISession(request.environ[REQUEST_KEY])
    return [None if data is None else dict(data)
            for data in (session.get(PKG), session.get('shop.cart'))]


def call_lifecycle(name):
    def handle(request):
        getattr(request.environ[SESSION_KEY], name)()
        return read_both(request)
    return handle


def client_with_data(db):
    app = browser(db, fill_both)
    app.get('/')
    return app.cookies[COOKIE]


def request_with(db, function, client_id):
    app = browser(db, function)
    app.set_cookie(COOKIE, client_id)
    return app, app.get('/')


def test_invalidate_drops_all_data_and_issues_a_new_id(db, cart_in_ram):
    old_id = client_with_data(db)
    assert request_with(db, read_both, old_id)[1].text == (
        "[{'user': 'alice'}, {'items': ['book']}]")

    app, response = request_with(db, call_lifecycle('invalidate'), old_id)
    assert response.text == '[None, None]'
    new_id = app.cookies[COOKIE]
    assert new_id != old_id
    assert request_with(db, read_both, old_id)[1].text == '[None, None]'
    assert request_with(db, read_both, new_id)[1].text == '[None, None]'
    assert stored(db, old_id) is None


def test_regenerate_keeps_the_data_under_a_new_id(db, cart_in_ram):
    old_id = client_with_data(db)
    app, response = request_with(db, call_lifecycle('regenerate'), old_id)
    assert response.text == "[{'user': 'alice'}, {'items': ['book']}]"
    new_id = app.cookies[COOKIE]
    assert new_id != old_id
    assert request_with(db, read_both, new_id)[1].text == (
        "[{'user': 'alice'}, {'items': ['book']}]")
    assert request_with(db, read_both, old_id)[1].text == '[None, None]'
    assert stored(db, new_id) == {'user': 'alice'}
    assert stored(db, old_id) is None


def test_delete_drops_the_data_and_expires_the_cookie(db, cart_in_ram):
    client_id = client_with_data(db)
    app, response = request_with(db, call_lifecycle('delete'), client_id)
    assert response.text == '[None, None]'
    [cookie] = set_cookies(response)
    assert cookie.split(';')[0] == COOKIE + '='
    assert 'Max-Age=0' in cookie
    assert request_with(db, read_both, client_id)[1].text == '[None, None]'
    assert stored(db, client_id) is None


def test_persist_commits_even_if_the_application_then_fails(db):
    def persist_then_fail(request):
        session = request.environ[SESSION_KEY]
        session[PKG]['saved'] = True
        session.persist()
        session[PKG]['lost'] = True
        raise ValueError('after persist')

    app = webtest.TestApp(catch_errors(
        SessionMiddleware(view(persist_then_fail), db=db)))
    app.get('/', status=500)
    [(client_id, data)] = all_sessions(db)
    assert data == {'saved': True}


def all_sessions(db):
    """[(client key, package data)] of every stored session."""
    with db.transaction() as connection:
        container = site_of(connection).container
        return [(key, dict(data[PKG]))
                for tree in container._slices.values()
                for key, data in tree.items()]


def test_get_session_without_create_makes_nothing(db):
    seen = []

    def handle(request):
        seen.append(get_session(request.environ[REQUEST_KEY]))
        return 'ok'

    app = browser(db, handle)
    before = db.storage.lastTransaction()
    response = app.get('/')
    assert seen == [None]
    assert set_cookies(response) == []
    assert db.storage.lastTransaction() == before

    client_id = client_with_data(db)
    seen.clear()
    request_with(db, handle, client_id)
    assert seen[0] is not None and seen[0][PKG]['user'] == 'alice'


def test_get_session_with_create_issues_an_id(db):
    def handle(request):
        session = get_session(webob.Request(request.environ), create=True)
        return session.client_id

    app = browser(db, handle)
    response = app.get('/')
    assert response.text == app.cookies[COOKIE]


def test_expire_session(db):
    client_id = client_with_data(db)

    def expire(request):
        expire_session(request.environ[REQUEST_KEY])
        return read_items(request)

    app, response = request_with(db, expire, client_id)
    assert response.text == 'None'
    assert 'Max-Age=0' in set_cookies(response)[0]
    assert stored(db, client_id) is None


# -- settings -----------------------------------------------------------------


def test_settings_are_stored_and_shared_by_other_middlewares(db):
    SessionMiddleware(view(read_items), db=db, namespace='shop',
                      timeout=120, resolution=10, secure=True,
                      sameSite='Strict', secret=TEST_SECRET)
    with db.transaction() as connection:
        site = site_of(connection)
        manager = site.client_id_manager
        assert (manager.namespace, manager.secure, manager.sameSite) == (
            'shop', True, 'Strict')
        assert manager.secret == (TEST_SECRET,)
        assert (site.container.timeout, site.container.resolution) == (
            120, 10)

    # A second middleware, configured with nothing, uses them.
    app = webtest.TestApp(SessionMiddleware(view(set_items(k=1)), db=db))
    response = app.get('/')
    [cookie] = set_cookies(response)
    assert cookie.startswith('shop=')
    assert '; secure' in cookie.lower()
    assert 'samesite=strict' in cookie.lower()


def test_an_unknown_setting_is_an_error(db):
    with pytest.raises(TypeError, match="'colour'"):
        SessionMiddleware(view(read_items), db=db, colour='blue')


def test_the_write_callable_is_refused(db):
    def old_style(environ, start_response):
        write = start_response('200 OK', [])
        write(b'x')
        return []

    with pytest.raises(NotImplementedError, match='write'):
        webtest.TestApp(SessionMiddleware(old_style, db=db)).get('/')


def test_an_application_that_never_starts_a_response(db):
    with pytest.raises(RuntimeError, match='start_response'):
        SessionMiddleware(lambda environ, start: [], db=db)(
            {'REQUEST_METHOD': 'GET', 'wsgi.input': io.BytesIO()},
            lambda *args: None)
    transaction.abort()


# -- PasteDeploy --------------------------------------------------------------


PIPELINE = """\
[pipeline:main]
pipeline = session app

[filter:session]
use = egg:zodbsession
db_uri = file://%(here)s/var/sessions.fs
timeout = 120
namespace = pasted
secure = false
retries = 1

[app:app]
use = call:zodbsession.testing.workers:counter_app_factory
"""


def test_paste_deploy_pipeline(registry, tmp_path):
    paste_deploy = pytest.importorskip('paste.deploy')
    config = tmp_path / 'site.ini'
    config.write_text(PIPELINE)
    app = paste_deploy.loadapp(f'config:{config}')
    try:
        assert isinstance(app, SessionMiddleware)
        assert app.retries == 1
        assert (tmp_path / 'var' / 'sessions.fs').exists()
        with app.db.transaction() as connection:
            assert site_of(connection).container.timeout == 120
        browser_ = webtest.TestApp(app)
        assert browser_.post('/set', {'name': 'bob'}).json['data'] == {
            'name': 'bob'}
        assert 'pasted' in browser_.cookies
        assert browser_.get('/read').json['data'] == {'name': 'bob'}
    finally:
        app.db.close()


def test_a_thread_s_kept_connection_sees_what_others_commit(db, tmp_path):
    """The thread keeps its connection between requests; each request
    still sees what another connection committed before it began, and a
    thread that serves two databases in turn gets both right."""
    app = browser(db, set_items(n=1))
    app.get('/')
    client_id = app.cookies[COOKIE]
    reader = webtest.TestApp(SessionMiddleware(
        view(read_items), db=db, secret=TEST_SECRET))
    reader.set_cookie(COOKIE, client_id)
    assert 'n' in reader.get('/').text
    with db.transaction() as connection:       # another connection
        data = site_of(connection).container.get(client_id)
        data[PKG]['n'] = 42
    assert stored(db, client_id) == {'n': 42}
    assert reader.get('/').text == "[('n', 42)]"
    (tmp_path / 'other').mkdir()
    with testing.filestorage_db(str(tmp_path / 'other')) as other:
        elsewhere = browser(other, set_items(n=7))
        elsewhere.get('/')
        assert stored(other, elsewhere.cookies[COOKIE]) == {'n': 7}
        assert reader.get('/').text == "[('n', 42)]"


def test_a_storage_that_takes_no_writes_answers_503_and_keeps_the_data(
        registry, tmp_path):
    # A used-up quota (so a full disk, a read-only one): the client can
    # only wait for the operator, as for a server that went away. It got a
    # raw 500.
    from zodbsession.db import open_database
    uri = f'file://{tmp_path}/sessions.fs'
    db = open_database(uri)
    setup = browser(db, set_items(n=1), pack_interval=0)
    setup.get('/')
    client_id = setup.cookies[COOKIE]
    db.close()
    size = (tmp_path / 'sessions.fs').stat().st_size
    db = open_database(f'{uri}?quota={size}')
    try:
        full = browser(db, set_items(n=2, big='x' * 1000), pack_interval=0)
        full.set_cookie(COOKIE, client_id)
        response = full.get('/', status=503)
        assert response.headers['Retry-After'] == '5'
        assert not set_cookies(response)
        reader = browser(db, read_items, pack_interval=0)
        reader.set_cookie(COOKIE, client_id)
        assert reader.get('/').text == "[('n', 1)]"      # reads still work
        assert stored(db, client_id) == {'n': 1}
    finally:
        db.close()


# -- a threaded server, at the defaults ---------------------------------------


def test_eight_server_threads_keep_their_connections_without_pool_warnings(
        registry, tmp_path, caplog):
    # waitress with 8 threads, as the documentation serves it, and a
    # database opened from a URI with ZODB's default pool of 7: each
    # thread keeps a connection, and none of them is a warning.
    import urllib.request
    from zodbsession.testing.servers import waitress_serving
    threads = 8
    all_in = threading.Barrier(threads, timeout=TIMEOUT)

    def app(environ, start_response):
        ISession(environ[REQUEST_KEY])[PKG]['n'] = 1
        if environ[ATTEMPT_KEY] == 0:
            # Every thread holds its connection at once (a conflict's
            # retry, one thread alone, does not wait for the others).
            all_in.wait()
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'ok']

    wrapped = SessionMiddleware(app, db_uri=f'file://{tmp_path}/s.fs')
    try:
        with caplog.at_level('WARNING', logger='ZODB.DB'):
            with waitress_serving(wrapped, threads=threads) as url:
                def visit():
                    with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
                        assert r.read() == b'ok'
                testing.run_in_threads([visit] * threads, 4 * TIMEOUT)
                all_in = threading.Barrier(1)     # no more waiting
                testing.run_in_threads([visit] * threads, 4 * TIMEOUT)
        assert [record.getMessage() for record in caplog.records
                if record.name == 'ZODB.DB'] == []
    finally:
        wrapped.db.close()


def test_the_no_cache_headers_replace_the_applications_and_its_cookies_stay(
        db):
    # A response that sets a session cookie must not be cached: our
    # Cache-Control replaces the application's, whatever its case; the
    # application's own cookies go out beside ours.
    def app(environ, start_response):
        ISession(environ[REQUEST_KEY])[PKG]['n'] = 1
        start_response('200 OK', [('Content-Type', 'text/plain'),
                                  ('cache-control', 'public, max-age=600'),
                                  ('Set-Cookie', 'theme=dark; Path=/')])
        return [b'ok']

    for _ in range(2):      # the second: from what was remembered
        response = webtest.TestApp(SessionMiddleware(app, db=db)).get('/')
        assert response.headers.getall('Cache-Control') == [
            'no-cache="Set-Cookie,Set-Cookie2"']
        cookies = response.headers.getall('Set-Cookie')
        assert 'theme=dark; Path=/' in cookies
        assert any(cookie.startswith('zodbsession=') for cookie in cookies)
        assert response.headers['Content-Type'] == 'text/plain'
