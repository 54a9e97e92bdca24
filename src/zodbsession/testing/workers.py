"""Session workers for tests, each in a process of its own, and an HTTP
client that talks to them.

A *worker* is ``python -m zodbsession.testing.workers DB_URI``: the
``counter_app`` behind ``SessionMiddleware`` on that database, served by
waitress on a free port. ``SessionHTTPClient`` talks to workers like a
browser, carrying its cookie from one to the other. A worker is stopped
(killed if it will not stop) when its ``with`` block ends.
"""
import contextlib
import functools
import http.cookies
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from zodbsession.testing import run_in_threads
from zodbsession.testing.processes import REQUEST_TIMEOUT
from zodbsession.testing.processes import START_TIMEOUT
from zodbsession.testing.processes import STOP_TIMEOUT
from zodbsession.testing.processes import _describe_exit
from zodbsession.testing.processes import child_command
from zodbsession.testing.processes import child_environment
from zodbsession.testing.processes import stop_process

TEST_PKG = 'zodbsession.testing'

READY = 'LISTENING'


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
def session_worker(db_uri, directory, threads=4, timeout=START_TIMEOUT,
                   **settings):
    """Run a worker process on ``db_uri``; yields a ``Worker``.

    ``settings`` are SessionMiddleware's (``retries``, ``timeout``, ...);
    those not given keep their defaults, as a user's would.
    """
    log_path = tempfile.mktemp(prefix='worker-', suffix='.log', dir=directory)
    args = child_command('-m', 'zodbsession.testing.workers', db_uri,
                         f'threads={threads}')
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

    def send(self, url, path, form=None, timeout=REQUEST_TIMEOUT,
             headers=None):
        """Like ``request``, but any HTTP status is an answer: returns
        ``(status, headers, body bytes)``. Connection failures raise."""
        outgoing = self._outgoing(url, path, form, headers)
        try:
            reply = self._open(outgoing, timeout)
        except urllib.error.HTTPError as error:
            reply = error
        with reply:
            body = reply.read()
            self._receive(reply.headers.get_all('Set-Cookie') or [])
            return reply.status, reply.headers, body

    def _open(self, outgoing, timeout):
        return urllib.request.urlopen(outgoing, timeout=timeout)

    def _outgoing(self, url, path, form, headers=None):
        """The request to send: a GET, or a POST of ``form``, with
        ``headers`` and the cookies of earlier answers."""
        data = None if form is None else urllib.parse.urlencode(
            form).encode()
        outgoing = urllib.request.Request(url + path, data=data,
                                          headers=headers or {})
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


# -- the worker process -------------------------------------------------


def counter_app(environ, start_response):
    """A small session workload.

    ``POST /increment``: add one to the session's ``counter``;
    ``POST /set``: store the form's fields; ``GET /read``: the session's
    data (``null`` if the client has none); ``POST /login`` (``user``):
    log in (regenerate, store the user, ``remember_principal``); ``POST
    /revoke``: end the logged-in user's other sessions
    (``revoke_sessions``). Every reply is JSON with the
    data, the attempt (0 unless retried) and the process id. ``GET
    /plain`` answers ``plain`` without touching the session.
    """
    from zodbsession.interfaces import ISession
    from zodbsession.hosting.wsgi import ATTEMPT_KEY
    from zodbsession.hosting.wsgi import REQUEST_KEY
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
    elif path == '/login' and request.method == 'POST':
        from zodbsession.principals import remember_principal
        session.regenerate()
        data = session[TEST_PKG]
        data['user'] = request.POST['user']
        remember_principal(environ[REQUEST_KEY], data['user'])
        result = dict(data)
    elif path == '/revoke' and request.method == 'POST':
        from zodbsession.principals import revoke_sessions
        result = {'revoked': revoke_sessions(
            environ[REQUEST_KEY], session[TEST_PKG]['user'],
            keep_current=True)}
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
    from zodbsession.hosting.settings import parse_settings
    from zodbsession.hosting.wsgi import SessionMiddleware

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
