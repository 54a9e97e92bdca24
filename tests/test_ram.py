"""RAMSessionDataContainer: process memory, transactional, thread-shared."""
import queue
import threading

import pytest
import transaction
from ZODB.POSException import ConflictError
from zope.interface.verify import verifyObject

from zodbsession import ISessionDataContainer
from zodbsession import RAMSessionDataContainer
from zodbsession import SessionData
from zodbsession import SessionPkgData
from zodbsession import testing
from zodbsession.clock import ManualClock
from zodbsession.clock import use_clock
from zodbsession.testing import add_session
from zodbsession.container import IMPLICIT_SWEEP_LIMIT
from zodbsession.expiry import slice_length

START = 1_700_000_000


@pytest.fixture
def clock():
    with use_clock(ManualClock(START)) as manual:
        yield manual


@pytest.fixture
def container():
    transaction.abort()
    yield RAMSessionDataContainer()
    transaction.abort()


class Worker:
    """Runs callables, one at a time, in its own thread (and so in its own
    transaction): a second concurrent request, interleaved step by step."""

    def __init__(self):
        self._calls = queue.Queue()
        self._results = queue.Queue()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while True:
            call = self._calls.get()
            if call is None:
                return
            try:
                self._results.put((True, call()))
            except BaseException as exc:
                self._results.put((False, exc))

    def run(self, call):
        self._calls.put(call)
        ok, result = self._results.get(timeout=60)
        if not ok:
            raise result
        return result

    def stop(self):
        self._calls.put(None)
        self._thread.join(60)


@pytest.fixture
def worker():
    running = Worker()
    yield running
    running.run(transaction.abort)
    running.stop()


def committed(container, client_id, **items):
    add_session(container, client_id, **items)
    transaction.commit()


def test_interface_and_settings(container):
    assert verifyObject(ISessionDataContainer, container)
    assert container.timeout == 3600
    assert RAMSessionDataContainer(timeout=10, resolution=5).resolution == 5


def test_set_get_contains_delete(container, clock):
    assert container.get('client') is None and 'client' not in container
    data = add_session(container, 'client', k='v')
    assert container['client'] is data
    transaction.commit()
    assert container['client']['pkg']['k'] == 'v'
    del container['client']
    with pytest.raises(KeyError):
        del container['client']
    transaction.commit()
    with pytest.raises(KeyError):
        container['client']


def test_abort_discards(container, clock):
    committed(container, 'client', k='kept')
    container['client']['pkg']['k'] = 'discarded'
    add_session(container, 'other', k='discarded')
    transaction.abort()
    assert container['client']['pkg']['k'] == 'kept'
    assert 'other' not in container
    assert container.count() == 1


def test_changes_are_private_until_commit(container, clock, worker):
    committed(container, 'client', k=0)
    container['client']['pkg']['k'] = 1
    assert worker.run(lambda: container['client']['pkg']['k']) == 0
    transaction.commit()
    worker.run(transaction.abort)      # a new transaction for the worker
    assert worker.run(lambda: container['client']['pkg']['k']) == 1


def test_data_committed_in_one_thread_is_seen_in_another(
        container, clock, worker):
    def write():
        committed(container, 'client', items=['apple'])
    worker.run(write)
    assert container['client']['pkg']['items'] == ['apple']


def test_concurrent_changes_to_different_keys_merge(container, clock, worker):
    committed(container, 'client', a=0, b=0)

    def change_b():
        container['client']['pkg']['b'] = 2
    worker.run(change_b)
    container['client']['pkg']['a'] = 1
    transaction.commit()
    worker.run(transaction.commit)
    transaction.begin()
    assert dict(container['client']['pkg']) == {'a': 1, 'b': 2}


def test_concurrent_changes_to_one_key_conflict(container, clock, worker):
    committed(container, 'client', n=0)

    def set_n():
        container['client']['pkg']['n'] = 2
    worker.run(set_n)
    container['client']['pkg']['n'] = 1
    transaction.commit()
    with pytest.raises(ConflictError):
        worker.run(transaction.commit)
    worker.run(transaction.abort)
    assert container['client']['pkg']['n'] == 1
    # The store's lock was released: later commits work.
    container['client']['pkg']['n'] = 3
    transaction.commit()
    assert worker.run(lambda: container['client']['pkg']['n']) == 3


