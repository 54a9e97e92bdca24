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
import urllib.parse
import urllib.request

START_TIMEOUT = 60      # seconds a server may take to start listening
STOP_TIMEOUT = 10       # seconds it may take to stop before it is killed
REQUEST_TIMEOUT = 60    # seconds one HTTP request to a worker may take

TEST_PKG = 'zodbsession.testing'
READY = 'LISTENING'


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _describe_exit(process, log_path):
    text = ''
    if log_path and os.path.exists(log_path):
        with open(log_path, errors='replace') as log:
            text = log.read()[-4000:]
    return f'process {process.args!r} exited with {process.returncode}:\n{text}'


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


@contextlib.contextmanager
def zeo_server(directory=None, timeout=START_TIMEOUT):
    """Run a ZEO server on a FileStorage; yields its ``zeo://`` URI."""
    own_directory = directory is None
    if own_directory:
        directory = tempfile.mkdtemp(prefix='zodbsession-zeo-')
    port = free_port()
    log_path = os.path.join(directory, 'zeo.log')
    with open(log_path, 'wb') as log:
        process = subprocess.Popen(
            [sys.executable, '-m', 'ZEO.runzeo',
             '-a', f'127.0.0.1:{port}',
             '-f', os.path.join(directory, 'zeo.fs')],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process, log_path, timeout)
        yield f'zeo://127.0.0.1:{port}'
    finally:
        stop_process(process)
        if own_directory:
            import shutil
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
def session_worker(db_uri, directory, retries=50, threads=4,
                   timeout=START_TIMEOUT, **settings):
    """Run a worker process on ``db_uri``; yields a ``Worker``."""
    log_path = tempfile.mktemp(prefix='worker-', suffix='.log', dir=directory)
    args = [sys.executable, '-m', 'zodbsession.testing_servers', db_uri,
            f'retries={retries}', f'threads={threads}']
    args += [f'{name}={value}' for name, value in settings.items()]
    env = dict(os.environ)
    source_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env['PYTHONPATH'] = os.pathsep.join(
        [source_root] + [p for p in [env.get('PYTHONPATH')] if p])
    with open(log_path, 'wb') as log:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=log, env=env)
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
        data = None if form is None else urllib.parse.urlencode(
            form).encode()
        outgoing = urllib.request.Request(url + path, data=data)
        with self._lock:
            if self.cookies:
                outgoing.add_header('Cookie', '; '.join(
                    f'{name}={value}' for name, value in self.cookies.items()))
        with urllib.request.urlopen(outgoing, timeout=REQUEST_TIMEOUT) as reply:
            self._receive(reply.headers.get_all('Set-Cookie') or [])
            return json.loads(reply.read())

    def _receive(self, headers):
        with self._lock:
            for header in headers:
                for name, morsel in http.cookies.SimpleCookie(header).items():
                    if morsel['max-age'] == '0' or not morsel.value:
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value


def increment_concurrently(client, urls, increments, threads_per_url=1):
    """POST /increment ``increments`` times from each of
    ``threads_per_url`` threads per URL, all at once, with ``client``'s
    cookie.

    Returns the replies; a failed request raises here.
    """
    replies = []
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(len(urls) * threads_per_url)

    def run(url):
        try:
            start.wait(REQUEST_TIMEOUT)
            for _ in range(increments):
                reply = client.request(url, '/increment', form={})
                with lock:
                    replies.append(reply)
        except BaseException as exc:   # reported by the caller
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(url,), daemon=True)
               for url in urls for _ in range(threads_per_url)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(REQUEST_TIMEOUT * (increments + 1))
    if any(thread.is_alive() for thread in workers):
        raise TimeoutError('increment threads did not finish')
    if errors:
        raise errors[0]
    return replies


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


# -- the worker process -------------------------------------------------


def counter_app(environ, start_response):
    """A small session workload.

    ``POST /increment``: add one to the session's ``counter``;
    ``POST /set``: store the form's fields; ``GET /read``: the session's
    data (``null`` if the client has none). Every reply is JSON with the
    data, the attempt (0 unless retried) and the process id.
    """
    from zodbsession.interfaces import ISession
    from zodbsession.wsgi import ATTEMPT_KEY
    from zodbsession.wsgi import REQUEST_KEY
    import webob

    request = webob.Request(environ)
    session = ISession(environ[REQUEST_KEY])
    path = request.path_info
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
