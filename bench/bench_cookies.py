"""Client-side sessions: one read-write request whose data is in a cookie.

Each request reads a counter from the session cookie it carries, writes
the counter + 1, and gets a new cookie back:

* zodbsession, signed: ``SessionMiddleware`` called directly as a WSGI
  application (a prepared environ, a trivial ``start_response``), the
  package in a ``CookieSessionDataContainer``; the database is a
  FileStorage in a temporary directory (it is never written to);
* Pyramid 2.1, signed: ``SignedCookieSessionFactory`` through Pyramid's
  own objects, as its router uses them: a ``pyramid.request.Request`` on
  the prepared environ (built once with ``Request.blank``), ``session =
  factory(request)``, ``session['n'] += 1``, then the response callbacks
  run onto a ``pyramid.response.Response``;
* zodbsession, encrypted: as above with an AES-256-GCM key;
* Beaker 1.14, encrypted: Beaker's ``SessionMiddleware`` with
  ``session.type = cookie``, ``encrypt_key`` and ``validate_key`` (its
  crypto backend is reported: ``cryptography`` when installed), JSON
  data, the application calling ``session.save()``.

Every peer runs in this one process, set up once; rounds interleave the
peers (rotating their order) and the figure per peer is the median over
rounds of the mean time per request. Ratios are peer time / zodbsession
time (above 1: zodbsession is faster). Results go to bench/out/cookies.json.

Run:  python bench/bench_cookies.py [--quick] [--rounds 15] [--requests 2000]
      [--profile] [--output cookies.json]
"""
import argparse
import gc
import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

PKG_ID = 'bench.counter'
SECRET = 'bench-cookie-secret-not-for-production'
VALIDATE_KEY = 'bench-validate-key-not-for-production'


def _start_response(status, headers, exc_info=None):
    return None


def _cookie_header(cookies):
    return '; '.join(f'{name}={value}' for name, value in cookies.items())


def _base_environ(cookie_header):
    environ = {
        'REQUEST_METHOD': 'GET', 'SCRIPT_NAME': '', 'PATH_INFO': '/',
        'QUERY_STRING': '', 'SERVER_NAME': 'localhost', 'SERVER_PORT': '80',
        'SERVER_PROTOCOL': 'HTTP/1.1', 'wsgi.url_scheme': 'http',
        'wsgi.input': io.BytesIO(b''), 'wsgi.errors': sys.stderr,
        'wsgi.version': (1, 0), 'wsgi.multithread': False,
        'wsgi.multiprocess': False, 'wsgi.run_once': False,
    }
    if cookie_header:
        environ['HTTP_COOKIE'] = cookie_header
    return environ


class WSGIPeer:
    """A WSGI application driven with a prepared environ.

    ``counter(headers)`` reads the counter back from a response's
    cookies (for the correctness check before timing).
    """

    def __init__(self, app):
        self.app = app
        self.environ = None

    def call(self, environ):
        captured = []

        def start_response(status, headers, exc_info=None):
            captured.append(headers)
        body = self.app(environ, start_response)
        b''.join(body)
        close = getattr(body, 'close', None)
        if close is not None:
            close()
        return captured[0]

    def prepare(self):
        """First request: get the cookies every timed request carries."""
        headers = self.call(_base_environ(None))
        self.cookies = common.set_cookie_values(headers)
        self.environ = _base_environ(_cookie_header(self.cookies))

    def check(self):
        """Two requests on the prepared cookies must both write n + 1."""
        for _ in range(2):
            headers = self.call(dict(self.environ))
            self.check_counter(common.set_cookie_values(headers))

    def one_request(self):
        environ = dict(self.environ)
        body = self.app(environ, _start_response)
        for _chunk in body:
            pass


# -- zodbsession --------------------------------------------------------------

