"""Many requests at once through SessionMiddleware, in threads.

The promise: concurrent requests of one browser lose nothing (a counter
that T threads each increment R times ends at exactly T*R, the
middleware retrying the requests that really conflict), and requests
that change different keys or packages never even retry. The threads
meet at a barrier after reading and before committing, so their
transactions overlap for certain; the control test below shows that
such overlapping commits really do conflict when nothing resolves them.
(Once a client's requests have conflicted they take turns, so for the
same key only the first round meets at the barrier; tests/
test_concurrency_defaults.py runs the same promises unforced, at the
defaults.)

Retries are counted from ``environ['zodbsession.attempt']`` and printed
(run pytest with ``-s`` to see them); a request whose retries ran out
would raise here, and is counted too.
"""
import random
import threading

from transaction.interfaces import TransientError

from zodbsession import testing
from zodbsession.site import site_of
from zodbsession.testing import TEST_SECRET
from zodbsession.testing import SessionTestClient
from zodbsession.wsgi import ATTEMPT_KEY
from zodbsession.wsgi import SESSION_KEY
from zodbsession.wsgi import SessionMiddleware

THREADS = 4
ROUNDS = 15
TIMEOUT = 10        # seconds a thread may wait for the others
PKG = 'test.concurrency'
COOKIE = 'zodbsession'


class CountingApp:
    """Adds one to ``environ['test.key']`` of ``environ['test.pkg']``.

    Records the attempt of every call. With a barrier, a first attempt
    waits there after reading, so that every thread has read before any
    commits.
    """

    def __init__(self, barrier=None, meet_once=False):
        self.barrier = barrier
        # Meet only in requests marked 'test.meet' (the first round).
        self.meet_once = meet_once
        self.attempts = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        attempt = environ[ATTEMPT_KEY]
        with self._lock:
            self.attempts.append(attempt)
        data = environ[SESSION_KEY][environ.get('test.pkg', PKG)]
        key = environ.get('test.key', 'n')
        value = data.get(key, 0)
        if self.barrier is not None and attempt == 0 and (
                not self.meet_once or environ.get('test.meet')):
            self.barrier.wait()
        data[key] = value + 1
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [str(value + 1).encode()]

    @property
    def retries(self):
        return sum(1 for attempt in self.attempts if attempt > 0)


class Outcomes:
    """Thread-safe tally of how requests ended."""

    def __init__(self):
        self.statuses = []
        self.exhausted = 0
        self._lock = threading.Lock()

    def serve(self, middleware, client, **environ):
        """One request of ``client``; keeps the cookies it is sent."""
        request = client.request(**environ)
        response = {}

        def start_response(status, headers, exc_info=None):
            response.update(status=status, headers=headers)

        try:
            b''.join(middleware(request.environ, start_response))
        except TransientError:
            with self._lock:
                self.exhausted += 1
            return None
        with self._lock:
            self.statuses.append(response['status'])
            client.receive(response['headers'])
        return response['status']


def run_together(targets):
    """Run the callables in threads; re-raise the first failure."""
    testing.run_in_threads(targets, TIMEOUT * (ROUNDS + 5))


def middleware_for(db, app, **options):
    """The middleware at its defaults (``options``: the control's)."""
    return SessionMiddleware(app, db=db, secret=TEST_SECRET, **options)


def stored(db, client_id):
    """{pkg_id: {key: value}} committed for ``client_id``."""
    with db.transaction() as connection:
        data = site_of(connection).container.get(client_id)
        return {} if data is None else data.to_plain()


def client_with_session(db, outcomes):
    """A browser whose session exists (one request stored ``seed``)."""
    client = SessionTestClient()
    outcomes.serve(middleware_for(db, CountingApp()), client,
                   **{'test.key': 'seed'})
    assert COOKIE in client.cookies
    return client


def report(record_property, name, retries, requests):
    record_property(f'{name}_retries', retries)
    print(f'\n{name}: {retries} retries for {requests} requests')


def test_threads_incrementing_one_key_lose_nothing(db, record_property):
    outcomes = Outcomes()
    client = client_with_session(db, outcomes)
    app = CountingApp(threading.Barrier(THREADS, timeout=TIMEOUT),
                      meet_once=True)
    middleware = middleware_for(db, app)

    def increment():
        for round_ in range(ROUNDS):
            outcomes.serve(middleware, client,
                           **({'test.meet': True} if round_ == 0 else {}))

    run_together([increment] * THREADS)

    assert outcomes.exhausted == 0
    assert outcomes.statuses == ['200 OK'] * (1 + THREADS * ROUNDS)
    assert stored(db, client.cookies[COOKIE])[PKG] == {
        'seed': 1, 'n': THREADS * ROUNDS}
    # In the first round all threads read the same value before any
    # committed: all but one of them had to run again.
    assert app.retries >= THREADS - 1
    report(record_property, 'same_key', app.retries, THREADS * ROUNDS)


