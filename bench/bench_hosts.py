"""Each host's read-write request against the peer it replaces.

A read-write request reads a counter from the session and writes it + 1,
for one of ``--clients`` browsers (round-robin), each carrying the
cookies its last answer set. Pairs, measured in the same run:

- Beaker: ``zodbsession.beaker.SessionMiddleware`` (``type = file``)
  against ``beaker.middleware.SessionMiddleware`` (``type = file``);
- Flask: ``zodbsession.flask.ZODBSession`` against Flask's default
  signed-cookie session and Flask-Session's filesystem backend;
- ASGI: ``zodbsession.asgi.SessionMiddleware`` under Starlette against
  Starlette's own (signed-cookie) ``SessionMiddleware``.

Applications are called directly (WSGI: an environ and a trivial
``start_response``; ASGI: a scope and in-memory ``receive``/``send`` on
one event loop), with no server, so what differs is the session work.
Variants run in interleaved batches, shuffled each round, so that a
noisy neighbour slows all alike; the table shows the median time per
request over the batches, and each peer's ratio to zodbsession's host.

On a disk every ZODB commit waits for fsync (Beaker's and
Flask-Session's files are not synced); ``--dir /dev/shm`` (tmpfs) shows
the libraries' own cost.

Run:  python bench/bench_hosts.py [--quick] [--rounds 10] [--batch 200]
      [--clients 100] [--dir /dev/shm]
"""
import argparse
import asyncio
import io
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'src'))
sys.path.insert(0, HERE)

from common import machine_info  # noqa: E402
from common import machine_line  # noqa: E402
from common import package_versions  # noqa: E402
from common import set_cookie_values  # noqa: E402
from common import write_json  # noqa: E402


class Browsers:
    """``count`` cookie jars, used round-robin."""

    def __init__(self, count):
        self.jars = [{} for _ in range(count)]
        self.turn = 0

    def next(self):
        jar = self.jars[self.turn % len(self.jars)]
        self.turn += 1
        return jar

    @staticmethod
    def header(jar):
        return '; '.join(f'{name}={value}' for name, value in jar.items())


# -- WSGI variants ----------------------------------------------------------


def wsgi_environ(path='/rw'):
    return {
        'REQUEST_METHOD': 'GET', 'SCRIPT_NAME': '', 'PATH_INFO': path,
        'QUERY_STRING': '', 'SERVER_NAME': 'bench', 'SERVER_PORT': '80',
        'SERVER_PROTOCOL': 'HTTP/1.1', 'HTTP_HOST': 'bench',
        'wsgi.url_scheme': 'http', 'wsgi.input': io.BytesIO(b''),
        'wsgi.errors': sys.stderr, 'wsgi.multithread': False,
        'wsgi.multiprocess': False, 'wsgi.run_once': False,
        'wsgi.version': (1, 0),
    }


class WSGIVariant:
    def __init__(self, app, browsers, check):
        self.app = app
        self.browsers = browsers
        self.base = wsgi_environ()
        self.check = check

    def request(self):
        jar = self.browsers.next()
        environ = dict(self.base)
        if jar:
            environ['HTTP_COOKIE'] = Browsers.header(jar)
        answer = []

        def start_response(status, headers, exc_info=None):
            answer[:] = [status, headers]

        body = b''.join(self.app(environ, start_response))
        if not answer[0].startswith('200'):
            raise RuntimeError(f'{answer[0]}: {body[:200]!r}')
        jar.update(set_cookie_values(answer[1]))
        return body

    def batch(self, count):
        for _ in range(count):
            self.request()


def beaker_counter(environ, start_response):
    session = environ['beaker.session']
    session['n'] = session.get('n', 0) + 1
    session.save()
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [str(session['n']).encode()]


def beaker_variants(directory, browsers):
    import beaker.middleware
    import zodbsession.beaker
    ours = zodbsession.beaker.SessionMiddleware(beaker_counter, {
        'session.type': 'file',
        'session.data_dir': os.path.join(directory, 'zodbsession-beaker')})
    theirs = beaker.middleware.SessionMiddleware(beaker_counter, {
        'session.type': 'file',
        'session.data_dir': os.path.join(directory, 'beaker'),
        'session.lock_dir': os.path.join(directory, 'beaker-lock')})
    return {
        'beaker: zodbsession.beaker': WSGIVariant(
            ours, browsers(), None),
        'beaker: Beaker file': WSGIVariant(theirs, browsers(), None),
    }


def flask_app(name, directory, setup):
    import flask
    app = flask.Flask(name, instance_path=directory)
    setup(app)

    @app.route('/rw')
    def rw():
        flask.session['n'] = flask.session.get('n', 0) + 1
        return str(flask.session['n'])

    return app


def flask_variants(directory, browsers):
    from zodbsession.flask import ZODBSession

    def ours(app):
        ZODBSession(app)

    def signed_cookie(app):
        app.secret_key = 'bench-secret-' + 'x' * 32

    def flask_session(app):
        import flask_session
        app.config.update(
            SESSION_TYPE='filesystem',
            SESSION_FILE_DIR=os.path.join(directory, 'flask-session'))
        flask_session.Session(app)

    return {
        'flask: zodbsession.flask': WSGIVariant(flask_app(
            'ours', os.path.join(directory, 'flask-ours'), ours),
            browsers(), None),
        'flask: signed cookie': WSGIVariant(flask_app(
            'cookie', os.path.join(directory, 'flask-cookie'),
            signed_cookie), browsers(), None),
        'flask: Flask-Session files': WSGIVariant(flask_app(
            'files', os.path.join(directory, 'flask-files'), flask_session),
            browsers(), None),
    }


