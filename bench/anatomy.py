"""Where the time of a request goes, step by step, against its target.

Three requests miss their targets in ``make bench``: the read-only
request of an existing client (bench_requests.py ``ro``: at most 1.3x the
bare ZODB floor), a new client's request (``new``: at most 1.5x the
read-write floor) and the read-write request whose data is in a signed
cookie (bench_cookies.py: faster than Pyramid's
``SignedCookieSessionFactory``). This script takes each apart. Every row
is a request, or the part of one named, run in this one process with the
same peers the benchmarks use; rounds interleave the rows, and each
figure is the median over rounds of the mean time per call, so that the
rows can be compared with each other and with the budget the target
leaves.

Read-only request (10,000 sessions, ``--sessions``; FileStorage under
``--dir``, tmpfs by default so that no fsync blurs the figures):

- floor: bench_requests' floor (begin, open, read one object, abort,
  close);
- floor without its transaction: open, read, close;
- zodbsession's storage work alone: on a connection kept open (as the
  middleware keeps one per thread, its cache warm), brought up to date as
  a transaction's start does (``newTransaction``), the container by its
  object id, the client's session, the counter (no WSGI, no cookie, no
  registry, no transaction);
- the middleware around an application that does not touch the session;
  then one that only opens the request's connection; then one that only
  reads the (signed) client id;
- the whole request.

Signed-cookie request:

- Pyramid: bench_cookies' Pyramid peer;
- the same work as one bare WSGI function: verify the client id's
  signature, verify and decode the data cookie, add 1, encode and sign it,
  set the cookie (no framework, no transaction);
- a transaction with one data manager that does nothing: join, commit;
- the middleware around an application that does not touch the session;
- the middleware around an application whose only work is to join a
  data manager that does nothing to the request's transaction (the
  transactional frame of every request that changes something);
- the middleware, its transaction and the cookie work fused into one
  application with one data manager: what any design that keeps our
  frame, our transaction and our remembered cookie reads costs at least
  (the client id through the manager; the data cookie verified and
  decoded once, then remembered, as the container does; add 1; at the
  vote the canonical JSON encoded and signed; at the finish the cookie
  put in the response's pending cookies; no ISession, no Session, no
  session data objects);
- the same fused work with no transaction (the vote and the finish
  called in turn): beside the row above, what the transaction, which
  keeps the cookie only if the request's transaction commits, costs in
  the request;
- the whole request (bench_cookies' zodbsession peer, signed).

Signed-cookie read-only request (bench_cookies.py's read-only peers),
along the request context's path:

- Pyramid: bench_cookies' Pyramid read-only peer;
- the middleware around an application that does not touch the session;
  then one that only asks ``ISession(request)`` (the context's Session);
  then one that also reads the client id; then one that also gets the
  package's data (the data cookie read: remembered when the client sent
  the same value before, else verified and decoded);
- the whole request.

New client (bench_requests.py ``new``: at most 1.5x the read-write floor),
on a disk (``--disk-dir``, the temporary directory by default), where
commits wait for fsync as in the benchmark:

- floor: bench_requests' read-write floor (one small object changed);
- ZODB alone attaching one new small object to an existing one: two
  records written, one of them new, as a new session writes, but no
  index to file the new one in;
- ZODB alone adding one new small object to one big OOBTree, and to one
  big SessionTree (small buckets), the tree a slice of the container's
  earlier layout filed a thread's sessions in: what ZODB alone costs to
  add one record to a big index, before any session logic (every tree a
  row files into holds ``--sessions`` entries first);
- the same with our session data class (SessionData, one package of one
  key) in place of the small object; then that SessionData filed by our
  container (``store_new``: its time slice, one of the slice's small
  trees) on a connection kept open, with no request, client id or cookie;
- ZODB alone filing one new small object, then a SessionData, in a
  bucket of fixed size that belongs to no tree (one of ``BUCKETS`` OOBuckets
  of ``BUCKET_ENTRIES`` entries, the oldest entry dropped for the new one):
  an index that never splits and reads no node to check it at the vote,
  as a slice's small trees are (each is one record, its one bucket
  inline); what a big tree adds is the difference to the rows above;
- the middleware around an application that does not touch the session,
  for a client that brings no cookie; then one that also gets the
  package's data (it creates nothing); then one that also asks for the
  client id, so that one is issued (its cookie set; nothing is stored,
  so nothing is committed);
- the whole request (no cookie in, a session of one key created): what
  it spends above the last row is storing the session and committing.

Run:  python bench/anatomy.py [--rounds 15] [--calls 1000] [--sessions 10000]
      [--dir DIR] [--disk-dir DIR] [--new-calls 200]
"""
import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_cookies  # noqa: E402
import bench_requests  # noqa: E402
import common  # noqa: E402

