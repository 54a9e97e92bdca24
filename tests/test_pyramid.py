"""The Pyramid integration, through a small real Pyramid application.

The application (``make_app``) signs users in and out, shows flash
messages after redirects, checks CSRF tokens, keeps a cart, fails on
purpose, and counts. Each behaviour is checked in every way of running
transactions: zodbsession's own tween and retry policy, pyramid_tm with
pyramid_retry (thread-local and explicit transaction managers), and
pyramid_tm alone.
"""
import os

import pyramid_tm
import pytest
import transaction
import webtest
import zope.component
from pyramid.config import Configurator
from pyramid.csrf import SessionCSRFStoragePolicy
from pyramid.csrf import check_csrf_token
from pyramid.csrf import get_csrf_token
from pyramid.csrf import new_csrf_token
from pyramid.httpexceptions import HTTPForbidden
from pyramid.httpexceptions import HTTPFound
from pyramid.httpexceptions import exception_response
from pyramid.interfaces import IExecutionPolicy
from pyramid.interfaces import ISession as IPyramidSession
from pyramid.interfaces import ISessionFactory
from ZODB.POSException import ConflictError
from zope.interface.verify import verifyObject

import zodbsession
from zodbsession import testing
from zodbsession.clock import ManualClock
from zodbsession.clock import use_clock
from zodbsession.pyramid import PyramidSession
from zodbsession.pyramid import SessionFactory
from zodbsession.pyramid import session_factory
from zodbsession.site import change_site
from zodbsession.site import site_of

MODES = {
    'own': [],                                   # zodbsession's tween
    'tm': ['pyramid_tm', 'pyramid_retry'],
    'tm_explicit': ['pyramid_tm', 'pyramid_retry'],
    'tm_only': ['pyramid_tm'],                   # zodbsession retries
    'tm_veto': ['pyramid_tm', 'pyramid_retry'],
}
MODE_SETTINGS = {
    'tm_explicit': {'tm.manager_hook': 'pyramid_tm.explicit_manager'},
    'tm_veto': {'tm.commit_veto': 'pyramid_tm.default_commit_veto'},
}
# The set-ups that decide by the response, as pyramid_tm's
# default_commit_veto does, also when an exception view rendered it;
# pyramid_tm without a veto aborts whenever the view raised.
DECIDE_BY_RESPONSE = {'own', 'tm_veto'}


class AppState:
    """What the test application tells its tests."""

    def __init__(self, db):
        self.db = db
        self.runs = {}
        self.interfere = 0      # concurrent commits still to make


# -- the application ------------------------------------------------------

def home(request):
    session = request.session
    return {'user': session.get('user'), 'new': session.new,
            'flash': session.pop_flash(),
            'errors': session.pop_flash('error')}


def form(request):
    return {'csrf': get_csrf_token(request)}


def login(request):
    check_csrf_token(request)
    session = request.session
    session.regenerate()
    session['user'] = request.POST['user']
    new_csrf_token(request)
    session.flash(f"Welcome, {request.POST['user']}")
    return HTTPFound('/')


def logout(request):
    check_csrf_token(request)
    session = request.session
    session.invalidate()
    emptied = (len(session), session.new, session.get('user'))
    session.flash('Signed out')
    return HTTPFound('/', headers={'X-Emptied': repr(emptied)})


def add_to_cart(request):
    session = request.session
    session.setdefault('cart', []).append(request.POST['item'])
    session.changed()
    return {'cart': session['cart']}


def show_cart(request):
    return {'cart': request.session.get('cart', [])}


def flash_many(request):
    session = request.session
    session.flash('saved')
    session.flash('saved', allow_duplicate=False)
    session.flash('saved')
    session.flash('bad', 'error')
    session.flash('bad', 'error', allow_duplicate=False)
    return {'default': session.peek_flash(),
            'error': session.peek_flash('error'),
            'verified': verifyObject(IPyramidSession, session)}


def boom(request):
    request.session['user'] = 'mallory'
    request.session.flash('never shown')
    zodbsession.ISession(request)['shop.cart']['items'] = ['stolen']
    raise ValueError('boom')


def failed(exc, request):
    request.response.status = 500
    return {'error': str(exc)}


def count(request):
    state = request.registry.state
    state.runs['count'] = state.runs.get('count', 0) + 1
    session = request.session
    session['count'] = session.get('count', 0) + 1
    if state.interfere:
        state.interfere -= 1
        # A value no attempt writes, so the merge cannot accept both.
        store_elsewhere(state.db, session.client_id, 'pyramid.session',
                        count=100 * state.runs['count'])
    return {'count': session['count']}