def test_counter_incremented_with_retries_loses_nothing(container, clock):
    committed(container, 'client', n=0)
    increments = 40

    def increment():
        for attempt in transaction.manager.attempts(100):
            with attempt:
                container['client']['pkg']['n'] += 1

    threads = [threading.Thread(target=lambda: [increment() for _ in
                                                range(increments // 4)])
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    transaction.begin()
    assert container['client']['pkg']['n'] == increments


def test_read_within_resolution_changes_nothing(container, clock):
    committed(container, 'client', k='v')
    version = container._store.version
    clock.advance(container.resolution - 1)
    assert container['client']['pkg']['k'] == 'v'
    transaction.commit()
    assert container._store.version == version
    clock.advance(2)
    container['client']
    transaction.commit()
    assert container._store.version == version + 1


def test_expired_data_is_never_returned_and_sweep_removes_it(
        container, clock):
    committed(container, 'client', k='v')
    clock.advance(container.timeout + container.resolution + 1)
    transaction.begin()
    assert container.count() == 1
    assert 'client' not in container and container.get('client') is None
    with pytest.raises(KeyError):
        container['client']
    # Sweeping drops whole slices, once the newest access they cover has
    # expired.
    clock.advance(slice_length(container.timeout, container.resolution))
    assert container.sweep_expired() == 1
    assert container.count() == 0


def test_timeout_zero_never_expires(clock):
    container = RAMSessionDataContainer(timeout=0)
    committed(container, 'client', k='v')
    clock.advance(10 * 365 * 24 * 3600)
    transaction.begin()
    assert container.sweep_expired() == 0
    assert container['client']['pkg']['k'] == 'v'
    transaction.abort()


def test_implicit_sweep_is_bounded(clock):
    container = RAMSessionDataContainer(timeout=0)
    slices = 20
    for number in range(slices):
        committed(container, f'client-{number}', k=number)
        clock.advance(31 * 24 * 3600)
    container.timeout = 3600
    assert container.count() == slices
    committed(container, 'newcomer', k='v')
    assert container.count() == slices - IMPLICIT_SWEEP_LIMIT + 1
    assert container.sweep_expired() == slices - IMPLICIT_SWEEP_LIMIT
    assert container.count() == 1 and 'newcomer' in container
    transaction.abort()


def test_disable_implicit_sweeps(clock):
    container = RAMSessionDataContainer(timeout=0)
    for number in range(6):
        committed(container, f'client-{number}', k=number)
        clock.advance(31 * 24 * 3600)
    container.timeout = 3600
    container.disable_implicit_sweeps = True
    committed(container, 'newcomer', k='v')
    assert container.count() == 7
    assert container.sweep_expired() == 6
    transaction.abort()


def test_unpicklable_value_fails_at_commit_and_leaves_the_store(
        container, clock):
    committed(container, 'client', k='kept')
    container['client']['pkg']['bad'] = threading.Lock()
    with pytest.raises(TypeError, match="cannot pickle '_thread.lock'"):
        transaction.commit()
    transaction.abort()
    assert dict(container['client']['pkg']) == {'k': 'kept'}
    container['client']['pkg']['k'] = 'changed'
    transaction.commit()                 # the store is not left locked
    assert container['client']['pkg']['k'] == 'changed'


def test_no_zodb_connection_is_involved(container, clock):
    add_session(container, 'client', k='v')
    resources = transaction.get()._resources
    assert [type(resource).__name__ for resource in resources] == [
        'RAMTransaction']
    transaction.commit()


def test_containers_do_not_share_data(container, clock):
    other = RAMSessionDataContainer()
    committed(container, 'client', k='v')
    assert 'client' not in other


def test_stored_in_zodb_every_copy_shares_the_data(db, clock):
    manager = transaction.TransactionManager()
    connection = db.open(manager)
    connection.root()['ram'] = RAMSessionDataContainer()
    manager.commit()
    other = db.open(transaction.TransactionManager())
    copy_one, copy_two = connection.root()['ram'], other.root()['ram']
    assert copy_one is not copy_two
    committed(copy_one, 'client', k='v')
    assert copy_two['client']['pkg']['k'] == 'v'
    transaction.abort()


def test_reading_a_value_whose_pickle_is_unstable_writes_nothing(
        container, clock):
    tags = {str(number) for number in range(100)}
    tags -= {str(number) for number in range(0, 100, 2)}
    committed(container, 'client', tags=tags)
    version = container._store.version
    transaction.begin()
    assert container['client']['pkg']['tags'] == tags
    transaction.commit()
    assert container._store.version == version


def test_bound_to_a_request_it_follows_the_requests_manager(container):
    # pyramid_tm may run a request in an explicit transaction manager of
    # its own; bound to such a request, the container joins that
    # manager's transactions, not the thread's.
    from zodbsession.context import install
    from zodbsession.requests import WSGIRequest

    def hosted_request(manager):
        # As a host prepares it: its transactions are the manager's.
        request = WSGIRequest({})
        request.context = install(request, transaction_manager=manager,
                                  cookies=request)
        return request

    manager = transaction.TransactionManager(explicit=True)
    request = hosted_request(manager)
    bound = container.bind(request)
    assert bound.timeout == container.timeout
    verifyObject(ISessionDataContainer, bound)

    manager.begin()
    data = SessionData()
    data['pkg'] = SessionPkgData()
    data['pkg']['n'] = 1
    bound['client'] = data
    transaction.commit()        # the thread's transaction: not ours
    assert 'client' not in container
    manager.abort()
    assert 'client' not in container

    manager.begin()
    bound['client'] = data
    manager.commit()
    assert container['client']['pkg']['n'] == 1
    transaction.abort()

    # Bound to a request of the thread's own manager, it takes part in
    # the thread's transactions.
    plain = container.bind(hosted_request(transaction.manager))
    plain['other'] = data
    transaction.commit()
    assert container['other']['pkg']['n'] == 1
    transaction.abort()


def browser_with_ram(db, app):
    """A browser on ``app`` under the middleware on ``db``, the package
    ``ram.pkg`` in a RAMSessionDataContainer."""
    import webtest

    from zodbsession.site import change_site
    from zodbsession.wsgi import SessionMiddleware

    middleware = SessionMiddleware(app, db=db)
    change_site(db, lambda site: site.register_container(
        'ram.pkg', RAMSessionDataContainer()))
    return webtest.TestApp(middleware)


@pytest.fixture
def ram_browser(db):
    def app(environ, start_response):
        data = environ['zodbsession.session']['ram.pkg']
        action = environ.get('PATH_INFO', '/')
        if action == '/add':
            data['n'] = data.get('n', 0) + 1
        elif action == '/append':
            data.setdefault('items', [])
            data['items'].append(len(data['items']))
        shown = repr((data.get('n'), data.get('items')))
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [shown.encode()]

    return browser_with_ram(db, app)


def test_through_a_request_reads_join_no_transaction(ram_browser, clock):
    # A request that only reads runs no two-phase commit (it used to: the
    # container joined the transaction on its first read); one that
    # changes something commits one transaction, and the change is there
    # for the next request.
    assert ram_browser.get('/add').text == '(1, None)'
    with testing.CompletedTransactions() as completed:
        assert ram_browser.get('/').text == '(1, None)'
    assert completed.statuses == []
    with testing.CompletedTransactions() as completed:
        assert ram_browser.get('/add').text == '(2, None)'
    assert completed.statuses == ['Committed']
    assert ram_browser.get('/').text == '(2, None)'


def test_through_a_request_a_list_changed_in_place_is_kept(ram_browser,
                                                            clock):
    ram_browser.get('/append')
    ram_browser.get('/append')
    assert ram_browser.get('/').text == '(None, [0, 1])'


def test_through_a_request_a_due_last_access_is_stored(ram_browser, clock):
    ram_browser.get('/add')
    clock.advance(3000)         # past the resolution, within the timeout
    ram_browser.get('/')        # only reads: the access time moves
    clock.advance(3000)         # 6000 s after the write, 3000 after the read
    assert ram_browser.get('/').text == '(1, None)'


# -- through a request: the request context's transactions ---------------------

def _hosted(manager):
    """A request as a host prepares it: its transactions are the manager's."""
    from zodbsession.context import install
    from zodbsession.requests import WSGIRequest
    request = WSGIRequest({})
    request.context = install(request, transaction_manager=manager,
                              cookies=request)
    return request


def _session(n):
    data = SessionData()
    data['pkg'] = SessionPkgData()
    data['pkg']['n'] = n
    return data


def _stored(container, client_id, n):
    manager = transaction.TransactionManager()
    request = _hosted(manager)
    container.bind(request)[client_id] = _session(n)
    manager.commit()
    request.context.end()


def _read(container, client_id):
    request = _hosted(transaction.TransactionManager())
    try:
        return container.bind(request)[client_id]['pkg']['n']
    finally:
        request.context.end()


class _VotesLast:
    """Another data manager of the transaction (as a connection is)."""

    def sortKey(self):
        return '~after everything'

    def abort(self, txn):
        pass

    tpc_begin = commit = tpc_vote = tpc_finish = tpc_abort = abort


def test_a_conflict_at_the_vote_leaves_the_store_usable(clock):
    # The request's vote meets a concurrent removal (a conflict) after
    # taking the store's lock: the failed commit gives the lock back, so
    # the next request of any thread goes on (it used to hang).
    import threading
    container = RAMSessionDataContainer()
    _stored(container, 'client', 1)
    manager = transaction.TransactionManager()
    request = _hosted(manager)
    container.bind(request)['client']['pkg']['n'] = 2
    remover = transaction.TransactionManager()
    removing = _hosted(remover)
    del container.bind(removing)['client']
    remover.commit()
    removing.context.end()
    manager.get().join(_VotesLast())
    with pytest.raises(ConflictError):
        manager.commit()
    manager.abort()
    request.context.end()

    done = []
    worker = threading.Thread(
        target=lambda: done.append(_stored(container, 'client', 3)))
    worker.start()
    worker.join(10)         # a bound, not a pause: it hangs if locked
    assert done == [None]
    assert _read(container, 'client') == 3


def test_a_direct_change_beside_a_request_that_only_read_is_kept(clock):
    # zope.session's way: container[client_id] used directly in a request
    # whose session was read through ISession (the request's view).
    container = RAMSessionDataContainer()
    _stored(container, 'mine', 1)
    _stored(container, 'other', 1)
    manager = transaction.manager.manager
    request = _hosted(manager)
    assert container.bind(request)['mine']['pkg']['n'] == 1
    container['other']['pkg']['n'] = 9
    manager.commit()
    request.context.end()
    assert _read(container, 'other') == 9


def test_a_change_after_a_mid_request_commit_is_kept(clock):
    container = RAMSessionDataContainer()
    _stored(container, 'client', 1)
    manager = transaction.TransactionManager()
    request = _hosted(manager)
    data = container.bind(request)['client']
    data['pkg']['n'] = 2
    manager.commit()                    # persist()
    assert _read(container, 'client') == 2
    data['pkg']['n'] = 3                # the same session, later
    manager.commit()
    request.context.end()
    assert _read(container, 'client') == 3


def test_direct_use_outside_an_explicit_transaction_fails_and_leaves_nothing(
        clock):
    # The thread's manager made explicit (as some hosts run it): used with
    # no transaction begun, the container fails, and works once one is.
    from transaction.interfaces import NoTransaction

    from zodbsession.context import has_transaction
    manager = transaction.manager.manager
    transaction.abort()
    manager.explicit = True
    try:
        container = RAMSessionDataContainer()
        with pytest.raises(NoTransaction):
            container.get('client')
        manager.begin()
        container['client'] = _session(1)
        manager.commit()
        manager.begin()
        assert container['client']['pkg']['n'] == 1
        manager.abort()
    finally:
        if has_transaction(manager):
            manager.abort()
        manager.explicit = False


def test_a_request_no_host_prepared_keeps_each_managers_changes(clock):
    # One container in the thread's transactions, one stored in a ZODB
    # whose connection has a manager of its own: each change commits with
    # its own manager's transaction.
    import ZODB
    from zodbsession.requests import WSGIRequest
    db = ZODB.DB(None)
    other = transaction.TransactionManager()
    connection = db.open(transaction_manager=other)
    stored_container = connection.root()['c'] = RAMSessionDataContainer()
    other.commit()
    plain_container = RAMSessionDataContainer()
    try:
        request = WSGIRequest({})
        plain_container.bind(request)['client'] = _session(1)
        stored_container.bind(request)['client'] = _session(2)
        transaction.commit()
        other.commit()
        assert _read(stored_container, 'client') == 2
        assert _read(plain_container, 'client') == 1
    finally:
        connection.close()
        db.close()


def test_a_savepoint_rolls_back_to_what_it_saw(container, clock):
    # Used directly (zope.session's way): a savepoint of the transaction
    # takes the container's too; rolling back undoes what came after it,
    # in the objects handed out, and keeps what came before.
    committed(container, 'client', k='stored')
    committed(container, 'reader', k='read')
    data = container['client']
    data['pkg']['k'] = 'before'
    data['pkg']['list'] = [1]
    savepoint = transaction.savepoint()
    data['pkg']['k'] = 'after'
    data['pkg']['list'].append(2)             # in place
    add_session(container, 'new', k='after')
    container['reader']['pkg']['k'] = 'after'
    del container['client']
    savepoint.rollback()
    assert container['client'] is data
    assert dict(data['pkg']) == {'k': 'before', 'list': [1]}
    assert 'new' not in container
    assert container['reader']['pkg']['k'] == 'read'
    data['pkg']['k'] = 'kept'                 # after the rollback: counts
    transaction.commit()
    assert dict(container['client']['pkg']) == {'k': 'kept', 'list': [1]}
    assert container['reader']['pkg']['k'] == 'read'
    assert 'new' not in container
    transaction.abort()


def test_through_a_request_a_savepoint_rolls_back_to_what_it_saw(db, clock):
    def app(environ, start_response):
        data = environ['zodbsession.session']['ram.pkg']
        if environ['PATH_INFO'] == '/savepoint':
            data['n'] = 1
            savepoint = transaction.savepoint()
            data['n'] = 2
            savepoint.rollback()
            data['m'] = data['n'] + 10
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [repr((data.get('n'), data.get('m'))).encode()]

    browser = browser_with_ram(db, app)
    browser.get('/')
    assert browser.get('/savepoint').text == '(1, 11)'
    assert browser.get('/').text == '(1, 11)'


def test_a_session_rolled_back_to_before_it_changed_keeps_counting(
        db, clock):
    # Through a request, the RAM session was only read when the savepoint
    # was taken (its view joined the transaction after it): rolling back
    # gives the object the application holds its stored values back, and
    # its next change is committed, as with a database container's.
    def app(environ, start_response):
        data = environ['zodbsession.session']['ram.pkg']
        if environ['PATH_INFO'] == '/set':
            data['n'] = 1
        elif environ['PATH_INFO'] == '/savepoint':
            savepoint = transaction.savepoint()
            data['n'] = 2
            savepoint.rollback()
            data['m'] = data['n'] + 10
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [repr((data.get('n'), data.get('m'))).encode()]

    browser = browser_with_ram(db, app)
    browser.get('/set')
    assert browser.get('/savepoint').text == '(1, 11)'
    assert browser.get('/').text == '(1, 11)'


def test_a_pending_session_stored_after_a_savepoint_rolls_back(db, clock):
    # A new client's RAM session is pending (held under the id its first
    # database write issued) when the savepoint is taken; its first
    # change stores it. Rolling back makes it pending and empty again,
    # and its next change is stored.
    import json

    seen = []

    def app(environ, start_response):
        session = environ['zodbsession.session']
        if environ['PATH_INFO'] == '/savepoint':
            ram = session['ram.pkg']
            session['db.pkg']['x'] = 1          # issues the client's id
            savepoint = transaction.savepoint()
            ram['n'] = 1
            savepoint.rollback()
            seen.append(dict(session['ram.pkg']))
            session['ram.pkg']['n'] = 2
        ram = session.get('ram.pkg')
        start_response('200 OK', [('Content-Type', 'application/json')])
        return [json.dumps(None if ram is None else dict(ram)).encode()]

    browser = browser_with_ram(db, app)
    assert browser.get('/savepoint').json == {'n': 2}
    assert seen == [{}]
    assert browser.get('/').json == {'n': 2}