# The ratios bench_requests holds zodbsession's requests to, by variant.
_TARGETS = {variant: ratio for peer, variant, _base, _base_variant, ratio
            in bench_requests.TARGETS if peer == 'zodbsession'}
READ_ONLY_TARGET = _TARGETS['ro']
NEW_CLIENT_TARGET = _TARGETS['new']
# Existing objects the "no index" rows attach new objects to.
HOLDERS = 1000
# The tree-less index rows: this many standalone buckets, each holding
# this many entries (about a SessionTree bucket's).
BUCKETS = 4096
BUCKET_ENTRIES = 6


def measure(rows, rounds, calls):
    """{label: median over rounds of µs per call}, rows interleaved and
    their order rotated every round."""
    samples = {label: [] for label in rows}
    labels = list(rows)
    for round_ in range(rounds):
        shift = round_ % len(labels)
        for label in labels[shift:] + labels[:shift]:
            call = rows[label]
            start = time.perf_counter()
            for _ in range(calls):
                call()
            samples[label].append(
                (time.perf_counter() - start) / calls * 1e6)
    return {label: statistics.median(values)
            for label, values in samples.items()}


def print_table(title, figures, baseline):
    print(f'\n{title}')
    width = max(len(label) for label in figures)
    for label, micros in figures.items():
        print(f'  {label:<{width}}  {micros:7.1f} µs'
              f'  {micros / figures[baseline]:5.2f}x {baseline}')


def _no_session_app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'ok']


def _app_that(step):
    """A WSGI application that does ``step(environ)`` and nothing else."""
    def app(environ, start_response):
        step(environ)
        return _no_session_app(environ, start_response)
    return app


def _built_peers(directory, sessions):
    """bench_requests' floor and zodbsession peers, each holding
    ``sessions`` clients, their caches warm."""
    floor = bench_requests.FloorPeer(directory, sessions)
    ours = bench_requests.ZodbsessionPeer(directory, sessions)
    for peer in (floor, ours):
        peer.build()
        peer.reopen()
        for index in range(sessions):
            peer.request('ro', index)
    return floor, ours


# -- the read-only request -----------------------------------------------------

def read_only_rows(directory, sessions):
    import transaction

    from zodbsession.site import site_of
    from zodbsession.wsgi import SessionMiddleware

    floor, ours = _built_peers(directory, sessions)
    # The floor's transactions are its own, as in bench_requests, where it
    # runs in a process of its own: the thread's manager is followed by
    # the connection the middleware keeps, which every transaction of
    # that manager would poll too.
    floor.transaction_manager = transaction.TransactionManager()

    connection = ours.db.open()
    container_oid = site_of(connection).container._p_oid
    connection.close()

    indexes = itertools.cycle(range(sessions))
    floor_keys = itertools.cycle(floor.keys)
    client_ids = itertools.cycle(ours.client_ids)
    environs = itertools.cycle(ours.environs['ro'])

    def floor_without_transaction():
        connection = floor.db.open()
        connection.root()['objects'][next(floor_keys)].n
        connection.close()

    # Its own connection, kept (a connection fresh from the pool each
    # time would read every session from the storage: its cache is cold).
    kept = ours.db.open(transaction_manager=transaction.TransactionManager())
    for client_id in ours.client_ids:       # its cache warm, as the rows'
        kept.get(container_oid).get(client_id)[bench_requests.PKG_ID]['n']

    def storage_work_alone():
        kept.newTransaction(None)
        container = kept.get(container_oid)
        container.get(next(client_ids))[bench_requests.PKG_ID]['n']

    def through(app):
        middleware = SessionMiddleware(app, db=ours.db)
        return lambda: middleware(next(environs),
                                  bench_requests._start_response)

    return {
        'floor': lambda: floor.request('ro', next(indexes)),
        'floor without its transaction': floor_without_transaction,
        "zodbsession's storage work alone": storage_work_alone,
        'middleware, session untouched': through(_no_session_app),
        'middleware + open the connection': through(_app_that(
            lambda environ: environ['zodbsession.context'].site.open())),
        'middleware + read the client id': through(_app_that(
            lambda environ: environ['zodbsession.session'].client_id)),
        'the whole request': lambda: ours.request('ro', next(indexes)),
    }, (floor, ours)