def shop(request):
    sessions = zodbsession.ISession(request)
    if request.method == 'POST':
        cart = sessions['shop.cart']
        cart['items'] = cart.get('items', []) + [request.POST['item']]
    data = sessions.get('shop.cart')
    return {'items': [] if data is None else data.get('items', [])}


def tamper(request):
    with pytest.raises(KeyError, match='reserved'):
        request.session['_created'] = 0
    return {'hidden': '_created' not in request.session}


def info(request):
    session = request.session
    return {'created': session.created, 'new': session.new,
            'keys': sorted(session)}


def flash_and_redirect(request):
    request.session.flash('saved')
    raise HTTPFound('/')


def flash_and_forbid(request):
    request.session.flash('denied')
    raise HTTPForbidden()


def flash_and_fail(request):
    request.session.flash('failed')
    raise RuntimeError('no exception view answers this')


def flash_and_answer(request):
    """Answers with the status and X-Tm header asked for, returned or
    raised."""
    request.session.flash('answered')
    params = request.params
    headers = {'X-Tm': params['x_tm']} if 'x_tm' in params else {}
    response = exception_response(int(params['status']), headers=headers)
    if params.get('raise'):
        raise response
    return response


def request_transaction_manager(request):
    """The request's transaction manager, as a view finds it: pyramid_tm's
    ``request.tm``, else the thread's (zodbsession's own tween)."""
    return getattr(request, 'tm', transaction.manager)


def persist_then(request):
    """Stores 'saved', persists, stores 'later', then ends as asked."""
    session = request.session
    session['saved'] = request.params.get('value', 'yes')
    zodbsession.ISession(request).persist()
    session['later'] = 'yes'
    then = request.params['then']
    if then == 'regenerate and doom':
        session.regenerate()
        request_transaction_manager(request).doom()
    elif then == 'doom':
        request_transaction_manager(request).doom()
    elif then == 'fail':
        raise ValueError('after persist')
    elif then == 'raise':
        raise RuntimeError('after persist, unhandled')
    return {'saved': session['saved'], 'later': session['later']}


ROUTES = [
    ('/', home, {}), ('/form', form, {}),
    ('/login', login, {'request_method': 'POST'}),
    ('/logout', logout, {'request_method': 'POST'}),
    ('/cart', add_to_cart, {'request_method': 'POST'}),
    ('/cart', show_cart, {'request_method': 'GET'}),
    ('/flash', flash_many, {}), ('/boom', boom, {}), ('/count', count, {}),
    ('/shop', shop, {}), ('/info', info, {}), ('/tamper', tamper, {}),
    ('/flash-redirect', flash_and_redirect, {}),
    ('/flash-forbid', flash_and_forbid, {}),
    ('/flash-fail', flash_and_fail, {}),
    ('/flash-answer', flash_and_answer, {}),
    ('/persist', persist_then, {}),
]


def make_config(db=None, mode='own', settings=None, factory=True, **options):
    settings = dict(settings or {})
    settings.update(MODE_SETTINGS.get(mode, {}))
    config = Configurator(settings=settings)
    for name in MODES[mode]:
        config.include(name)
    config.include('zodbsession.pyramid')
    if factory:
        options.setdefault('secret', testing.TEST_SECRET)
        config.set_session_factory(session_factory(db=db, **options))
    seen = set()
    for path, view, predicates in ROUTES:
        if path not in seen:
            config.add_route(path, path)
            seen.add(path)
        renderer = None if view in (login, logout) else 'json'
        config.add_view(view, route_name=path, renderer=renderer,
                        **predicates)
    config.add_exception_view(failed, context=ValueError, renderer='json')
    config.registry.state = AppState(db)
    return config


def make_app(db, mode='own', **options):
    config = make_config(db, mode, **options)
    return webtest.TestApp(config.make_wsgi_app())


# -- helpers ---------------------------------------------------------------

def store_elsewhere(db, client_id, pkg_id, **values):
    """Commit a change to a client's session from another connection."""
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        data = site_of(connection).container.get(client_id)
        data[pkg_id].update(values)
        manager.commit()
    finally:
        manager.abort()
        connection.close()


def stored(db, client_id, pkg_id='pyramid.session'):
    """The package's data as the database has it, or None."""
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        data = site_of(connection).container.get(client_id)
        if data is None or pkg_id not in data:
            return None
        return dict(data[pkg_id])
    finally:
        manager.abort()
        connection.close()


