"""Client-side sessions: one request whose data is in a cookie.

Each read-write request reads a counter from the session cookie it
carries, writes the counter + 1, and gets a new cookie back:

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

Each read-only request reads the counter and changes nothing; the
client's cookies are those a returning client holds, issued within the
cookie's resolution, so nothing needs re-sending (before each timed batch
the client writes once, untimed, to get fresh cookies):

* zodbsession, signed read-only: as the signed peer above, the
  application only reading ``data['n']``; every timed response is checked
  to carry no Set-Cookie, and the storage to receive no transaction;
* Pyramid 2.1, signed read-only: as the Pyramid peer above, reading
  ``session['n']``, with ``reissue_time`` set to the container's
  resolution (60 s) so Pyramid, too, re-sends nothing (at its default, 0,
  it re-signs the cookie once the cookie is a second old); its responses
  are checked the same way.

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
# A read-only peer's application writes on this path only (the untimed
# request that gives its client fresh cookies).
WRITE_PATH = '/write'
# CookieSessionDataContainer's default resolution: the Pyramid read-only
# peer re-sends its cookie no more often than ours.
READ_ONLY_REISSUE_TIME = 60


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


class Peer:
    """Hooks the driver calls around each timed batch (untimed)."""

    def before_batch(self):
        pass

    def after_batch(self):
        pass


class ReadOnlyChecks:
    """What a read-only peer's timed responses are checked for."""

    def __init__(self):
        self.sent = []               # header lists of the current batch
        self.responses = 0           # timed responses checked
        self.set_cookie_responses = 0

    def record(self, headers):
        self.sent.append(headers)

    def check_batch(self):
        for headers in self.sent:
            if common.set_cookie_values(headers):
                self.set_cookie_responses += 1
        self.responses += len(self.sent)
        self.sent = []


class WSGIPeer(Peer):
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

    def __init__(self, directory, encrypted, read_only=False):
        from zodbsession import CookieSessionDataContainer
        from zodbsession import ISession
        from zodbsession.cookiecodec import generate_encryption_key
        from zodbsession.site import change_site
        from zodbsession.wsgi import SessionMiddleware

        self.opened_connection = []
        self.read_only = read_only
        self.last_read = None

        def app(environ, start_response):
            data = ISession(environ['zodbsession.request'])[PKG_ID]
            if read_only and environ['PATH_INFO'] != WRITE_PATH:
                self.last_read = data['n']
            else:
                data['n'] = data.get('n', 0) + 1
            self.opened_connection.append(environ['zodbsession.context'].site.opened)
            start_response('200 OK', [('Content-Type', 'text/plain')])
            return [b'ok']

        name = 'cookies-encrypted.fs' if encrypted else 'cookies-signed.fs'
        if read_only:
            name = 'cookies-signed-read-only.fs'
        self.db = common.open_filestorage_db(os.path.join(directory, name))
        middleware = SessionMiddleware(app, db=self.db, secret=SECRET)
        self.container = CookieSessionDataContainer(
            secret=SECRET, cookie_name='bench_data',
            encryption_key=generate_encryption_key() if encrypted else None)
        change_site(self.db, lambda site: site.register_container(
            PKG_ID, self.container))
        super().__init__(middleware)
        if read_only:
            self.checks = ReadOnlyChecks()
            self.batch_wrote = False
            environ = _base_environ(None)
            environ['PATH_INFO'] = WRITE_PATH
            self.cookies = common.set_cookie_values(self.call(environ))
            self.environ = _base_environ(_cookie_header(self.cookies))
        else:
            self.prepare()
        self.last_transaction = self.db.storage.lastTransaction()

    def check_counter(self, cookies):
        document = self.container.codec.decode(cookies['bench_data'])
        assert document['d'] == {PKG_ID: {'n': 2}}, document

    def writes_to_storage(self):
        return self.db.storage.lastTransaction() != self.last_transaction

    # -- read-only -------------------------------------------------------

    def refresh(self):
        """The client writes once: its data cookie is issued now."""
        environ = dict(self.environ)
        environ['PATH_INFO'] = WRITE_PATH
        self.cookies.update(common.set_cookie_values(self.call(environ)))
        self.environ = _base_environ(_cookie_header(self.cookies))
        return self.cookies

    def check(self):
        if not self.read_only:
            return super().check()
        before = self.db.storage.lastTransaction()
        expected = self.last_read_expected()
        for _ in range(2):
            headers = self.call(dict(self.environ))
            assert not common.set_cookie_values(headers), headers
            assert self.last_read == expected, (self.last_read, expected)
        assert self.db.storage.lastTransaction() == before, \
            'a read-only cookie request wrote to the storage'

    def last_read_expected(self):
        document = self.container.codec.decode(self.cookies['bench_data'])
        return document['d'][PKG_ID]['n']

    def before_batch(self):
        if self.read_only:
            self.refresh()
            self.batch_transaction = self.db.storage.lastTransaction()

    def after_batch(self):
        if self.read_only:
            self.checks.check_batch()
            if self.db.storage.lastTransaction() != self.batch_transaction:
                self.batch_wrote = True

    def one_request(self):
        if not self.read_only:
            return super().one_request()
        body = self.app(dict(self.environ), self.checks_start_response)
        for _chunk in body:
            pass

    def checks_start_response(self, status, headers, exc_info=None):
        self.checks.record(headers)

    def close(self):
        self.db.close()


# -- Pyramid ------------------------------------------------------------------