# -- the new client ------------------------------------------------------------

def new_client_rows(directory, sessions):
    import transaction
    from BTrees.OOBTree import OOBTree
    from BTrees.OOBTree import OOBucket

    from zodbsession import placement
    from zodbsession.container import SessionTree
    from zodbsession.data import SessionData
    from zodbsession.site import site_of
    from zodbsession.wsgi import SessionMiddleware

    floor, ours = _built_peers(directory, sessions)
    # Every row files into a tree already as big as the one the whole
    # request files into (its thread's tree holds the peer's sessions): a
    # young tree's nodes are small, and so are its commits.
    with floor.db.transaction() as connection:
        connection.root()['new in OOBTree'] = OOBTree()
        connection.root()['new in SessionTree'] = SessionTree()
        # Objects that a new object is attached to: what a new record
        # costs with no index to file it in.
        connection.root()['holders'] = OOBTree(
            {number: bench_requests.Counter() for number in range(HOLDERS)})
        connection.root()['buckets'] = OOBTree(
            {number: OOBucket({os.urandom(16): bench_requests.Counter()
                               for _entry in range(BUCKET_ENTRIES)})
             for number in range(BUCKETS)})
    for start in range(0, sessions, bench_requests.BUILD_BATCH):
        with floor.db.transaction() as connection:
            root = connection.root()
            for _number in range(min(bench_requests.BUILD_BATCH,
                                     sessions - start)):
                root['new in OOBTree'][os.urandom(16)] = (
                    bench_requests.Counter())
                data = SessionData()
                data.package(bench_requests.PKG_ID)['n'] = 1
                root['new in SessionTree'][os.urandom(16)] = data
    with floor.db.transaction() as connection:    # caches warm
        for bucket in connection.root()['buckets'].values():
            len(bucket)
    manager = transaction.manager.manager
    indexes = itertools.cycle(range(sessions))

    def add_one_object(tree_name):
        def request():
            manager.begin()
            connection = floor.db.open(transaction_manager=manager)
            tree = connection.root()[tree_name]
            tree[os.urandom(16)] = bench_requests.Counter()
            manager.commit()
            connection.close()
        return request

    def attach_new_object():
        # A new record, held by an existing one: two records written, as
        # a new session's, but no tree's nodes read, checked or split.
        manager.begin()
        connection = floor.db.open(transaction_manager=manager)
        holder = connection.root()['holders'][next(indexes) % HOLDERS]
        holder.held = bench_requests.Counter()
        manager.commit()
        connection.close()

    def file_in_bucket(make):
        # One standalone bucket changed (its oldest entry out, the new one
        # in: its size stays) and one new record: no node read or split.
        def request():
            manager.begin()
            connection = floor.db.open(transaction_manager=manager)
            bucket = connection.root()['buckets'][next(indexes) % BUCKETS]
            del bucket[bucket.minKey()]
            bucket[os.urandom(16)] = make()
            manager.commit()
            connection.close()
        return request

    def new_session_data():
        data = SessionData()
        data.package(bench_requests.PKG_ID)['n'] = 1
        return data

    def add_session_data():
        # Our data class in place of the small object.
        manager.begin()
        connection = floor.db.open(transaction_manager=manager)
        data = SessionData()
        data.package(bench_requests.PKG_ID)['n'] = 1
        connection.root()['new in SessionTree'][os.urandom(16)] = data
        manager.commit()
        connection.close()

    # Our container on a connection kept open, as the middleware keeps
    # one per thread; its sessions filed in a tree other than the one the
    # middleware's rows fill (ids of another placement), so that neither
    # connection's commits invalidate what the other has loaded.
    kept = ours.db.open(transaction_manager=transaction.TransactionManager())
    container = site_of(kept).container
    home = placement.ALPHABET.index(placement.home_character())
    elsewhere = placement.ALPHABET[(home + 1) % len(placement.ALPHABET)]
    for start in range(0, sessions, bench_requests.BUILD_BATCH):
        kept.transaction_manager.begin()
        for _number in range(min(bench_requests.BUILD_BATCH,
                                 sessions - start)):
            data = SessionData()
            data.package(bench_requests.PKG_ID)['n'] = 1
            container.store_new(elsewhere + os.urandom(32).hex(), data)
        kept.transaction_manager.commit()

    def store_new_session():
        # No request, no client id, no cookie.
        kept.transaction_manager.begin()
        data = SessionData()
        data.package(bench_requests.PKG_ID)['n'] = 1
        container.store_new(elsewhere + os.urandom(32).hex(), data)
        kept.transaction_manager.commit()

    def through(step):
        middleware = SessionMiddleware(_app_that(step), db=ours.db)
        return lambda: middleware(dict(ours.new_environ),
                                  bench_requests._start_response)

    def package(environ):
        return environ['zodbsession.session'][bench_requests.PKG_ID]

    def client_id(environ):
        package(environ)
        return environ['zodbsession.session'].client_id

    return {
        'floor (read-write)': lambda: floor.request('rw', next(indexes)),
        'ZODB alone: a new object, no index (an attribute)': (
            attach_new_object),
        'ZODB alone: a new object in an OOBTree': add_one_object(
            'new in OOBTree'),
        'ZODB alone: a new object in a SessionTree': add_one_object(
            'new in SessionTree'),
        'ZODB alone: a SessionData in a SessionTree': add_session_data,
        "our container alone: store_new, commit": store_new_session,
        'ZODB alone: a new object in a bucket of no tree': file_in_bucket(
            bench_requests.Counter),
        'ZODB alone: a SessionData in a bucket of no tree': file_in_bucket(
            new_session_data),
        'middleware, session untouched (no cookie)': through(
            lambda environ: None),
        'middleware + session[pkg] (creates nothing)': through(package),
        'middleware + session[pkg] + issue the client id': through(
            client_id),
        'the whole request': lambda: ours.request('new', 0),
    }, (floor, ours)