def open_connections(db):
    return [info for info in db.connectionDebugInfo() if info['opened']]


def sign_in(app, user='alice'):
    token = app.get('/form').json['csrf']
    return app.post('/login', {'user': user, 'csrf_token': token})


@pytest.fixture
def db(tmp_path):
    testing.setUp()
    with testing.filestorage_db(str(tmp_path)) as database:
        yield database
    testing.tearDown()


@pytest.fixture(params=sorted(MODES))
def mode(request):
    return request.param


# -- ISession -------------------------------------------------------------

def test_request_session_is_a_pyramid_isession(db, mode):
    app = make_app(db, mode)
    response = app.get('/flash')
    assert response.json['verified'] is True
    # The queues, with allow_duplicate honoured per queue.
    assert response.json['default'] == ['saved', 'saved']
    assert response.json['error'] == ['bad']
    assert app.get('/').json['errors'] == ['bad']
    assert app.get('/').json['flash'] == []
    assert open_connections(db) == []


def test_reading_creates_nothing(db):
    app = make_app(db)
    before = db.lastTransaction()
    page = app.get('/')
    assert page.json == {'user': None, 'new': True, 'flash': [],
                         'errors': []}
    assert 'Set-Cookie' not in page.headers
    assert db.lastTransaction() == before


def test_read_only_request_writes_nothing(db):
    app = make_app(db)
    sign_in(app)
    app.get('/')
    before = db.lastTransaction()
    assert app.get('/').json['user'] == 'alice'
    assert db.lastTransaction() == before


def test_created_and_new(db):
    with use_clock(ManualClock(1_700_000_000)) as clock:
        app = make_app(db)
        assert app.get('/info').json == {
            'created': 1_700_000_000.0, 'new': True, 'keys': []}
        app.post('/cart', {'item': 'tea'})
        clock.advance(300)
        assert app.get('/info').json == {
            'created': 1_700_000_000.0, 'new': False, 'keys': ['cart']}


def test_created_key_is_reserved(db):
    app = make_app(db)
    sign_in(app)
    assert app.get('/tamper').json == {'hidden': True}


# -- sign in, flash, CSRF -------------------------------------------------

def test_login_regenerates_and_flashes_across_redirect(db, mode):
    app = make_app(db, mode)
    app.post('/cart', {'item': 'tea'})          # a session before login
    old_id = app.cookies['zodbsession']
    response = sign_in(app)
    assert response.status_int == 302
    new_id = app.cookies['zodbsession']
    assert new_id != old_id
    page = response.follow()
    assert page.json['user'] == 'alice'
    assert page.json['flash'] == ['Welcome, alice']
    assert app.get('/').json['flash'] == []      # shown once
    # The data moved: nothing is left under the old id.
    assert stored(db, old_id) is None
    assert stored(db, new_id)['cart'] == ['tea']
    thief = webtest.TestApp(app.app)
    thief.set_cookie('zodbsession', old_id)
    assert thief.get('/').json['user'] is None
    assert open_connections(db) == []


def test_csrf_token_is_required_and_checked(db, mode):
    app = make_app(db, mode)
    app.post('/login', {'user': 'eve'}, status=400)
    token = app.get('/form').json['csrf']
    app.post('/login', {'user': 'eve', 'csrf_token': 'x' + token},
             status=400)
    assert app.get('/').json['user'] is None
    app.post('/login', {'user': 'bob'}, headers={'X-CSRF-Token': token},
             status=302)
    assert app.get('/').json['user'] == 'bob'
    # The login issued a fresh token; the old one no longer works.
    assert app.get('/form').json['csrf'] != token
    app.post('/logout', {'csrf_token': token}, status=400)


def test_session_csrf_storage_policy_and_require_csrf(db):
    config = make_config(db)
    config.set_csrf_storage_policy(SessionCSRFStoragePolicy())
    config.set_default_csrf_options(require_csrf=True)

    def both(request):
        return {'policy': get_csrf_token(request),
                'session': request.session.get_csrf_token()}

    config.add_route('both', '/both')
    config.add_view(both, route_name='both', renderer='json')
    app = webtest.TestApp(config.make_wsgi_app())
    tokens = app.get('/both').json
    assert tokens['policy'] == tokens['session']
    app.post('/cart', {'item': 'tea'}, status=400)
    app.post('/cart', {'item': 'tea', 'csrf_token': 'nope'}, status=400)
    assert app.get('/cart').json['cart'] == []
    app.post('/cart', {'item': 'tea', 'csrf_token': tokens['policy']})
    assert app.get('/cart').json['cart'] == ['tea']


