"""The request context, its one data manager, and following a
transaction manager's transactions."""
import pytest
import transaction

from zodbsession import following
from zodbsession.context import RequestDataManager
from zodbsession.context import context_of
from zodbsession.context import has_transaction
from zodbsession.context import install
from zodbsession.requests import WSGIRequest


class Follower:
    """Has only what a follower needs: ``afterCompletion``."""

    def __init__(self):
        self.told = []

    def afterCompletion(self, txn):
        self.told.append('committed' if txn.status == 'Committed'
                         else 'not committed')


def test_a_follower_is_told_of_each_transaction_until_it_stops():
    manager = transaction.TransactionManager()
    follower = Follower()
    following.follow(manager, follower)
    manager.begin()
    manager.commit()
    manager.get()
    manager.abort()
    following.unfollow(manager, follower)
    manager.begin()
    manager.commit()
    assert follower.told == ['committed', 'not committed']
    following.unfollow(manager, follower)       # twice: nothing happens


def test_followers_survive_a_manager_whose_synchronizers_were_cleared():
    # After a storage outage the middleware clears the thread manager's
    # synchronizers, ours among them; the next follower registers anew.
    manager = transaction.TransactionManager()
    following.follow(manager, Follower())
    manager.clearSynchs()
    following.forget(manager)
    follower = Follower()
    following.follow(manager, follower)
    manager.get()
    manager.commit()
    assert follower.told == ['committed']


def test_whether_a_transaction_is_under_way_is_asked_without_starting_one():
    manager = transaction.TransactionManager()
    assert has_transaction(manager) is False
    assert has_transaction(manager) is False    # asking began nothing
    manager.get()
    assert has_transaction(manager) is True
    manager.abort()
    assert has_transaction(manager) is False
    # The thread-dispatching manager answers for the thread's own.
    assert has_transaction(transaction.manager) is has_transaction(
        transaction.manager.manager)


class Participant:
    def __init__(self, name, log, fail_vote=False):
        self.name, self.log, self.fail_vote = name, log, fail_vote

    def tpc_vote(self, txn):
        self.log.append((self.name, 'vote'))
        if self.fail_vote:
            raise ValueError(f'{self.name} cannot be stored')

    def tpc_finish(self, txn):
        self.log.append((self.name, 'finish'))

    def tpc_abort(self, txn):
        self.log.append((self.name, 'tpc_abort'))

    def abort(self, txn):
        self.log.append((self.name, 'abort'))


class Failing:
    """A data manager whose vote fails."""

    def sortKey(self):
        return 'zzz.failing'        # votes after ours

    def abort(self, txn):
        pass

    tpc_begin = commit = tpc_abort = abort

    def tpc_vote(self, txn):
        raise ValueError('the other data manager cannot vote')


def test_request_bound_data_joins_the_transaction_once_and_ends_with_it():
    manager = transaction.TransactionManager()
    log = []
    data_manager = RequestDataManager(manager)
    data_manager.enlist(Participant('a', log))
    data_manager.enlist(Participant('b', log))
    manager.commit()
    assert log == [('a', 'vote'), ('b', 'vote'),
                   ('a', 'finish'), ('b', 'finish')]
    # The next transaction: it joins again, and an abort aborts.
    data_manager.enlist(Participant('c', log))
    manager.abort()
    assert log[4:] == [('c', 'abort')]
    assert has_transaction(manager) is False


def test_a_failed_vote_ends_every_participant_as_it_should():
    # Ours voted and a later vote failed: ours end with tpc_abort (a RAM
    # store releases its lock there).
    manager = transaction.TransactionManager()
    log = []
    RequestDataManager(manager).enlist(Participant('a', log))
    manager.get().join(Failing())
    with pytest.raises(ValueError, match='cannot vote'):
        manager.commit()
    manager.abort()
    assert log == [('a', 'vote'), ('a', 'tpc_abort')]

    # One of ours failed its vote: who voted before it is ended with
    # tpc_abort, who did not with abort; all of them once.
    log.clear()
    data_manager = RequestDataManager(manager)
    for participant in (Participant('a', log),
                        Participant('b', log, fail_vote=True),
                        Participant('c', log)):
        data_manager.enlist(participant)
    with pytest.raises(ValueError, match='b cannot be stored'):
        manager.commit()
    manager.abort()
    assert log == [('a', 'vote'), ('b', 'vote'),
                   ('a', 'tpc_abort'), ('b', 'tpc_abort'), ('c', 'abort')]


def test_a_context_no_host_prepared_keeps_one_data_manager_per_manager():
    # Containers loaded by connections of two managers: each one's
    # changes take part in their own manager's transaction.
    first, second = (transaction.TransactionManager(),
                     transaction.TransactionManager())
    log = []
    context = context_of(WSGIRequest({}))
    context.join(Participant('a', log), first)
    context.join(Participant('b', log), second)
    first.commit()
    second.commit()
    assert log == [('a', 'vote'), ('a', 'finish'),
                   ('b', 'vote'), ('b', 'finish')]