# -- the signed-cookie request -------------------------------------------------

class BareCookieWork(bench_cookies.WSGIPeer):
    """What our signed-cookie request does, as one WSGI function."""

    def __init__(self, codec, package, secret):
        from zodbsession.signing import Signer
        super().__init__(self.bare_app)
        self.codec = codec
        self.package = package
        self.id_signer = Signer([secret], 'bare-client-id')
        client_id = self.id_signer.sign('A' + 'x' * 42)
        document = {'t': int(time.time()), 'o': 0, 'c': 'bare',
                    'd': {package: {'n': 1}}}
        self.environ = {
            'HTTP_COOKIE': f'id={client_id}; data={codec.encode(document)}'}

    def bare_app(self, environ, start_response):
        cookies = dict(part.strip().split('=', 1)
                       for part in environ['HTTP_COOKIE'].split(';'))
        if self.id_signer.unsign(cookies['id']) is None:
            raise AssertionError('the bare client id did not verify')
        document = self.codec.decode(cookies['data'])
        data = document['d'][self.package]
        data['n'] = data.get('n', 0) + 1
        document['t'] = int(time.time())
        start_response('200 OK', [
            ('Content-Type', 'text/plain'),
            ('Set-Cookie', f'data={self.codec.encode(document)}; Path=/;'
                           ' HttpOnly; SameSite=Lax; Max-Age=3600')])
        return [b'ok']