# -- transactions ---------------------------------------------------------

def test_exception_view_aborts_and_session_is_unchanged(db, mode):
    app = make_app(db, mode)
    sign_in(app)
    app.get('/')
    client_id = app.cookies['zodbsession']
    before = stored(db, client_id)
    failed_page = app.post('/boom', status=500)
    assert failed_page.json == {'error': 'boom'}
    assert 'Set-Cookie' not in failed_page.headers
    assert stored(db, client_id) == before
    assert stored(db, client_id, 'shop.cart') is None
    assert app.get('/').json == {'user': 'alice', 'new': False,
                                 'flash': [], 'errors': []}
    assert open_connections(db) == []


def test_exception_view_for_new_client_issues_nothing(db, mode):
    app = make_app(db, mode)
    before = db.lastTransaction()
    failed_page = app.post('/boom', status=500)
    assert 'Set-Cookie' not in failed_page.headers
    assert app.cookies == {}
    assert db.lastTransaction() == before


def test_conflict_is_retried(db, mode):
    app = make_app(db, mode)
    state = app.app.registry.state
    assert app.post('/count').json == {'count': 1}
    state.interfere = 1
    # The first attempt reads 1 and writes 2, but another connection
    # commits 200 first: ConflictError, and the retry counts from 200.
    assert app.post('/count').json == {'count': 201}
    assert state.runs['count'] == 3
    assert stored(db, app.cookies['zodbsession'])['count'] == 201
    assert open_connections(db) == []


def test_retries_are_bounded(db):
    app = make_app(db, retries=1)
    state = app.app.registry.state
    app.post('/count')
    state.interfere = 5
    response = app.post('/count', status=503)
    assert response.headers['Retry-After'] == '5'
    assert state.runs['count'] == 3         # 1 + one attempt + one retry
    assert state.interfere == 3
    assert stored(db, app.cookies['zodbsession'])['count'] == 300
    assert open_connections(db) == []


def test_pyramid_retry_running_out_answers_503(db):
    """pyramid_retry's attempts (3 by default) run out on a conflict
    that persists: a 503, never a traceback, and nothing kept."""
    app = make_app(db, 'tm')
    state = app.app.registry.state
    app.post('/count')
    state.interfere = 5
    response = app.post('/count', status=503)
    assert response.headers['Retry-After'] == '5'
    assert state.runs['count'] == 4         # 1 + pyramid_retry's three
    assert state.interfere == 2
    # What the last interfering commit stored; none of the attempts.
    assert stored(db, app.cookies['zodbsession'])['count'] == 400
    assert open_connections(db) == []


def test_conflict_an_exception_view_answers_is_aborted_and_retried(db):
    # Even with a 2xx answer: committing the failed attempt's changes and
    # then running the request again would apply them twice.
    config = make_config(db)
    state = config.registry.state

    def conflicting(request):
        state.runs['conflicting'] = state.runs.get('conflicting', 0) + 1
        session = request.session
        session['runs'] = session.get('runs', 0) + 1
        if state.runs['conflicting'] == 1:
            raise ConflictError('in the view')
        return {'runs': session['runs']}

    def answer_conflict(exc, request):
        return {'error': 'conflict'}

    config.add_route('conflicting', '/conflicting')
    config.add_view(conflicting, route_name='conflicting', renderer='json')
    config.add_exception_view(answer_conflict, context=ConflictError,
                              renderer='json')
    app = webtest.TestApp(config.make_wsgi_app())
    app.post('/cart', {'item': 'tea'})
    assert app.get('/conflicting').json == {'runs': 1}
    assert state.runs['conflicting'] == 2
    assert stored(db, app.cookies['zodbsession'])['runs'] == 1


def test_retry_replays_the_request_body(db):
    app = make_app(db)
    state = app.app.registry.state
    app.post('/cart', {'item': 'tea'})

    def interfering_add(request):
        state.runs['cart'] = state.runs.get('cart', 0) + 1
        result = add_to_cart(request)
        if state.interfere:
            state.interfere -= 1
            store_elsewhere(db, request.session.client_id,
                            'pyramid.session', cart=['coffee'])
        return result

    config = make_config(db)
    config.add_route('racing', '/racing')
    config.add_view(interfering_add, route_name='racing', renderer='json')
    racing = webtest.TestApp(config.make_wsgi_app())
    racing.set_cookie('zodbsession', app.cookies['zodbsession'])
    state.interfere = 1
    assert racing.post('/racing', {'item': 'milk'}).json == {
        'cart': ['coffee', 'milk']}
    assert state.runs['cart'] == 2