def test_a_request_no_host_prepared_gets_one_context_kept_with_it():
    request = WSGIRequest({})
    context = context_of(request)
    assert context_of(request) is context
    assert context.hosted is False
    assert context.transaction_manager_for() is transaction.manager


def test_a_host_prepares_a_request_that_keeps_state_only():
    manager = transaction.TransactionManager()
    request = WSGIRequest({})
    context = install(request, transaction_manager=manager,
                      cookies=request)
    assert context_of(request) is context
    assert context.transaction_manager_for() is manager
    with pytest.raises(TypeError, match='keeps no per-request state'):
        install(object())


class Marker:
    """Something to hold a weak reference to."""


def test_what_a_request_made_is_freed_when_it_ends_without_the_collector(
        db):
    # The request's objects refer to each other (a cookie session's data
    # and its view, the data and its package views); the middleware lets
    # go of them once the response is complete, so reference counting
    # frees them and no garbage collector pass is needed for them.
    import gc
    import weakref

    import webtest

    from zodbsession import CookieSessionDataContainer
    from zodbsession import ISession
    from zodbsession.site import change_site
    from zodbsession.wsgi import SessionMiddleware

    middleware = SessionMiddleware(None, db=db)
    change_site(db, lambda site: site.register_container(
        'pkg', CookieSessionDataContainer(secret='release-test-secret-01')))
    made = []
    requests = []
    kept = []

    def app(environ, start_response):
        session = ISession(environ['zodbsession.request'])
        data = session['pkg']
        data['n'] = data.get('n', 0) + 1
        made.append(weakref.ref(session._session_data(
            session._context.container('pkg'))))
        # The request's own objects: the Session, its context, the
        # request and the environ (a dict: known by a key's value).
        marker = environ['test.marker'] = Marker()
        requests.append([weakref.ref(thing) for thing in (
            session, session._context, environ['zodbsession.request'],
            marker)])
        if environ['PATH_INFO'] == '/keep':
            kept.append(session)
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [str(data['n']).encode()]

    middleware.app = app
    browser = webtest.TestApp(middleware)
    gc.disable()
    try:
        assert browser.get('/').text == '1'
        assert browser.get('/keep').text == '2'
        # Each request's session data is gone already ...
        assert [ref() for ref in made] == [None, None]
        # ... and so is the whole of a request that nothing kept.
        assert [ref() for ref in requests[0]] == [None] * 4
    finally:
        gc.enable()
    # A Session kept after its request still reads its data ...
    assert kept[-1]['pkg']['n'] == 2
    # ... through what it keeps alive, the request's context.
    assert requests[1][1]() is kept[-1]._context


def test_an_optimistic_savepoint_passes_a_participant_without_savepoints():
    # A participant without savepoints (a container view of another
    # package's) makes the request's data manager one without, as the
    # transaction package sees one: an optimistic savepoint is taken, and
    # only rolling back to it fails; a plain savepoint fails at once.
    manager = transaction.TransactionManager()
    log = []
    RequestDataManager(manager).enlist(Participant('a', log))
    savepoint = manager.savepoint(optimistic=True)
    with pytest.raises(TypeError, match='Savepoints unsupported'):
        savepoint.rollback()
    manager.abort()
    RequestDataManager(manager).enlist(Participant('b', log))
    with pytest.raises(TypeError, match='Savepoints unsupported'):
        manager.savepoint()
    manager.abort()
    assert log == [('a', 'abort'), ('b', 'abort')]


def browser_of_every_container(db, app):
    """A browser on ``app`` behind SessionMiddleware, whose site keeps
    package ``cookie`` in a CookieSessionDataContainer, ``ram`` in a
    RAMSessionDataContainer and any other in the database."""
    import webtest

    from zodbsession import CookieSessionDataContainer
    from zodbsession import RAMSessionDataContainer
    from zodbsession.site import change_site
    from zodbsession.wsgi import SessionMiddleware

    middleware = SessionMiddleware(app, db=db)

    def register(site):
        site.register_container('cookie', CookieSessionDataContainer(
            secret='every-container-secret-0001'))
        site.register_container('ram', RAMSessionDataContainer())
    change_site(db, register)
    return webtest.TestApp(middleware)


def count_in(session, pkg_ids):
    """Add 1 to counter ``n`` of each package of ``session``."""
    for pkg_id in pkg_ids:
        data = session[pkg_id]
        data['n'] = data.get('n', 0) + 1