class ZodbsessionPeer(WSGIPeer):

    def __init__(self, directory, encrypted):
        from zodbsession import CookieSessionDataContainer
        from zodbsession import ISession
        from zodbsession.cookiecodec import generate_encryption_key
        from zodbsession.site import change_site
        from zodbsession.wsgi import SessionMiddleware

        self.opened_connection = []

        def app(environ, start_response):
            data = ISession(environ['zodbsession.request'])[PKG_ID]
            data['n'] = data.get('n', 0) + 1
            self.opened_connection.append(environ['zodbsession.site'].opened)
            start_response('200 OK', [('Content-Type', 'text/plain')])
            return [b'ok']

        name = 'cookies-encrypted.fs' if encrypted else 'cookies-signed.fs'
        self.db = common.open_filestorage_db(os.path.join(directory, name))
        middleware = SessionMiddleware(app, db=self.db, secret=SECRET)
        self.container = CookieSessionDataContainer(
            secret=SECRET, cookie_name='bench_data',
            encryption_key=generate_encryption_key() if encrypted else None)
        change_site(self.db, lambda site: site.register_container(
            PKG_ID, self.container))
        super().__init__(middleware)
        self.prepare()
        self.last_transaction = self.db.storage.lastTransaction()

    def check_counter(self, cookies):
        document = self.container.codec.decode(cookies['bench_data'])
        assert document['d'] == {PKG_ID: {'n': 2}}, document

    def writes_to_storage(self):
        return self.db.storage.lastTransaction() != self.last_transaction

    def close(self):
        self.db.close()


# -- Pyramid ------------------------------------------------------------------

class PyramidPeer:
    """SignedCookieSessionFactory through Pyramid's request and response."""

    def __init__(self):
        from pyramid.request import Request
        from pyramid.response import Response
        from pyramid.session import SignedCookieSessionFactory
        self.Request, self.Response = Request, Response
        self.factory = SignedCookieSessionFactory(
            SECRET, cookie_name='session', httponly=True)
        first = self._request(Request.blank('/').environ)
        self.cookies = common.set_cookie_values(first.headerlist)
        self.environ = Request.blank(
            '/', headers={'Cookie': _cookie_header(self.cookies)}).environ

    def _request(self, environ):
        request = self.Request(environ)
        session = self.factory(request)
        session['n'] = session.get('n', 0) + 1
        response = self.Response()
        # What Pyramid's router does after the view returned.
        request._process_response_callbacks(response)
        return response

    def one_request(self):
        self._request(dict(self.environ))

    def check(self):
        for _ in range(2):
            response = self._request(dict(self.environ))
            request = self.Request.blank('/', headers={
                'Cookie': _cookie_header(common.set_cookie_values(
                    response.headerlist))})
            assert self.factory(request)['n'] == 2

    def close(self):
        pass


# -- Beaker -------------------------------------------------------------------

class BeakerPeer(WSGIPeer):
    """Beaker's SessionMiddleware with encrypted cookie-only sessions."""

    def __init__(self):
        from beaker.middleware import SessionMiddleware

        def app(environ, start_response):
            session = environ['beaker.session']
            session['n'] = session.get('n', 0) + 1
            session.save()
            start_response('200 OK', [('Content-Type', 'text/plain')])
            return [b'ok']

        self.options = {
            'session.type': 'cookie',
            'session.key': 'beaker_data',
            'session.encrypt_key': SECRET,
            'session.validate_key': VALIDATE_KEY,
            'session.data_serializer': 'json',
            'session.httponly': True,
        }
        super().__init__(SessionMiddleware(app, self.options))
        self.prepare()

    def check_counter(self, cookies):
        from beaker.session import CookieSession
        request = {'cookie': f"beaker_data={cookies['beaker_data']}"}
        session = CookieSession(
            request, key='beaker_data', encrypt_key=SECRET,
            validate_key=VALIDATE_KEY, data_serializer='json')
        assert session['n'] == 2, dict(session)

    @staticmethod
    def crypto_backend():
        from beaker.crypto import get_crypto_module
        return get_crypto_module('default').__name__

    def close(self):
        pass


# -- driver -------------------------------------------------------------------

PAIRS = [
    # (label of the comparison, ours, theirs)
    ('signed cookie, read + write', 'zodbsession signed', 'pyramid signed'),
    ('encrypted cookie, read + write', 'zodbsession encrypted',
     'beaker encrypted'),
]