class NothingDataManager:
    """A data manager that takes part in a transaction and does nothing."""

    def __init__(self, transaction_manager):
        self.transaction_manager = transaction_manager

    def abort(self, transaction):
        pass

    tpc_begin = commit = tpc_vote = tpc_finish = tpc_abort = abort

    def sortKey(self):
        return 'anatomy.nothing'


class FusedCookieWork:
    """The data manager of ``fused_cookie_app``: it encodes at the vote
    and sets the cookie at the finish, as our cookie container does."""

    # One spelling of JSON data, as the container writes it.
    encode = json.JSONEncoder(sort_keys=True, separators=(',', ':'),
                              ensure_ascii=False, allow_nan=False).encode

    def __init__(self, transaction_manager, context, container, document,
                 attributes):
        self.transaction_manager = transaction_manager
        self.context = context
        self.container = container
        self.document = document
        self.attributes = attributes
        self.value = None

    def abort(self, transaction):
        pass

    tpc_begin = commit = tpc_abort = abort

    def sortKey(self):
        return 'anatomy.fused'

    def tpc_vote(self, transaction):
        document = dict(self.document, t=int(time.time()))
        self.value = self.container.codec.encode_text(self.encode(document))

    def tpc_finish(self, transaction):
        self.context.cookies.set_session_cookie(
            self.container.cookie_name, self.value, self.attributes,
            committed=True)


def fused_cookie_app(container, package, transactional=True):
    """A WSGI application doing the signed-cookie request's work in one
    function, under the middleware (see FusedCookieWork); not
    ``transactional``: the same work with no transaction (the vote and
    the finish called in turn), what the transaction's part costs."""
    from zodbsession.pending import SessionCookieAttributes
    reads = {}      # cookie value -> document, as the container remembers
    attributes = SessionCookieAttributes(
        path='/', domain=None, secure=False, httponly=True, samesite='Lax',
        max_age=container.timeout)

    def app(environ, start_response):
        context = environ['zodbsession.context']
        if context.client_id_manager.getRequestId(context.request) is None:
            raise AssertionError('the client id did not verify')
        value = context.cookies.get_request_cookie(container.cookie_name)
        document = reads.get(value)
        if document is None:
            document = reads[value] = container.codec.decode(value)
        packages = {pkg_id: dict(items)
                    for pkg_id, items in document['d'].items()}
        items = packages[package]
        items['n'] = items.get('n', 0) + 1
        manager = context.transaction_manager
        work = FusedCookieWork(manager, context, container,
                               dict(document, d=packages), attributes)
        if transactional:
            manager.get().join(work)
        else:
            work.tpc_vote(None)
            work.tpc_finish(None)
        return _no_session_app(environ, start_response)
    return app


def cookie_rows(directory):
    import transaction

    from zodbsession.wsgi import SessionMiddleware

    ours = bench_cookies.ZodbsessionPeer(directory, encrypted=False)
    pyramid = bench_cookies.PyramidPeer()
    bare = BareCookieWork(ours.container.codec, bench_cookies.PKG_ID,
                          bench_cookies.SECRET)
    manager = transaction.manager.manager
    nothing = NothingDataManager(manager)

    def one_transaction():
        manager.get().join(nothing)
        manager.commit()

    # The middleware alone, on the whole request's cookies.
    middleware_only = bench_cookies.WSGIPeer(
        SessionMiddleware(_no_session_app, db=ours.db))
    middleware_only.environ = ours.environ
    # The transactional frame of any request whose data changes: the
    # middleware, and a transaction (begun by the first data manager that
    # joins, committed at the end) with one data manager that does
    # nothing; no session.
    framed = bench_cookies.WSGIPeer(SessionMiddleware(
        _app_that(lambda environ: manager.get().join(nothing)),
        db=ours.db))
    framed.environ = ours.environ
    fused = bench_cookies.WSGIPeer(SessionMiddleware(
        fused_cookie_app(ours.container, bench_cookies.PKG_ID), db=ours.db))
    fused.environ = ours.environ
    fused.check_counter = ours.check_counter
    fused.check()
    untransacted = bench_cookies.WSGIPeer(SessionMiddleware(
        fused_cookie_app(ours.container, bench_cookies.PKG_ID,
                         transactional=False), db=ours.db))
    untransacted.environ = ours.environ
    untransacted.check_counter = ours.check_counter
    untransacted.check()

    return {
        'Pyramid': pyramid.one_request,
        'the same work as one bare WSGI function': bare.one_request,
        'a transaction with a data manager': one_transaction,
        'middleware, session untouched': middleware_only.one_request,
        'middleware + a transaction with a data manager': framed.one_request,
        'middleware + transaction + the cookie work, fused':
            fused.one_request,
        'middleware + the cookie work, fused, no transaction':
            untransacted.one_request,
        'the whole request': ours.one_request,
    }, (ours,)


