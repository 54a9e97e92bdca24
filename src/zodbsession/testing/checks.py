"""Checks that tests run against real session workers: sessions shared
between workers, concurrent increments, concurrent changes of different
keys, and a storage server outage under write traffic (``TokenWriters``,
``check_outage``).
"""
import http.client
import json
import threading
import time

from zodbsession.testing.processes import REQUEST_TIMEOUT
from zodbsession.testing.processes import wait_for
from zodbsession.testing.workers import SessionHTTPClient
from zodbsession.testing.workers import increment_concurrently
from zodbsession.testing.workers import post_concurrently


def _expect(condition, message):
    if not condition:
        raise AssertionError(message)


def check_shared_sessions(first, second):
    """Data a client stores through one worker is read through the other,
    both ways; a client without a cookie gets nothing and no cookie."""
    alice = SessionHTTPClient()
    stored = alice.request(first.url, '/set', {'name': 'alice'})
    _expect(alice.cookies, 'the first worker issued no cookie')
    read = alice.request(second.url, '/read')
    _expect(read['pid'] != stored['pid'], 'both replies came from one process')
    _expect(read['data'] == {'name': 'alice'},
            f'the second worker read {read["data"]!r}')

    bob = SessionHTTPClient()
    bob.request(second.url, '/set', {'name': 'bob'})
    read = bob.request(first.url, '/read')['data']
    _expect(read == {'name': 'bob'}, f'the first worker read {read!r}')
    alice.request(second.url, '/set', {'city': 'Paris'})
    read = alice.request(first.url, '/read')['data']
    _expect(read == {'name': 'alice', 'city': 'Paris'},
            f'the first worker read {read!r} after a change in the second')
    # Each thread of a worker keeps its connection from one request to
    # the next: after a few rounds every thread has one, and each request
    # still sees what the other process committed just before it.
    for round_ in range(12):
        writer, reader = (first, second) if round_ % 2 else (second, first)
        alice.request(writer.url, '/set', {'round': str(round_)})
        read = alice.request(reader.url, '/read')['data']
        _expect(read.get('round') == str(round_),
                f'round {round_}: a worker read {read!r}, not what the other'
                ' process had just committed')

    stranger = SessionHTTPClient()
    read = stranger.request(first.url, '/read')['data']
    _expect(read is None, f'a new client read {read!r}')
    _expect(stranger.cookies == {}, 'reading gave a new client a cookie')


def check_concurrent_increments(first, second, increments,
                                threads_per_worker=2):
    """Threads in both workers increment one client's counter at once.

    Every increment must see a different value (none lost or repeated)
    and both workers must read the total. Returns the retries it took.
    """
    client = SessionHTTPClient()
    client.request(first.url, '/set', {'owner': 'carol'})
    replies = increment_concurrently(
        client, [first.url, second.url], increments, threads_per_worker)
    total = 2 * threads_per_worker * increments
    counters = sorted(reply['data']['counter'] for reply in replies)
    _expect(counters == list(range(1, total + 1)),
            f'increments saw {counters}, expected 1..{total}')
    pids = {reply['pid'] for reply in replies}
    _expect(pids == {first.process.pid, second.process.pid},
            f'replies came from processes {pids}')
    for worker in (first, second):
        read = client.request(worker.url, '/read')['data']
        _expect(read == {'owner': 'carol', 'counter': total},
                f'{worker.url} read {read!r}, expected counter {total}')
    return sum(reply['attempt'] for reply in replies)


def check_different_keys(first, second, changes):
    """Each worker changes its own key of one session, both at once.

    Different keys merge (on the ZEO server or in RelStorage's client),
    so no request needs a retry. Returns the retries it took (0).
    """
    client = SessionHTTPClient()
    client.request(first.url, '/set', {'owner': 'dave'})
    replies = post_concurrently(client, [
        (first.url, '/set', lambda number: {'first': str(number)}),
        (second.url, '/set', lambda number: {'second': str(number)}),
    ], changes)
    last = str(changes - 1)
    for worker in (first, second):
        read = client.request(worker.url, '/read')['data']
        _expect(read == {'owner': 'dave', 'first': last, 'second': last},
                f'{worker.url} read {read!r}')
    retries = sum(reply['attempt'] for reply in replies)
    _expect(retries == 0, f'changes of different keys took {retries} retries')
    return retries