def test_a_request_leaves_nothing_of_ours_in_reference_cycles(db):
    import webtest

    from zodbsession import ISession
    from zodbsession.testing.garbage import cycles_left_by

    def app(environ, start_response):
        session = ISession(environ['zodbsession.request'])
        for pkg_id in ('cookie', 'ram', 'persistent'):
            data = session[pkg_id]
            if environ['PATH_INFO'] == '/read':
                value = data.get('n', 0)
            else:
                value = data['n'] = data.get('n', 0) + 1
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [str(value).encode()]

    browser = browser_of_every_container(db, app)
    browser.get('/')

    def requests():
        for expected in ('2', '3', '4'):
            assert browser.get('/').text == expected
            assert browser.get('/read').text == expected
        # A crawler: no cookie, it only reads (its sessions stay pending).
        assert webtest.TestApp(browser.app).get('/read').text == '0'

    assert cycles_left_by(requests) == []


def test_the_middlewares_request_adapts_to_its_one_session(db):
    # The middleware's request answers ISession itself (no adapter
    # lookup on each use) with the Session the registered adapter gives:
    # the one its host made, the same for every caller.
    from zodbsession import ISession
    from zodbsession.session import session_of

    seen = []

    def app(environ, start_response):
        request = environ['zodbsession.request']
        session = ISession(request)
        seen.append((session, environ['zodbsession.session'],
                     session_of(request), ISession(request)))
        count_in(session, ('cookie', 'ram', 'persistent'))
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'ok']

    browser = browser_of_every_container(db, app)
    browser.get('/')
    browser.get('/')
    for session, host_made, adapted, again in seen:
        assert session is host_made is adapted is again
    assert seen[0][0] is not seen[1][0]
    # A request no host prepared has no context yet: the adapter makes
    # its Session, and it is the one the request keeps.
    request = WSGIRequest({})
    assert request.__conform__(ISession) is None
    session = ISession(request)
    assert session is context_of(request).session is ISession(request)


def test_a_session_kept_after_its_request_reads_every_kind_of_container(db):
    # The middleware lets go of the request's context when the response
    # is complete; a Session kept beyond that finds it all the same, for
    # containers in the database, in RAM and in a cookie.
    from zodbsession import ISession

    kept = []

    def app(environ, start_response):
        session = ISession(environ['zodbsession.request'])
        count_in(session, ('cookie', 'ram', 'persistent'))
        kept.append(session)
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'ok']

    browser = browser_of_every_container(db, app)
    browser.get('/')
    browser.get('/')
    assert 'zodbsession.session' not in kept[-1].request.environ
    assert [kept[-1][pkg_id]['n'] for pkg_id in (
        'cookie', 'ram', 'persistent')] == [2, 2, 2]


def test_a_request_kept_after_its_response_reads_what_it_committed(db):
    # Nothing but the request is kept (not its Session): ISession and
    # IClientId of it still read what the request committed, as they did
    # before the middleware let go of the context, rather than finding
    # no container at all (ComponentLookupError).
    from zodbsession import IClientId
    from zodbsession import ISession

    kept = []

    def app(environ, start_response):
        request = environ['zodbsession.request']
        session = ISession(request)
        count_in(session, ('cookie', 'ram', 'persistent'))
        kept[:] = [request, str(IClientId(request))]
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'ok']

    browser = browser_of_every_container(db, app)
    browser.get('/')
    browser.get('/')
    request, client_id = kept
    assert str(IClientId(request)) == client_id
    assert [ISession(request)[pkg_id]['n'] for pkg_id in (
        'cookie', 'ram', 'persistent')] == [2, 2, 2]


def test_a_bound_container_kept_after_its_request_still_serves(db):
    # ISessionDataContainer.bind(request) gives the request's view of a
    # request-bound container; kept after the response, it reads what the
    # request committed and takes changes, as before the middleware let
    # go of the context (not a ReferenceError from a dead weak proxy).
    import transaction
    import zope.component

    from zodbsession import ISession
    from zodbsession import ISessionDataContainer

    kept = {}

    def app(environ, start_response):
        request = environ['zodbsession.request']
        session = ISession(request)
        for pkg_id in ('cookie', 'ram'):
            data = session[pkg_id]
            data['n'] = data.get('n', 0) + 1
            kept[pkg_id] = zope.component.getUtility(
                ISessionDataContainer, pkg_id, context=request).bind(request)
        kept['client_id'] = session.client_id
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'ok']

    browser = browser_of_every_container(db, app)
    browser.get('/')
    browser.get('/')
    client_id = kept['client_id']
    for pkg_id in ('cookie', 'ram'):
        assert kept[pkg_id][client_id][pkg_id]['n'] == 2
    kept['ram'][client_id]['ram']['n'] = 3
    transaction.commit()
    assert kept['ram'][client_id]['ram']['n'] == 3
