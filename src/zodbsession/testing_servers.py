"""Real servers for tests: a ZEO server and session workers, each in a
process of its own.

Every wait here is bounded, and every process is stopped (killed if it
will not stop) when its ``with`` block ends, so a failing test leaves
nothing running.

A *worker* is ``python -m zodbsession.testing_servers DB_URI``: the
``counter_app`` behind ``SessionMiddleware`` on that database, served by
waitress on a free port. ``SessionHTTPClient`` talks to workers like a
browser, carrying its cookie from one to the other.
"""
import contextlib
import functools
import http.client
import http.cookies
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from zodbsession.testing import run_in_threads

START_TIMEOUT = 60      # seconds a server may take to start listening
STOP_TIMEOUT = 10       # seconds it may take to stop before it is killed
REQUEST_TIMEOUT = 60    # seconds one HTTP request to a worker may take

TEST_PKG = 'zodbsession.testing'

# Workers retry conflicts this often. Several threads in two processes
# writing one key of one session take turns unfairly: a process whose
# cache is cold loses the race again and again (40 retries in a row have
# been seen), so the workload tests allow many; the request timeout still
# bounds them.
WORKER_RETRIES = 1000
READY = 'LISTENING'


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def child_environment():
    """os.environ for a child process that can import this zodbsession.

    The ZEO server needs it too: it resolves conflicts on SessionData by
    calling its ``_p_resolveConflict``.
    """
    env = dict(os.environ)
    source_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env['PYTHONPATH'] = os.pathsep.join(
        [source_root] + [p for p in [env.get('PYTHONPATH')] if p])
    return env


def _describe_exit(process, log_path):
    text = ''
    if log_path and os.path.exists(log_path):
        with open(log_path, errors='replace') as log:
            text = log.read()[-4000:]
    return (f'process {process.args!r} exited with'
            f' {process.returncode}:\n{text}')


def wait_for_port(port, process, log_path=None, timeout=START_TIMEOUT):
    """Wait until something accepts connections on ``port``.

    Fails early if ``process`` exits, and after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(_describe_exit(process, log_path))
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=1):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(
                f'nothing listened on port {port} within {timeout}s')
        time.sleep(0.05)


def stop_process(process, timeout=STOP_TIMEOUT):
    """Terminate ``process``; kill it if it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


class ZEOServer:
    """A ZEO server on a FileStorage that a test can stop and start again
    (same port, same file), to play an outage."""

    def __init__(self, directory, port=None):
        self.directory = directory
        self.port = port or free_port()
        self.log_path = os.path.join(directory, 'zeo.log')
        self.process = None

    @property
    def uri(self):
        return f'zeo://127.0.0.1:{self.port}'

    def start(self, timeout=START_TIMEOUT):
        """Start the server; returns once it accepts connections."""
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(
                [sys.executable, '-m', 'ZEO.runzeo',
                 '-a', f'127.0.0.1:{self.port}',
                 '-f', os.path.join(self.directory, 'zeo.fs')],
                stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=child_environment())
        try:
            wait_for_port(self.port, self.process, self.log_path, timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self):
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@contextlib.contextmanager
def zeo_server(directory=None, timeout=START_TIMEOUT):
    """Run a ZEO server on a FileStorage; yields its ``zeo://`` URI."""
    own_directory = directory is None
    if own_directory:
        directory = tempfile.mkdtemp(prefix='zodbsession-zeo-')
    server = ZEOServer(directory)
    try:
        server.start(timeout)
        yield server.uri
    finally:
        server.stop()
        if own_directory:
            import shutil
            shutil.rmtree(directory, ignore_errors=True)