def test_threads_changing_different_keys_never_retry(db, record_property):
    outcomes = Outcomes()
    client = client_with_session(db, outcomes)
    app = CountingApp(threading.Barrier(THREADS, timeout=TIMEOUT))
    middleware = middleware_for(db, app)

    def increment(key):
        for _ in range(ROUNDS):
            outcomes.serve(middleware, client, **{'test.key': key})

    run_together([lambda key=f'k{i}': increment(key)
                  for i in range(THREADS)])

    assert outcomes.exhausted == 0
    assert app.attempts == [0] * (THREADS * ROUNDS)
    expected = {f'k{i}': ROUNDS for i in range(THREADS)}
    assert stored(db, client.cookies[COOKIE])[PKG] == dict(
        expected, seed=1)
    report(record_property, 'different_keys', app.retries, THREADS * ROUNDS)


def test_threads_changing_different_packages_never_retry(
        db, record_property):
    """Each thread works in a package of its own, created by the first
    round (every thread adds a package to the record at once)."""
    outcomes = Outcomes()
    client = client_with_session(db, outcomes)
    app = CountingApp(threading.Barrier(THREADS, timeout=TIMEOUT))
    middleware = middleware_for(db, app)

    def increment(pkg_id):
        for round_ in range(ROUNDS):
            key = 'n' if round_ % 2 else 'm'
            outcomes.serve(middleware, client,
                           **{'test.pkg': pkg_id, 'test.key': key})

    run_together([lambda pkg_id=f'test.pkg{i}': increment(pkg_id)
                  for i in range(THREADS)])

    assert outcomes.exhausted == 0
    assert app.attempts == [0] * (THREADS * ROUNDS)
    data = stored(db, client.cookies[COOKIE])
    assert data == dict(
        {PKG: {'seed': 1}},
        **{f'test.pkg{i}': {'n': ROUNDS // 2, 'm': ROUNDS - ROUNDS // 2}
           for i in range(THREADS)})
    report(record_property, 'different_packages', app.retries,
           THREADS * ROUNDS)


def test_overlapping_commits_of_one_key_really_conflict(db):
    """The control: without retries, threads that all read the same
    counter before any commits fail, all but one. So the barrier does
    make transactions overlap, and the zero retries above are the merge
    at work, not timing luck."""
    outcomes = Outcomes()
    client = client_with_session(db, outcomes)
    app = CountingApp(threading.Barrier(THREADS, timeout=TIMEOUT))
    middleware = middleware_for(db, app, retries=0)

    run_together([lambda: outcomes.serve(middleware, client)] * THREADS)

    assert sorted(outcomes.statuses) == ['200 OK'] * 2 + [
        '503 Service Unavailable'] * (THREADS - 1)
    assert stored(db, client.cookies[COOKIE])[PKG] == {'seed': 1, 'n': 1}


def test_many_clients_creating_and_updating_sessions(db, record_property):
    """Half the requests create a session, half update one of the
    thread's own clients: every request succeeds and every increment is
    kept."""
    requests_per_thread = 40
    outcomes = Outcomes()
    app = CountingApp()
    middleware = middleware_for(db, app)
    clients = [[] for _ in range(THREADS)]
    expected = {}
    start = threading.Barrier(THREADS, timeout=TIMEOUT)

    def work(index):
        rng = random.Random(index)
        mine = clients[index]
        start.wait()
        for number in range(requests_per_thread):
            if number % 2 == 0 or not mine:
                client = SessionTestClient()
                mine.append(client)
            else:
                client = rng.choice(mine)
            status = outcomes.serve(middleware, client)
            if status is not None:
                expected[id(client)] = expected.get(id(client), 0) + 1

    run_together([lambda i=i: work(i) for i in range(THREADS)])

    total = THREADS * requests_per_thread
    assert outcomes.exhausted == 0
    assert outcomes.statuses == ['200 OK'] * total
    every_client = [client for mine in clients for client in mine]
    assert len({client.cookies[COOKIE] for client in every_client}) == len(
        every_client) == total // 2
    for client in every_client:
        assert stored(db, client.cookies[COOKIE])[PKG] == {
            'n': expected[id(client)]}
    report(record_property, 'many_clients', app.retries, total)