def test_changed_persists_nested_mutation(db, mode):
    app = make_app(db, mode)
    app.post('/cart', {'item': 'tea'})
    app.post('/cart', {'item': 'milk'})
    assert app.get('/cart').json == {'cart': ['tea', 'milk']}


def test_connections_are_per_request_and_closed(db, mode):
    app = make_app(db, mode)
    sign_in(app)
    app.get('/')
    app.post('/boom', status=500)
    assert open_connections(db) == []
    # After the request, its registry is gone from the environ: nothing
    # can open a connection that nobody closes.
    request = app.get('/info').request
    assert 'zodbsession.registry' not in request.environ


# -- raised redirects and the commit rule --------------------------------

@pytest.mark.parametrize('existing', [False, True], ids=['new', 'existing'])
def test_flash_then_raised_redirect(db, mode, existing):
    # The idiom: request.session.flash('saved'); raise HTTPFound(location).
    # Kept where the response decides (zodbsession's own tween, pyramid_tm
    # with its default_commit_veto); pyramid_tm without a veto aborts
    # whenever the view raised, and the docs say to set the veto.
    app = make_app(db, mode)
    if existing:
        app.post('/cart', {'item': 'tea'})
    response = app.get('/flash-redirect', status=302)
    kept = mode in DECIDE_BY_RESPONSE
    if not existing:
        # A new client's session exists only if its cookie came along.
        assert ('Set-Cookie' in response.headers) == kept
    page = response.follow()
    assert page.json['flash'] == (['saved'] if kept else [])
    assert app.get('/').json['flash'] == []          # shown once
    if existing:
        assert app.get('/cart').json == {'cart': ['tea']}
    assert open_connections(db) == []


def _raised_forbidden(app):
    response = app.get('/flash-forbid', status=403)
    assert 'Set-Cookie' not in response.headers


def _unhandled_error(app):
    with pytest.raises(RuntimeError, match='no exception view'):
        app.get('/flash-fail')


@pytest.mark.parametrize('fail', [_raised_forbidden, _unhandled_error],
                         ids=['raised-forbidden', 'unhandled-error'])
@pytest.mark.parametrize('existing', [False, True], ids=['new', 'existing'])
def test_flash_then_a_failure_is_not_kept(db, mode, existing, fail):
    app = make_app(db, mode)
    if existing:
        app.post('/cart', {'item': 'tea'})
    before = db.lastTransaction()
    fail(app)
    assert db.lastTransaction() == before
    assert app.get('/').json['flash'] == []
    if existing:
        assert app.get('/cart').json == {'cart': ['tea']}
    else:
        assert app.cookies == {}
    assert open_connections(db) == []


ANSWERS = [(status, x_tm) for status in (200, 201, 204, 302, 304, 400,
                                         403, 404, 500, 503)
           for x_tm in (None, 'commit', 'abort', 'other')]


@pytest.mark.parametrize('raised', [False, True], ids=['returned', 'raised'])
@pytest.mark.parametrize('mode', sorted(DECIDE_BY_RESPONSE))
def test_commit_rule_is_pyramid_tms_default_commit_veto(db, mode, raised):
    # For every status class and X-Tm header, the session is kept exactly
    # when pyramid_tm.default_commit_veto lets the transaction commit.
    app = make_app(db, mode)
    outcomes = []
    for status, x_tm in ANSWERS:
        browser = webtest.TestApp(app.app)
        params = {'status': status, 'raise': '1' if raised else ''}
        if x_tm is not None:
            params['x_tm'] = x_tm
        response = browser.get('/flash-answer', params, status=status)
        kept = browser.get('/').json['flash'] == ['answered']
        vetoed = pyramid_tm.default_commit_veto(None, response)
        outcomes.append((status, x_tm, kept, not vetoed))
    assert [outcome for outcome in outcomes
            if outcome[2] != outcome[3]] == []
    # The table covers both outcomes.
    assert {kept for _, _, kept, _ in outcomes} == {True, False}
    assert open_connections(db) == []


# -- persist() ------------------------------------------------------------