def check_one_client_in_threads(url, threads=8, rounds=25):
    """``threads`` browsers sharing one client id hit one server at once.

    The application under ``url`` answers ``POST /increment`` (adds one
    to the session's ``n``; replies ``{"n": n}``), ``POST /set?key=K``
    with the form field ``value`` (sets K) and ``GET /read`` (replies
    ``{"data": {all keys}}``). One key changed by every thread (the
    counter) must end exact, each increment seeing a different value;
    keys each thread changes alone must all be kept.
    """
    client = SessionHTTPClient()
    client.request(url, '/set?key=owner', {'value': 'erin'})
    _expect(client.cookies, 'the server issued no cookie')
    replies = post_concurrently(
        client, [(url, '/increment', lambda number: {})] * threads, rounds)
    total = threads * rounds
    counters = sorted(reply['n'] for reply in replies)
    _expect(counters == list(range(1, total + 1)),
            f'increments saw {counters}, expected 1..{total}')
    post_concurrently(client, [
        (url, f'/set?key=k{thread}', lambda number: {'value': str(number)})
        for thread in range(threads)], rounds)
    read = client.request(url, '/read')['data']
    expected = dict({f'k{thread}': str(rounds - 1)
                     for thread in range(threads)}, owner='erin', n=total)
    _expect(read == expected, f'the session holds {read!r}, expected'
            f' {expected!r}')


class TokenWriters:
    """Clients that each store a new key per request in their session
    (``POST /set`` with ``t<n>=1``, ``n`` never reused) and keep a record
    a fault test checks the storage against: the keys sent, and the keys
    acknowledged (a 200 whose whole body came back and shows the key).

    Every answer is kept in ``answers`` as ``(status, Retry-After,
    seconds taken, monotonic time sent)``; a request that got no answer
    (connection refused or cut) is counted in ``lost``, anything else
    unexpected lands in ``errors``.
    """

    def __init__(self, clients=4):
        self.clients = [SessionHTTPClient() for _ in range(clients)]
        self.sent = [set() for _ in self.clients]
        self.acknowledged = [set() for _ in self.clients]
        self.answers = []
        self.lost = 0
        self.errors = []
        self._numbers = iter(range(10 ** 9))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def introduce(self, url):
        """Give every client its session (and cookie) through ``url``."""
        for number, client in enumerate(self.clients):
            status, _, body = client.send(url, '/set', {'owner': str(number)})
            _expect(status == 200, f'introducing client {number}: {status}'
                                   f' {body[:200]!r}')

    def start(self, url, pause=0.02, until_lost=False):
        """Start writing, one thread per client, until ``stop()`` (or,
        with ``until_lost``, until a request gets no answer).

        After a non-200 answer a thread waits ``pause`` seconds: a
        browser would honour Retry-After; a test cannot wait that long.
        """
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._write, args=(index, url, pause,
                                                       until_lost),
                             daemon=True)
            for index in range(len(self.clients))]
        for thread in self._threads:
            thread.start()

    def _write(self, index, url, pause, until_lost):
        client = self.clients[index]
        while not self._stop.is_set():
            with self._lock:
                key = f't{next(self._numbers)}'
                self.sent[index].add(key)
            started = time.monotonic()
            try:
                status, headers, body = client.send(
                    url, '/set', {key: '1'}, timeout=REQUEST_TIMEOUT)
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.lost += 1
                if until_lost:
                    return
                self._stop.wait(pause)
                continue
            except BaseException as exc:   # reported by the test
                with self._lock:
                    self.errors.append(exc)
                return
            taken = time.monotonic() - started
            with self._lock:
                self.answers.append(
                    (status, headers.get('Retry-After'), taken, started))
                if status == 200:
                    try:
                        stored = json.loads(body)['data']
                    except ValueError as exc:
                        self.errors.append(exc)
                        return
                    if stored.get(key) != '1':
                        self.errors.append(AssertionError(
                            f'the reply to {key} shows {stored!r}'))
                        return
                    self.acknowledged[index].add(key)
            if status != 200:
                self._stop.wait(pause)

    def stop(self, timeout=REQUEST_TIMEOUT):
        """Stop writing; returns once every thread has ended."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0, deadline - time.monotonic()))
        _expect(not any(thread.is_alive() for thread in self._threads),
                f'writer threads still run {timeout}s after stop()')
        _expect(not self.errors, f'writers failed: {self.errors!r}')

    def wait_until_lost(self, timeout=REQUEST_TIMEOUT):
        """With ``until_lost``: wait for every thread to end."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0, deadline - time.monotonic()))
        self.stop(0)

    def check(self, url):
        """Every acknowledged key is stored, and no key that was never
        sent. Returns how many keys are stored whose request got no 200
        (their commit happened, the answer did not arrive)."""
        unacknowledged_but_stored = 0
        for index, client in enumerate(self.clients):
            status, _, body = client.send(url, '/read')
            _expect(status == 200, f'reading client {index}: {status}'
                                   f' {body[:200]!r}')
            data = json.loads(body)['data'] or {}
            stored = {key for key in data if key.startswith('t')}
            missing = self.acknowledged[index] - stored
            _expect(not missing, f'client {index}: acknowledged writes'
                                 f' missing: {sorted(missing)}')
            invented = stored - self.sent[index]
            _expect(not invented, f'client {index}: stored keys that were'
                                  f' never sent: {sorted(invented)}')
            _expect(data.get('owner') == str(index),
                    f'client {index} reads owner {data.get("owner")!r}')
            unacknowledged_but_stored += len(stored - self.acknowledged[index])
        return unacknowledged_but_stored

    @property
    def acknowledged_count(self):
        return sum(len(keys) for keys in self.acknowledged)