# -- ASGI variants ------------------------------------------------------------


class ASGIVariant:
    def __init__(self, app, browsers, loop):
        self.app = app
        self.browsers = browsers
        self.loop = loop

    def request(self):
        return self.loop.run_until_complete(self._request())

    def batch(self, count):
        # One task for the batch: anyio keeps its worker threads while
        # the task that started them lives (as under a server's loop).
        async def requests():
            for _ in range(count):
                await self._request()

        self.loop.run_until_complete(requests())

    async def _request(self):
        jar = self.browsers.next()
        headers = [(b'host', b'bench')]
        if jar:
            headers.append((b'cookie', Browsers.header(jar).encode()))
        scope = {'type': 'http', 'asgi': {'version': '3.0'},
                 'http_version': '1.1', 'method': 'GET', 'scheme': 'http',
                 'path': '/rw', 'raw_path': b'/rw', 'query_string': b'',
                 'root_path': '', 'headers': headers,
                 'server': ('bench', 80), 'client': ('127.0.0.1', 1)}
        messages = []

        async def receive():
            return {'type': 'http.request', 'body': b'', 'more_body': False}

        async def send(message):
            messages.append(message)

        await self.app(scope, receive, send)
        start = messages[0]
        if start['status'] != 200:
            raise RuntimeError(f"status {start['status']}: {messages!r}")
        jar.update(set_cookie_values(
            (name.decode(), value.decode())
            for name, value in start['headers']))


def starlette_app(middleware):
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def rw(request):
        request.session['n'] = request.session.get('n', 0) + 1
        return PlainTextResponse(str(request.session['n']))

    return Starlette(routes=[Route('/rw', rw)], middleware=[middleware])


def asgi_variants(directory, browsers, loop):
    from starlette.middleware import Middleware
    from starlette.middleware.sessions import SessionMiddleware
    import zodbsession.asgi
    ours = starlette_app(Middleware(
        zodbsession.asgi.SessionMiddleware,
        db_uri=f'file://{directory}/asgi/sessions.fs'))
    theirs = starlette_app(Middleware(
        SessionMiddleware, secret_key='bench-secret-' + 'x' * 32))
    return {
        'asgi: zodbsession.asgi': ASGIVariant(ours, browsers(), loop),
        'asgi: Starlette signed cookie': ASGIVariant(
            theirs, browsers(), loop),
    }


# -- the driver ------------------------------------------------------------

PAIRS = {
    'beaker: Beaker file': 'beaker: zodbsession.beaker',
    'flask: signed cookie': 'flask: zodbsession.flask',
    'flask: Flask-Session files': 'flask: zodbsession.flask',
    'asgi: Starlette signed cookie': 'asgi: zodbsession.asgi',
}


def drive(args, directory):
    loop = asyncio.new_event_loop()

    def browsers():
        return Browsers(args.clients)

    variants = {}
    variants.update(beaker_variants(directory, browsers))
    variants.update(flask_variants(directory, browsers))
    variants.update(asgi_variants(directory, browsers, loop))
    # Every browser gets its session (and cookie) before timing.
    for variant in variants.values():
        variant.batch(args.clients)
    timings = {name: [] for name in variants}
    order = list(variants)
    shuffle = random.Random(7)
    for _ in range(args.rounds):
        shuffle.shuffle(order)
        for name in order:
            variant = variants[name]
            started = time.perf_counter()
            variant.batch(args.batch)
            timings[name].append(
                (time.perf_counter() - started) / args.batch)
    loop.close()
    return {name: statistics.median(values)
            for name, values in timings.items()}


VERSIONS = ('zodbsession', 'ZODB', 'Beaker', 'Flask', 'Flask-Session',
            'starlette')


def report(medians, args, directory):
    """Print the table and the ratios; keep them in bench/out/hosts.json
    for bench/report.py."""
    versions = package_versions(*VERSIONS)
    print(machine_line())
    print('versions:', ', '.join(
        f'{name} {version}' for name, version in versions.items()))
    print(f'storage directory: {directory}; {args.clients} browsers,'
          f' {args.rounds} rounds x {args.batch} requests per variant')
    print()
    print(f'{"read-write request":38} {"median µs":>10}')
    for name, seconds in medians.items():
        print(f'{name:38} {seconds * 1e6:10.0f}')
    print()
    print('ratios (peer time / zodbsession host time; > 1: ours is faster)')
    for peer, ours in PAIRS.items():
        print(f'  {peer:36} / {ours}: {medians[peer] / medians[ours]:.2f}')
    write_json('hosts.json', {
        'machine': machine_info(), 'versions': versions,
        'settings': {'rounds': args.rounds, 'batch': args.batch,
                     'clients': args.clients, 'dir': args.dir},
        'median_seconds': medians,
        'ratios': {f'{peer} / {ours}': medians[peer] / medians[ours]
                   for peer, ours in PAIRS.items()}})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='3 rounds x 50 requests, 20 browsers')
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument('--batch', type=int, default=200)
    parser.add_argument('--clients', type=int, default=100)
    parser.add_argument('--dir', default=None,
                        help='where the stores live (default: a temporary'
                             ' directory)')
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.batch, args.clients = 3, 50, 20
    directory = tempfile.mkdtemp(prefix='bench-hosts-', dir=args.dir)
    try:
        medians = drive(args, directory)
        report(medians, args, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == '__main__':
    main()