@pytest.mark.parametrize('existing', [False, True], ids=['new', 'existing'])
@pytest.mark.parametrize('then', ['doom', 'fail'])
def test_persist_survives_a_later_abort(db, mode, existing, then):
    # persist() commits the request's own transaction (pyramid_tm's
    # explicit manager included): what it committed stays when the rest
    # of the request is doomed or fails; the cookie of a new client goes
    # out with it.
    app = make_app(db, mode)
    if existing:
        app.post('/cart', {'item': 'tea'})
    response = app.get('/persist', {'then': then},
                       status=200 if then == 'doom' else 500)
    if not existing:
        assert 'zodbsession=' in response.headers['Set-Cookie']
    client_id = app.cookies['zodbsession']
    kept = stored(db, client_id)
    assert kept['saved'] == 'yes'
    assert 'later' not in kept
    page = app.get('/info').json
    assert page['new'] is False
    assert page['keys'] == (['cart', 'saved'] if existing else ['saved'])
    assert open_connections(db) == []


CONTAINERS = {
    'ram': zodbsession.RAMSessionDataContainer,
    'cookie': lambda: zodbsession.CookieSessionDataContainer(
        secret='another-cookie-secret-for-tests-0000'),
}


@pytest.mark.parametrize('kind', sorted(CONTAINERS))
def test_persist_in_other_containers_survives_a_later_abort(db, mode, kind):
    # The containers outside ZODB join the request's own transaction too;
    # the cookie container's data cookie belongs to the persisted
    # transaction and goes out with the client id's.
    app = make_app(db, mode)
    change_site(db, lambda site: site.register_container(
        'pyramid.session', CONTAINERS[kind]()))
    app.get('/persist', {'then': 'doom'})
    expected = {'zodbsession'} | ({'zodbsession_data'} if kind == 'cookie'
                                  else set())
    assert set(app.cookies) == expected
    assert app.get('/info').json['keys'] == ['saved']
    assert stored(db, app.cookies['zodbsession']) is None
    assert open_connections(db) == []


def test_cookie_set_after_persist_goes_only_with_its_transaction(db, mode):
    # The client id persisted goes out; the one regenerate() issued in the
    # doomed transaction that followed does not, and the data stays under
    # the first.
    app = make_app(db, mode)
    response = app.get('/persist', {'then': 'regenerate and doom'})
    assert len(response.headers.getall('Set-Cookie')) == 1
    client_id = app.cookies['zodbsession']
    assert stored(db, client_id) is not None
    assert stored(db, client_id)['saved'] == 'yes'
    assert app.get('/info').json['keys'] == ['saved']
    assert open_connections(db) == []


def test_persist_survives_a_later_unhandled_error(db, mode):
    app = make_app(db, mode)
    app.post('/cart', {'item': 'tea'})
    with pytest.raises(RuntimeError, match='unhandled'):
        app.get('/persist', {'then': 'raise'})
    assert app.get('/info').json['keys'] == ['cart', 'saved']
    assert 'later' not in stored(db, app.cookies['zodbsession'])
    assert open_connections(db) == []


def test_persist_then_more_changes_commit_too(db, mode):
    # After persist() the request goes on in a new transaction of the
    # same manager, which the request's end commits.
    app = make_app(db, mode)
    response = app.get('/persist', {'then': 'return'})
    assert response.json == {'saved': 'yes', 'later': 'yes'}
    assert app.get('/info').json['keys'] == ['later', 'saved']
    assert open_connections(db) == []


# -- invalidate and containers -------------------------------------------

def test_invalidate_removes_data_everywhere(db, mode):
    app = make_app(db, mode)
    secret = 'cookie-secret-for-tests-only-000000'
    change_site(db, lambda site: site.register_container(
        'shop.cart', zodbsession.CookieSessionDataContainer(secret=secret)))
    sign_in(app)
    app.post('/shop', {'item': 'book'})
    assert app.get('/shop').json == {'items': ['book']}
    assert 'zodbsession_data' in app.cookies
    old_id = app.cookies['zodbsession']
    token = app.get('/form').json['csrf']
    response = app.post('/logout', {'csrf_token': token})
    # Inside the request the session was empty and new at once.
    assert response.headers['X-Emptied'] == "(0, True, None)"
    assert app.cookies['zodbsession'] != old_id
    assert 'zodbsession_data' not in app.cookies
    assert stored(db, old_id) is None
    assert app.get('/shop').json == {'items': []}
    page = app.get('/')
    assert page.json['user'] is None
    assert page.json['flash'] == ['Signed out']


def test_pyramid_session_can_live_in_a_cookie_container(db):
    app = make_app(db)
    change_site(db, lambda site: site.register_container(
        'pyramid.session', zodbsession.CookieSessionDataContainer(
            secret='another-cookie-secret-for-tests-0000')))
    sign_in(app)
    page = app.get('/')
    assert page.json['user'] == 'alice'
    assert page.json['flash'] == ['Welcome, alice']
    assert 'zodbsession_data' in app.cookies
    assert stored(db, app.cookies['zodbsession']) is None


