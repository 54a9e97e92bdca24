"""Many processes, one ZEO server: no ConflictError reaches a client.

Each worker is a process of its own running ``SessionMiddleware`` over
``zeo://...`` (``zodbsession.testing.workers``), served by waitress; the
test plays the browsers, over HTTP. A request whose retries ran out would
come back as an HTTP error and fail the test; the retries that the
middleware needed are reported by the workers (the ``attempt`` of every
reply) and printed (``pytest -s``).
"""
import contextlib
import random
import threading
import urllib.error

import pytest

from zodbsession.testing.processes import REQUEST_TIMEOUT
from zodbsession.testing.workers import SessionHTTPClient
from zodbsession.testing.workers import increment_concurrently
from zodbsession.testing.workers import session_worker
from zodbsession.testing.zeo import zeo_server

pytest.importorskip('ZEO')

PROCESSES = 3
INCREMENTS = 20            # per process, for the one-client counter
CLIENT_THREADS = 2         # browsers' threads per process
REQUESTS_PER_THREAD = 30


@pytest.fixture(scope='module')
def workers(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('zeo-concurrency'))
    with contextlib.ExitStack() as stack:
        uri = stack.enter_context(zeo_server(directory))
        # Every worker at the defaults, as a user would run it.
        yield [stack.enter_context(session_worker(uri, directory))
               for _ in range(PROCESSES)]


def test_two_processes_of_four_threads_count_exactly(tmp_path):
    """The promise at the defaults, across processes: 2 worker processes
    of 4 threads each, one client, 100 increments from each thread:
    every response is a 200 and the count ends at exactly 800.

    Within a process the client's contending requests take turns; across
    the two, at most one request per process contends for the record at
    a time, and the retry budget (10 s) outlasts that easily.
    """
    directory = str(tmp_path)
    with contextlib.ExitStack() as stack:
        uri = stack.enter_context(zeo_server(directory))
        pair = [stack.enter_context(session_worker(uri, directory))
                for _ in range(2)]
        client = SessionHTTPClient()
        client.request(pair[0].url, '/set', {'owner': 'dave'})
        # increment_concurrently fails on any response but a 200.
        replies = increment_concurrently(
            client, [worker.url for worker in pair], 100, threads_per_url=4)
        assert len(replies) == 800
        counters = sorted(reply['data']['counter'] for reply in replies)
        assert counters == list(range(1, 801))
        for worker in pair:
            assert client.request(worker.url, '/read')['data'] == {
                'owner': 'dave', 'counter': 800}
    retries = sum(reply['attempt'] for reply in replies)
    print(f'\nZEO, 2 processes x 4 threads, one client: 800 increments,'
          f' {retries} retries')


def test_processes_incrementing_one_key_lose_nothing(
        workers, record_property):
    client = SessionHTTPClient()
    client.request(workers[0].url, '/set', {'owner': 'carol'})
    replies = increment_concurrently(
        client, [worker.url for worker in workers], INCREMENTS)

    total = PROCESSES * INCREMENTS
    counters = sorted(reply['data']['counter'] for reply in replies)
    assert counters == list(range(1, total + 1))
    assert {reply['pid'] for reply in replies} == {
        worker.process.pid for worker in workers}
    for worker in workers:
        assert client.request(worker.url, '/read')['data'] == {
            'owner': 'carol', 'counter': total}
    retries = sum(reply['attempt'] for reply in replies)
    record_property('retries', retries)
    print(f'\nZEO, one client: {total} increments from {PROCESSES}'
          f' processes needed {retries} retries')


def test_many_clients_creating_and_updating_sessions(
        workers, record_property):
    """Half the requests create a session, half update one of the
    thread's own clients, spread over every process."""
    replies = []
    failures = []
    expected = {}
    lock = threading.Lock()
    start = threading.Barrier(PROCESSES * CLIENT_THREADS,
                              timeout=REQUEST_TIMEOUT)

    def browse(seed):
        rng = random.Random(seed)
        mine = []
        start.wait()
        for number in range(REQUESTS_PER_THREAD):
            worker = workers[rng.randrange(len(workers))]
            if number % 2 == 0:
                client = SessionHTTPClient()   # its first request creates
                mine.append(client)
            else:
                client = rng.choice(mine)
            try:
                reply = client.request(worker.url, '/increment', {})
            except urllib.error.HTTPError as exc:
                with lock:
                    failures.append(exc.code)
                continue
            with lock:
                replies.append(reply)
                expected[client] = expected.get(client, 0) + 1

    threads = [threading.Thread(target=browse, args=(seed,), daemon=True)
               for seed in range(PROCESSES * CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT * REQUESTS_PER_THREAD)
    assert not any(thread.is_alive() for thread in threads)

    total = PROCESSES * CLIENT_THREADS * REQUESTS_PER_THREAD
    assert failures == []
    assert len(replies) == total
    for client, counter in expected.items():
        read = client.request(workers[0].url, '/read')['data']
        assert read == {'counter': counter}
    retries = sum(reply['attempt'] for reply in replies)
    record_property('retries', retries)
    print(f'\nZEO, many clients: {retries} retries for {total} requests'
          f' ({100 * retries / total:.1f}%) over {PROCESSES} processes')