class PyramidPeer(Peer):
    """SignedCookieSessionFactory through Pyramid's request and response."""

    def __init__(self, read_only=False):
        from pyramid.request import Request
        from pyramid.response import Response
        from pyramid.session import SignedCookieSessionFactory
        self.Request, self.Response = Request, Response
        self.read_only = read_only
        self.last_read = None
        options = {}
        if read_only:
            # Re-send no more often than zodbsession's cookie does.
            options['reissue_time'] = READ_ONLY_REISSUE_TIME
            self.checks = ReadOnlyChecks()
        self.factory = SignedCookieSessionFactory(
            SECRET, cookie_name='session', httponly=True, **options)
        first = self._request(Request.blank(WRITE_PATH).environ)
        self.cookies = common.set_cookie_values(first.headerlist)
        self.environ = Request.blank(
            '/', headers={'Cookie': _cookie_header(self.cookies)}).environ

    def _request(self, environ):
        request = self.Request(environ)
        session = self.factory(request)
        if self.read_only and environ['PATH_INFO'] != WRITE_PATH:
            self.last_read = session['n']
        else:
            session['n'] = session.get('n', 0) + 1
        response = self.Response()
        # What Pyramid's router does after the view returned.
        request._process_response_callbacks(response)
        return response

    def one_request(self):
        response = self._request(dict(self.environ))
        if self.read_only:
            self.checks.record(response.headerlist)

    def before_batch(self):
        if self.read_only:
            environ = dict(self.environ)
            environ['PATH_INFO'] = WRITE_PATH
            self.cookies = common.set_cookie_values(
                self._request(environ).headerlist)
            self.environ = self.Request.blank('/', headers={
                'Cookie': _cookie_header(self.cookies)}).environ

    def after_batch(self):
        if self.read_only:
            self.checks.check_batch()

    def check(self):
        if self.read_only:
            expected = self.factory(self.Request.blank('/', headers={
                'Cookie': _cookie_header(self.cookies)}))['n']
            for _ in range(2):
                response = self._request(dict(self.environ))
                assert not common.set_cookie_values(response.headerlist)
                assert self.last_read == expected
            return
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
    ('signed cookie, read only', 'zodbsession signed read-only',
     'pyramid signed read-only'),
    ('encrypted cookie, read + write', 'zodbsession encrypted',
     'beaker encrypted'),
]
READ_ONLY = ('zodbsession signed read-only', 'pyramid signed read-only')


def make_peers(directory):
    return {
        'zodbsession signed': ZodbsessionPeer(directory, encrypted=False),
        'pyramid signed': PyramidPeer(),
        'zodbsession signed read-only': ZodbsessionPeer(
            directory, encrypted=False, read_only=True),
        'pyramid signed read-only': PyramidPeer(read_only=True),
        'zodbsession encrypted': ZodbsessionPeer(directory, encrypted=True),
        'beaker encrypted': BeakerPeer(),
    }


def time_batch(peer, requests):
    peer.before_batch()
    one_request = peer.one_request
    gc.collect()
    start = time.perf_counter()
    for _ in range(requests):
        one_request()
    elapsed = time.perf_counter() - start
    peer.after_batch()
    return elapsed / requests


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
            for peer in peers.values():                  # warm caches
                peer.before_batch()
                for _ in range(max(1, requests // 10)):
                    peer.one_request()
                peer.after_batch()

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
            ours_ro = peers['zodbsession signed read-only']
            opened = all(all(peer.opened_connection)
                         for peer in ours + [ours_ro])
            read_only = {name: {
                'responses_checked': peers[name].checks.responses,
                'responses_with_set_cookie':
                    peers[name].checks.set_cookie_responses}
                for name in READ_ONLY}
            read_only['zodbsession signed read-only'][
                'wrote_to_storage'] = ours_ro.batch_wrote
            profiles = {}
            if args.profile:
                for name in ('zodbsession signed',
                             'zodbsession signed read-only',
                             'zodbsession encrypted'):
                    peer = peers[name]
                    peer.before_batch()
                    profiles[name] = profile(peer, requests)
                    peer.after_batch()
        finally:
            for peer in peers.values():
                peer.close()

    results = {name: common.summary(values)
               for name, values in samples.items()}
    comparisons = []
    for label, ours_name, theirs_name in PAIRS:
        ours_median = results[ours_name]['median']
        theirs_median = results[theirs_name]['median']
        # A read-only figure counts only if both did only the reading.
        same_work = all(
            not read_only[name]['responses_with_set_cookie']
            and not read_only[name].get('wrote_to_storage')
            for name in (ours_name, theirs_name) if name in read_only)
        comparisons.append({
            'comparison': label, 'ours': ours_name, 'theirs': theirs_name,
            'ours_median_s': ours_median, 'theirs_median_s': theirs_median,
            'ratio_theirs_over_ours': common.ratio(theirs_median,
                                                   ours_median),
            'target': 'ours faster',
            'met': same_work and ours_median < theirs_median,
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
    for name, found in read_only.items():
        line = (f"{name}: {found['responses_with_set_cookie']} of"
                f" {found['responses_checked']} responses (warm-up and timed)"
                ' sent Set-Cookie')
        if 'wrote_to_storage' in found:
            line += f"; wrote to storage: {found['wrote_to_storage']}"
        print(line)
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
        'read_only': read_only,
        'pyramid_read_only_reissue_time': READ_ONLY_REISSUE_TIME,
    })
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