def test_pyramid_session_can_live_in_a_ram_container(db, mode):
    # The RAM container joins the request's own transaction, whichever
    # manager runs it (pyramid_tm's explicit one included): the session
    # is kept when that transaction commits, and only then.
    app = make_app(db, mode)
    change_site(db, lambda site: site.register_container(
        'pyramid.session', zodbsession.RAMSessionDataContainer()))
    sign_in(app)
    page = app.get('/')
    assert page.json['user'] == 'alice'
    assert page.json['flash'] == ['Welcome, alice']
    assert stored(db, app.cookies['zodbsession']) is None
    # An exception view aborts: what the failing view stored is not
    # kept.
    app.get('/boom', expect_errors=True)
    page = app.get('/')
    assert page.json['user'] == 'alice'
    assert page.json['flash'] == []


def test_own_package_id(db):
    app = make_app(db, pkg_id='app.session')
    sign_in(app)
    client_id = app.cookies['zodbsession']
    assert stored(db, client_id, 'app.session')['user'] == 'alice'
    assert stored(db, client_id, 'pyramid.session') is None


def test_isession_of_the_request_in_views(db, mode):
    app = make_app(db, mode)
    app.post('/shop', {'item': 'pen'})
    app.post('/shop', {'item': 'ink'})
    assert app.get('/shop').json == {'items': ['pen', 'ink']}
    assert stored(db, app.cookies['zodbsession'], 'shop.cart') == {
        'items': ['pen', 'ink']}


@pytest.mark.parametrize('mode', ['own', 'tm'])
def test_with_hook_zca(db, mode):
    config = make_config(db, mode)
    config.hook_zca()
    try:
        app = webtest.TestApp(config.make_wsgi_app())
        sign_in(app)
        assert app.get('/').json['user'] == 'alice'
        app.post('/shop', {'item': 'pen'})
        assert app.get('/shop').json == {'items': ['pen']}
    finally:
        config.unhook_zca()
    assert zope.component.getSiteManager() is (
        zope.component.getGlobalSiteManager())


# -- configuration --------------------------------------------------------

def test_settings_from_the_ini_file(tmp_path, monkeypatch):
    testing.setUp()
    monkeypatch.chdir(tmp_path)
    settings = {
        'zodbsession.db_uri': 'file://data/sessions.fs',
        'zodbsession.namespace': 'sid',
        'zodbsession.timeout': '120',
        'zodbsession.resolution': '30',
        'zodbsession.secure': 'false',
        'zodbsession.secret': 'first-secret-0123456789 old-secret-0123456789',
        'zodbsession.pkg_id': 'app.session',
        'zodbsession.retries': '1',
        'unrelated.setting': 'ignored',
    }
    config = make_config(settings=settings, factory=False)
    app = webtest.TestApp(config.make_wsgi_app())
    factory = app.app.registry.queryUtility(ISessionFactory)
    try:
        assert isinstance(factory, SessionFactory)
        assert (factory.pkg_id, factory.retries) == ('app.session', 1)
        assert os.path.exists(tmp_path / 'data' / 'sessions.fs')
        sign_in(app)
        assert app.get('/').json['user'] == 'alice'
        assert set(app.cookies) == {'sid'}
        with factory.db.transaction() as connection:
            site = site_of(connection)
            assert (site.container.timeout, site.container.resolution) == (
                120, 30)
            assert site.client_id_manager.secret == (
                'first-secret-0123456789', 'old-secret-0123456789')
    finally:
        factory.close()
        testing.tearDown()


def test_unknown_setting_is_named(tmp_path, monkeypatch):
    testing.setUp()
    monkeypatch.chdir(tmp_path)
    try:
        config = make_config(settings={'zodbsession.colour': 'blue'},
                             factory=False)
        with pytest.raises(Exception, match='colour'):
            config.make_wsgi_app()
    finally:
        testing.tearDown()