def cookie_read_only_rows(directory):
    """The signed-cookie read-only request taken apart along the request
    context's path: the middleware, then the context's Session, the
    client id, the package's data (the cookie read), the whole request."""
    from zodbsession import ISession
    from zodbsession.wsgi import SessionMiddleware

    ours = bench_cookies.ZodbsessionPeer(directory, encrypted=False,
                                         read_only=True)
    pyramid = bench_cookies.PyramidPeer(read_only=True)
    ours.before_batch()
    pyramid.before_batch()

    def through(step):
        peer = bench_cookies.WSGIPeer(SessionMiddleware(
            _app_that(step), db=ours.db))
        peer.environ = ours.environ
        return peer.one_request

    def session_of(environ):
        return ISession(environ['zodbsession.request'])

    return {
        'Pyramid (read-only)': pyramid.one_request,
        'middleware, session untouched': through(lambda environ: None),
        'middleware + ISession(request)': through(session_of),
        'middleware + the client id': through(
            lambda environ: session_of(environ).existing_client_id()),
        'middleware + session[pkg] (the cookie read)': through(
            lambda environ: session_of(environ)[bench_cookies.PKG_ID]),
        'the whole request': ours.one_request,
    }, (ours,)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=15)
    parser.add_argument('--calls', type=int, default=1000)
    parser.add_argument('--sessions', type=int, default=10000)
    parser.add_argument('--dir', default='/dev/shm'
                        if os.path.isdir('/dev/shm') else None)
    parser.add_argument('--disk-dir', default=None)
    parser.add_argument('--new-calls', type=int, default=200)
    args = parser.parse_args(argv)
    print(common.machine_line())
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        rows, peers = read_only_rows(directory, args.sessions)
        figures = measure(rows, args.rounds, args.calls)
        print_table(f'Read-only request, {args.sessions:,} sessions'
                    f' ({directory})', figures, 'floor')
        budget = READ_ONLY_TARGET * figures['floor']
        alone = figures["zodbsession's storage work alone"]
        print(f'  target {READ_ONLY_TARGET}x the floor: {budget:.1f} µs,'
              f' leaving {budget - alone:.1f} µs above the storage work'
              f' for the WSGI layer, the client id and the registry; the'
              f' whole request spends {figures["the whole request"] - alone:.1f}')
        for peer in peers:
            peer.db.close()

        rows, peers = cookie_rows(directory)
        figures = measure(rows, args.rounds, args.calls)
        print_table('Signed-cookie read-write request', figures, 'Pyramid')
        for peer in peers:
            peer.close()

        rows, peers = cookie_read_only_rows(directory)
        figures = measure(rows, args.rounds, args.calls)
        print_table('Signed-cookie read-only request', figures,
                    'Pyramid (read-only)')
        for peer in peers:
            peer.close()

    with tempfile.TemporaryDirectory(dir=args.disk_dir) as directory:
        rows, peers = new_client_rows(directory, args.sessions)
        figures = measure(rows, args.rounds, args.new_calls)
        baseline = 'floor (read-write)'
        print_table(f'New client ({directory})', figures, baseline)
        print(f'  target {NEW_CLIENT_TARGET}x the floor:'
              f' {NEW_CLIENT_TARGET * figures[baseline]:.1f} µs')
        for peer in peers:
            peer.db.close()


if __name__ == '__main__':
    main()