def check_outage(worker, stop_server, start_server, retry_after,
                 clients=4, outage=3.0, timeout=REQUEST_TIMEOUT):
    """Stop the storage server under write traffic and start it again.

    While it is down, every session write gets a 503 with
    ``Retry-After: retry_after`` and ``/plain`` still works; a session
    read gets its data (ZEO may serve it from its cache) or a 503. Once
    it is back, writes succeed again, and every acknowledged write is
    stored. Nothing gets a traceback or goes unanswered. Returns figures:
    the slowest and the median 503, the slowest ``/plain``, the seconds
    from the server being back to the first write stored, and counts.
    """
    writers = TokenWriters(clients)
    writers.introduce(worker.url)
    writers.start(worker.url)
    wait_for(lambda: writers.acknowledged_count >= 10 * clients, timeout,
             'traffic before the outage')
    acknowledged_before = writers.acknowledged_count
    stop_server()
    down_since = time.monotonic()

    plain = []
    while time.monotonic() - down_since < outage:
        started = time.monotonic()
        status, _, body = writers.clients[0].send(worker.url, '/plain')
        plain.append(time.monotonic() - started)
        _expect((status, body) == (200, b'plain'),
                f'/plain answered {status} {body!r} while the server was'
                ' down')
        time.sleep(0.1)
    reader = writers.clients[-1]
    status, _, body = reader.send(worker.url, '/read')
    read_while_down = status
    if status == 200:
        stored = set(json.loads(body)['data'])
        missing = writers.acknowledged[-1] - stored
        _expect(not missing, f'a read while down lacks {sorted(missing)}')
    else:
        _expect(status == 503, f'a read while down answered {status}')

    back_since = time.monotonic()
    start_server()
    back_at = time.monotonic()

    def stored_since_back():
        return [started + taken for status, _, taken, started
                in list(writers.answers)
                if status == 200 and started >= back_at]
    wait_for(stored_since_back, timeout, 'a write after the restart')
    recovered_after = min(stored_since_back()) - back_at
    count = writers.acknowledged_count
    wait_for(lambda: writers.acknowledged_count >= count + 10 * clients,
             timeout, 'traffic after the restart')
    writers.stop()
    stored_in_doubt = writers.check(worker.url)

    down = [(status, retry, taken) for status, retry, taken, started
            in writers.answers
            if started >= down_since and started + taken <= back_since]
    _expect(down, 'no write was answered while the server was down')
    _expect(all(status == 503 and retry == str(retry_after)
                for status, retry, _ in down),
            f'answers while down: {sorted(set(a[:2] for a in down))}')
    statuses = {status for status, *_ in writers.answers}
    _expect(statuses <= {200, 503}, f'answers: {statuses}')
    _expect(writers.lost == 0, f'{writers.lost} requests got no answer')
    log = worker.log()
    # The drivers log their reconnections, tracebacks included; waitress
    # logs this when the application raised, and the client got a 500.
    _expect('Exception while serving' not in log,
            f'a request failed with a traceback:\n{log}')
    waits = sorted(taken for _, _, taken in down)
    return {
        'slowest_503': waits[-1],
        'median_503': waits[len(waits) // 2],
        'answers_503': sum(status == 503 for status, *_ in writers.answers),
        'slowest_plain': max(plain),
        'read_while_down': read_while_down,
        'recovered_after': recovered_after,
        'restart_took': back_at - back_since,
        'acknowledged_before': acknowledged_before,
        'acknowledged': writers.acknowledged_count,
        'stored_in_doubt': stored_in_doubt,
    }