def test_factory_in_code_wins_over_settings(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = make_config(db, settings={
        'zodbsession.db_uri': 'file://unused/sessions.fs'})
    app = webtest.TestApp(config.make_wsgi_app())
    sign_in(app)
    assert app.get('/').json['user'] == 'alice'
    assert not os.path.exists(tmp_path / 'unused')
    assert stored(db, app.cookies['zodbsession'])['user'] == 'alice'


def test_factory_without_include_says_what_to_do(db):
    config = Configurator()
    config.set_session_factory(session_factory(db=db))

    def view(request):
        return {'user': request.session.get('user')}

    config.add_route('home', '/')
    config.add_view(view, route_name='home', renderer='json')
    app = webtest.TestApp(config.make_wsgi_app())
    with pytest.raises(RuntimeError, match=r"config.include\('zodbsession"):
        app.get('/')


def test_execution_policy(db):
    """pyramid_retry, when included, decides how often (its
    retry.attempts); without it, zodbsession's policy does (no count by
    default: the budget in seconds)."""
    app = make_app(db, 'tm', settings={'retry.attempts': 2})
    state = app.app.registry.state
    app.post('/count')
    state.interfere = 5
    app.post('/count', status=503)
    assert state.runs['count'] == 3         # 1 + pyramid_retry's two

    app = make_app(db, 'tm_only')
    state = app.app.registry.state
    app.post('/count')
    state.interfere = 5
    assert app.post('/count').json['count'] == 601   # 100 * run 6, +1
    assert state.runs['count'] == 7         # 1 + five conflicts + one


def test_negative_retries_rejected(db):
    with pytest.raises(ValueError, match='retries'):
        session_factory(db=db, retries=-1)


def test_pyramid_session_outside_pyramid(sessions):
    # The wrapper needs only a request that ISession adapts.
    try:
        request = testing.SessionTestClient().request()
        session = PyramidSession(request)
        assert session.new and len(session) == 0
        session['a'] = 1
        assert dict(session) == {'a': 1}
        assert session.copy() == {'a': 1}
        session.clear()
        assert dict(session) == {}
        assert repr(session) == "<PyramidSession 'pyramid.session' keys=[]>"
    finally:
        transaction.abort()


# -- what a request leaves behind --------------------------------------------

def test_a_request_leaves_nothing_of_ours_in_reference_cycles(db, mode):
    # Pyramid's own session lets go of its request once its cookie is
    # set; ours lets go when Pyramid has finished the request, so
    # reference counting frees the request, its session, context and
    # connection site, and no collector pass is needed for them.
    from zodbsession.testing.garbage import cycles_left_by
    app = make_app(db, mode)
    app.get('/count')

    def requests():
        for expected in (2, 3, 4):
            assert app.get('/count').json == {'count': expected}

    assert cycles_left_by(requests) == []


def session_kept_after_its_request(db):
    """The ``request.session`` of a request that is over: it stored
    ``colour`` and flashed ``saved``."""
    kept = []

    def keep(request):
        request.session['colour'] = 'teal'
        request.session.flash('saved')
        kept.append(request.session)
        return {}

    config = make_config(db)
    config.add_route('keep', '/keep')
    config.add_view(keep, route_name='keep', renderer='json')
    webtest.TestApp(config.make_wsgi_app()).get('/keep')
    return kept[0]


def test_a_session_kept_after_its_request_reads_and_refuses_changes(db):
    session = session_kept_after_its_request(db)
    assert session['colour'] == 'teal'
    assert session.request is None
    with pytest.raises(RuntimeError, match='request that is over'):
        session['colour'] = 'red'
    assert session['colour'] == 'teal'


def test_a_session_kept_after_its_request_refuses_deletions_too(db):
    # Deleting is a change like setting: refused with the same clear
    # error, and what was read stays as it was (not a ZODB error from
    # the closed connection, with the key gone from the kept copy).
    session = session_kept_after_its_request(db)
    for change in (lambda: session.__delitem__('colour'), session.pop_flash,
                   session.clear, session.changed):
        with pytest.raises(RuntimeError, match='request that is over'):
            change()
    assert session['colour'] == 'teal'
    assert session.peek_flash() == ['saved']


def test_a_request_kept_after_it_finished_opens_no_connection(db):
    # Pyramid has finished the request and closed its connection: a late
    # ISession(request) must not open one that nobody would close.
    from zope.interface.interfaces import ComponentLookupError

    from zodbsession import ISession
    kept = []

    def keep(request):
        request.session['colour'] = 'teal'
        kept.append(request)
        return {}

    config = make_config(db)
    config.add_route('keep', '/keep')
    config.add_view(keep, route_name='keep', renderer='json')
    app = webtest.TestApp(config.make_wsgi_app())
    app.get('/keep')
    try:
        ISession(kept[0]).get('pyramid.session')
    except ComponentLookupError:
        pass    # no site outside a request
    assert open_connections(db) == []