class PostgresCluster:
    """A throwaway PostgreSQL cluster of a test's own, which it may stop
    and start (same port, same data) to play an outage.

    Uses the newest ``/usr/lib/postgresql/*/bin`` (Debian's layout) or
    ``initdb`` on PATH; as root the server runs as the ``postgres`` user,
    since PostgreSQL refuses to run as root. ``unavailable_reason()``
    says why a cluster cannot be made here (None if it can).
    """

    DATABASE = 'zodbsession_test'

    def __init__(self, directory, port=None):
        self.directory = directory
        self.data = os.path.join(directory, 'data')
        self.port = port or free_port()
        self.bin = self.find_bin()
        self.as_owner = (['runuser', '-u', 'postgres', '--']
                         if os.geteuid() == 0 else [])

    @staticmethod
    def find_bin():
        import glob
        import shutil

        def version(path):
            name = os.path.basename(os.path.dirname(path))
            return [int(part) for part in name.split('.') if part.isdigit()]
        for path in sorted(glob.glob('/usr/lib/postgresql/*/bin'),
                           key=version, reverse=True):
            if os.access(os.path.join(path, 'pg_ctl'), os.X_OK):
                return path
        initdb = shutil.which('initdb')
        return os.path.dirname(initdb) if initdb else None

    @classmethod
    def unavailable_reason(cls):
        import pwd
        if cls.find_bin() is None:
            return ('no PostgreSQL server binaries (initdb, pg_ctl) in'
                    ' /usr/lib/postgresql/*/bin or on PATH')
        if os.geteuid() == 0:
            try:
                pwd.getpwnam('postgres')
            except KeyError:
                return ("running as root, but there is no 'postgres' user"
                        ' to run a PostgreSQL cluster as')
        return None

    @property
    def dsn(self):
        return (f'dbname={self.DATABASE} user=postgres host=127.0.0.1'
                f' port={self.port}')

    def uri(self, connect_timeout=5):
        """The zodburi (RelStorage) URI of the test database."""
        return (f'postgres://postgres@127.0.0.1:{self.port}/'
                f'{self.DATABASE}?connect_timeout={connect_timeout}')

    def _run(self, program, *args, timeout=START_TIMEOUT):
        done = subprocess.run(
            self.as_owner + [os.path.join(self.bin, program), *args],
            cwd=self.directory, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            log = os.path.join(self.directory, 'server.log')
            tail = ''
            if os.path.exists(log):
                with open(log, errors='replace') as server_log:
                    tail = server_log.read()[-2000:]
            raise RuntimeError(
                f'{program} {" ".join(args)} failed ({done.returncode}):'
                f' {done.stdout}{done.stderr}{tail}')
        return done.stdout

    def create(self):
        """initdb, start, and create the test database."""
        if self.as_owner:
            import shutil
            shutil.chown(self.directory, 'postgres')
        # --no-sync: a throwaway cluster need not wait for the disk here;
        # the server itself runs with PostgreSQL's defaults (fsync on).
        self._run('initdb', '-D', self.data, '-U', 'postgres', '-A', 'trust',
                  '-E', 'UTF8', '--no-locale', '--no-sync')
        self.start()
        self._run('createdb', '-h', '127.0.0.1', '-p', str(self.port),
                  '-U', 'postgres', self.DATABASE)

    def start(self, timeout=START_TIMEOUT):
        """Start the server; returns once it accepts connections."""
        self._run('pg_ctl', '-D', self.data, '-w', '-t', str(timeout),
                  '-l', os.path.join(self.directory, 'server.log'),
                  '-o', f'-c listen_addresses=127.0.0.1 -p {self.port}'
                        f' -c unix_socket_directories={self.directory}',
                  'start', timeout=timeout + STOP_TIMEOUT)

    def stop(self, mode='fast'):
        """Stop the server: ``fast`` (roll back sessions and shut down
        cleanly) or ``immediate`` (no shutdown checkpoint: the next start
        recovers from the WAL, as after a crash)."""
        if os.path.exists(os.path.join(self.data, 'postmaster.pid')):
            self._run('pg_ctl', '-D', self.data, '-m', mode, '-w',
                      '-t', str(STOP_TIMEOUT), 'stop',
                      timeout=2 * STOP_TIMEOUT)

    def check_running(self):
        """Raise, with the server's log, unless it accepts connections."""
        import psycopg2
        try:
            psycopg2.connect(self.dsn, connect_timeout=5).close()
        except psycopg2.OperationalError as exc:
            log = os.path.join(self.directory, 'server.log')
            tail = ''
            if os.path.exists(log):
                with open(log, errors='replace') as server_log:
                    tail = server_log.read()[-3000:]
            running = os.path.exists(os.path.join(self.data, 'postmaster.pid'))
            raise RuntimeError(
                f'the test cluster on port {self.port} does not answer'
                f' (postmaster.pid {"present" if running else "absent"}):'
                f' {exc}\nserver log:\n{tail}') from exc

    def kill(self):
        """SIGKILL the postmaster, when pg_ctl could not stop it."""
        import signal
        try:
            with open(os.path.join(self.data, 'postmaster.pid')) as pid_file:
                os.kill(int(pid_file.readline()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


@contextlib.contextmanager
def postgres_cluster():
    """A running ``PostgresCluster``; stopped and removed on exit.

    Its directory is a new one in the system's temporary directory: the
    ``postgres`` user must reach it, and pytest's own are private to
    the user running the tests.
    """
    import shutil
    directory = tempfile.mkdtemp(prefix='zodbsession-pg-')
    cluster = PostgresCluster(directory)
    try:
        cluster.create()
        cluster.check_running()
        yield cluster
    finally:
        try:
            cluster.stop('immediate')
        except Exception:
            cluster.kill()
        shutil.rmtree(directory, ignore_errors=True)


class Worker:
    """A worker process; ``url`` is where it serves."""

    def __init__(self, process, url, log_path):
        self.process = process
        self.url = url
        self.log_path = log_path

    def log(self):
        with open(self.log_path, errors='replace') as log:
            return log.read()


def _read_ready_line(process, log_path, timeout):
    deadline = time.monotonic() + timeout
    buffered = b''
    while b'\n' not in buffered:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f'worker did not start within {timeout}s')
        ready, _, _ = select.select([process.stdout], [], [], remaining)
        if ready:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                process.wait(STOP_TIMEOUT)
                raise RuntimeError(_describe_exit(process, log_path))
            buffered += chunk
    line = buffered.split(b'\n', 1)[0].decode()
    if not line.startswith(READY + ' '):
        raise RuntimeError(f'unexpected worker output {line!r}')
    return int(line.split()[1])


@contextlib.contextmanager
def session_worker(db_uri, directory, retries=WORKER_RETRIES, threads=4,
                   timeout=START_TIMEOUT, **settings):
    """Run a worker process on ``db_uri``; yields a ``Worker``."""
    log_path = tempfile.mktemp(prefix='worker-', suffix='.log', dir=directory)
    args = [sys.executable, '-m', 'zodbsession.testing_servers', db_uri,
            f'retries={retries}', f'threads={threads}']
    args += [f'{name}={value}' for name, value in settings.items()]
    with open(log_path, 'wb') as log:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=log, env=child_environment())
    try:
        port = _read_ready_line(process, log_path, timeout)
        yield Worker(process, f'http://127.0.0.1:{port}', log_path)
    finally:
        stop_process(process)
        process.stdout.close()


class SessionHTTPClient:
    """A browser's cookie jar for talking to workers over HTTP.

    Cookies are not port-specific, so a cookie one worker set is sent to
    every worker, as a browser does behind a load balancer.
    """

    def __init__(self):
        self.cookies = {}
        self._lock = threading.Lock()

    def request(self, url, path, form=None):
        """GET (or POST ``form``) ``url + path``; returns the JSON reply."""
        outgoing = self._outgoing(url, path, form)
        with urllib.request.urlopen(
                outgoing, timeout=REQUEST_TIMEOUT) as reply:
            self._receive(reply.headers.get_all('Set-Cookie') or [])
            return json.loads(reply.read())

    def send(self, url, path, form=None, timeout=REQUEST_TIMEOUT):
        """Like ``request``, but any HTTP status is an answer: returns
        ``(status, headers, body bytes)``. Connection failures raise."""
        outgoing = self._outgoing(url, path, form)
        try:
            reply = urllib.request.urlopen(outgoing, timeout=timeout)
        except urllib.error.HTTPError as error:
            reply = error
        with reply:
            body = reply.read()
            self._receive(reply.headers.get_all('Set-Cookie') or [])
            return reply.status, reply.headers, body

    def _outgoing(self, url, path, form):
        """The request to send: a GET, or a POST of ``form``, with the
        cookies of earlier answers."""
        data = None if form is None else urllib.parse.urlencode(
            form).encode()
        outgoing = urllib.request.Request(url + path, data=data)
        with self._lock:
            if self.cookies:
                outgoing.add_header('Cookie', '; '.join(
                    f'{name}={value}' for name, value in self.cookies.items()))
        return outgoing

    def _receive(self, headers):
        with self._lock:
            for header in headers:
                for name, morsel in http.cookies.SimpleCookie(header).items():
                    if morsel['max-age'] == '0' or not morsel.value:
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value


def post_concurrently(client, jobs, repeat):
    """Run every job in a thread of its own, all at once; a job is
    ``(url, path, form_for(n))`` and POSTs ``repeat`` times, n = 0, 1, ...
    with ``client``'s cookie.

    Returns the replies; a failed request raises here.
    """
    replies = []
    lock = threading.Lock()
    start = threading.Barrier(len(jobs))

    def run(url, path, form_for):
        start.wait(REQUEST_TIMEOUT)
        for number in range(repeat):
            reply = client.request(url, path, form=form_for(number))
            with lock:
                replies.append(reply)

    run_in_threads([functools.partial(run, *job) for job in jobs],
                   REQUEST_TIMEOUT * (repeat + 1))
    return replies


def increment_concurrently(client, urls, increments, threads_per_url=1):
    """POST /increment ``increments`` times from each of
    ``threads_per_url`` threads per URL, all at once."""
    return post_concurrently(
        client, [(url, '/increment', lambda number: {})
                 for url in urls for _ in range(threads_per_url)],
        increments)


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


def wait_for(condition, timeout, what):
    """Poll ``condition()`` until true; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f'{what} did not happen within {timeout}s')
        time.sleep(0.02)


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


# -- the worker process -------------------------------------------------


def counter_app(environ, start_response):
    """A small session workload.

    ``POST /increment``: add one to the session's ``counter``;
    ``POST /set``: store the form's fields; ``GET /read``: the session's
    data (``null`` if the client has none). Every reply is JSON with the
    data, the attempt (0 unless retried) and the process id. ``GET
    /plain`` answers ``plain`` without touching the session.
    """
    from zodbsession.interfaces import ISession
    from zodbsession.wsgi import ATTEMPT_KEY
    from zodbsession.wsgi import REQUEST_KEY
    import webob

    request = webob.Request(environ)
    path = request.path_info
    if path == '/plain':
        # A page that never touches its session: it must work while the
        # storage server is down.
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'plain']
    session = ISession(environ[REQUEST_KEY])
    if path == '/increment' and request.method == 'POST':
        data = session[TEST_PKG]
        data['counter'] = data.get('counter', 0) + 1
        result = dict(data)
    elif path == '/set' and request.method == 'POST':
        data = session[TEST_PKG]
        data.update(request.POST.items())
        result = dict(data)
    elif path == '/read':
        data = session.get(TEST_PKG)
        result = None if data is None else dict(data)
    else:
        start_response('404 Not Found', [('Content-Type', 'text/plain')])
        return [b'not found']
    body = json.dumps({'data': result, 'attempt': environ[ATTEMPT_KEY],
                       'pid': os.getpid()}).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]


def counter_app_factory(global_conf, **local_conf):
    """PasteDeploy ``app_factory`` of ``counter_app``."""
    return counter_app


def serve_worker(argv):
    """``DB_URI [name=value ...]``: serve counter_app until terminated."""
    import signal
    import waitress.server
    from zodbsession.settings import parse_settings
    from zodbsession.wsgi import SessionMiddleware

    db_uri, pairs = argv[0], dict(arg.split('=', 1) for arg in argv[1:])
    threads = int(pairs.pop('threads', '4'))
    app = SessionMiddleware(counter_app, db_uri=db_uri,
                            **parse_settings(pairs))
    server = waitress.server.create_server(
        app, host='127.0.0.1', port=0, threads=threads)
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
    print(READY, server.effective_port, flush=True)
    try:
        server.run()
    finally:
        app.db.close()


if __name__ == '__main__':
    serve_worker(sys.argv[1:])