def make_peers(directory):
    return {
        'zodbsession signed': ZodbsessionPeer(directory, encrypted=False),
        'pyramid signed': PyramidPeer(),
        'zodbsession encrypted': ZodbsessionPeer(directory, encrypted=True),
        'beaker encrypted': BeakerPeer(),
    }


def time_batch(peer, requests):
    one_request = peer.one_request
    gc.collect()
    start = time.perf_counter()
    for _ in range(requests):
        one_request()
    return (time.perf_counter() - start) / requests


def profile(peer, requests, limit=25):
    def serve():
        for _ in range(requests):
            peer.one_request()
    return common.profile_text(serve, limit, ('tottime', 'cumulative'))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='few rounds and requests: a smoke test')
    parser.add_argument('--rounds', type=int, default=None)
    parser.add_argument('--requests', type=int, default=None,
                        help='requests per peer per round')
    parser.add_argument('--profile', action='store_true',
                        help='also print a cProfile of each zodbsession peer')
    parser.add_argument('--output', default='cookies.json',
                        help='file name in bench/out (default: cookies.json)')
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 15)
    requests = args.requests or (200 if args.quick else 2000)

    with common.temp_dir() as directory:
        peers = make_peers(directory)
        try:
            for peer in peers.values():
                peer.check()
            for _ in range(max(1, requests // 10)):      # warm caches
                for peer in peers.values():
                    peer.one_request()

            samples = {name: [] for name in peers}
            names = list(peers)
            for round_number in range(rounds):
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    samples[name].append(time_batch(peers[name], requests))
                common.progress(f'round {round_number + 1}/{rounds} done')

            ours = [peers['zodbsession signed'],
                    peers['zodbsession encrypted']]
            storage_written = any(peer.writes_to_storage() for peer in ours)
            opened = all(all(peer.opened_connection) for peer in ours)
            profiles = {}
            if args.profile:
                for name in ('zodbsession signed', 'zodbsession encrypted'):
                    profiles[name] = profile(peers[name], requests)
        finally:
            for peer in peers.values():
                peer.close()

    results = {name: common.summary(values)
               for name, values in samples.items()}
    comparisons = []
    for label, ours_name, theirs_name in PAIRS:
        ours_median = results[ours_name]['median']
        theirs_median = results[theirs_name]['median']
        comparisons.append({
            'comparison': label, 'ours': ours_name, 'theirs': theirs_name,
            'ours_median_s': ours_median, 'theirs_median_s': theirs_median,
            'ratio_theirs_over_ours': common.ratio(theirs_median,
                                                   ours_median),
            'target': 'ours faster',
            'met': ours_median < theirs_median,
        })

    info = common.machine_info()
    print(common.machine_line(info))
    print(f'{rounds} interleaved rounds x {requests} requests per peer;'
          ' median of per-round means')
    print(common.format_table(
        ['peer', 'median / request', 'min', 'max'],
        [[name, common.format_seconds(r['median']),
          common.format_seconds(r['min']), common.format_seconds(r['max'])]
         for name, r in results.items()]))
    print()
    print(common.format_table(
        ['comparison', 'theirs / ours', 'target met'],
        [[f"{c['comparison']}: {c['theirs']} vs {c['ours']}",
          f"{c['ratio_theirs_over_ours']:.2f}x", 'yes' if c['met'] else 'NO']
         for c in comparisons]))
    print(f'zodbsession wrote to storage during timing: {storage_written}')
    print('zodbsession opened a ZODB connection for cookie-only requests:'
          f' {opened}')
    beaker_backend = BeakerPeer.crypto_backend()
    print(f'beaker crypto backend: {beaker_backend}')
    for name, text in profiles.items():
        print(f'\n-- profile: {name} ({requests} requests) --\n{text}')

    path = common.write_json(args.output, {
        'benchmark': 'cookies',
        'machine': info,
        'versions': common.package_versions(
            'zodbsession', 'pyramid', 'Beaker', 'cryptography', 'WebOb',
            'ZODB'),
        'beaker_crypto_backend': beaker_backend,
        'rounds': rounds, 'requests_per_round': requests,
        'quick': args.quick,
        'results': results,
        'comparisons': comparisons,
        'zodbsession_wrote_to_storage': storage_written,
        'zodbsession_opened_zodb_connection': opened,
    })
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
