"""Per-request cost: zodbsession's middleware against a bare ZODB floor
and against zope.session 6.0.

Every variant runs against 10,000 sessions (``--sessions``) created at
the start of the run, on a FileStorage in a temporary directory, with a
warm object cache. A request of an existing client carries the valid
cookie of one of them (round-robin over all clients; for zodbsession,
every other client also holds the mutable values only ``ro_mut`` reads,
and ``rw`` and ``ro`` go to the others):

- ``rw``:  read a counter in the session and write it + 1;
- ``ro``:  read the counter (within ``resolution``, so nothing is written);
- ``ro_mut`` (zodbsession only): read the counter, a 10-item list and a
  5-key dict, change nothing: beside ``ro``, what finding values changed
  in place (compared with their stored form at commit) costs a read;
- ``new``: no cookie; create a session holding one key.

Peers:

- ``floor``: no session library at all: open a connection, look up one of
  10,000 small persistent objects in an OOBTree, change it (``rw``) or read
  it (``ro``), commit (or abort), close. Every per-request cost above this
  is the session framework's.
- ``zodbsession``: ``SessionMiddleware`` called as a WSGI app with a
  prepared environ and a trivial ``start_response`` (no server, no WebTest).
- ``zope.session``: what a Zope publication does, minimally: open a
  connection, make the persistent site in the root current (its registry
  holds the CookieClientIdManager and PersistentSessionDataContainer),
  build a ``zope.publisher`` HTTPRequest from the environ,
  ``ISession(request)[pkg]['n'] += 1``, commit, close.

Each peer lives in its own long-running subprocess (so zope.session's
global registrations never meet ours, and caches stay private), and the
driver runs the variants in interleaved batches, in a shuffled order each
round, so that a noisy neighbour slows all of them alike. The table shows
the median per-request time over all batches and the ratios derived from
those medians. Results go to bench/out/requests.json.

Run:  python bench/bench_requests.py [--quick] [--rounds 30] [--batch 300]
      [--sessions 10000] [--dir /dev/shm] [--out requests.json] [--profile]

On a disk, every commit waits for fsync, whose latency (here 0.1 to 4 ms,
however little was written) swamps what the libraries do; ``--dir
/dev/shm`` (tmpfs: fsync is nearly free) shows the libraries' own cost.
"""
import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import persistent

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

PKG_ID = 'bench.requests'
SECRET = 'bench-secret-not-for-production-use'
# Both libraries' defaults; the bench must finish well inside RESOLUTION
# seconds of creating the sessions, or reads start writing last-access
# times (the read-only check below would then fail and say so).
TIMEOUT = 3600
RESOLUTION = 600
# Objects a connection keeps: more than every peer's 10,000 sessions need
# (zope.session keeps 5 objects per session), so that after the warm-up
# pass nothing is loaded from the storage again.
CACHE_SIZE = 200000
BUILD_BATCH = 2000

PEERS = ('floor', 'zodbsession', 'zope.session')
VARIANTS = {
    'floor': ('rw', 'ro'),
    'zodbsession': ('rw', 'ro', 'ro_mut', 'new'),
    'zope.session': ('rw', 'ro', 'new'),
}
# The floor variant each variant is compared with.
FLOOR_OF = {'rw': 'rw', 'ro': 'ro', 'ro_mut': 'ro', 'new': 'rw'}
# What ro_mut reads besides the counter: mutable values it leaves alone.
MUTABLE_VALUES = {
    'list': [f'item-{number}' for number in range(10)],
    'dict': {f'key-{number}': number for number in range(5)},
}

TARGETS = [
    # (peer, variant, baseline peer, baseline variant, maximum ratio)
    ('zodbsession', 'rw', 'floor', 'rw', 1.2),
    ('zodbsession', 'ro', 'floor', 'ro', 1.3),
    ('zodbsession', 'new', 'floor', 'rw', 1.5),
]


def base_environ():
    return {
        'REQUEST_METHOD': 'GET',
        'SCRIPT_NAME': '',
        'PATH_INFO': '/',
        'QUERY_STRING': '',
        'SERVER_NAME': 'localhost',
        'SERVER_PORT': '80',
        'SERVER_PROTOCOL': 'HTTP/1.1',
        'HTTP_HOST': 'localhost',
        'wsgi.url_scheme': 'http',
        'wsgi.version': (1, 0),
        'wsgi.multithread': False,
        'wsgi.multiprocess': False,
        'wsgi.run_once': False,
        'wsgi.errors': sys.stderr,
    }


# -- peers (each runs in its own worker process) ----------------------------

class Counter(persistent.Persistent):
    """The floor's stand-in for a session: one small record."""

    def __init__(self):
        self.n = 0


class ZopeSite(persistent.Persistent):
    """The smallest persistent Zope site: a local component registry."""

    def __init__(self):
        import zope.component
        from zope.component.persistentregistry import PersistentComponents
        self.registry = PersistentComponents(
            'site', bases=(zope.component.getGlobalSiteManager(),))

    def getSiteManager(self):
        return self.registry


class Peer:
    """One library set up against one database, ready to serve requests.

    ``request(variant, index)`` serves one request of client ``index``
    (ignored by ``new``).
    """

    def __init__(self, directory, sessions):
        import transaction
        self.transaction_manager = transaction.manager
        self.path = os.path.join(directory, self.name + '.fs')
        self.sessions = sessions
        common.remove_filestorage(self.path)
        self.db = common.open_filestorage_db(self.path, cache_size=CACHE_SIZE)

    def reopen(self):
        """Close and reopen the database: the cache starts cold."""
        self.db.close()
        self.db = common.open_filestorage_db(self.path, cache_size=CACHE_SIZE)

    def counter_total(self):
        raise NotImplementedError


class FloorPeer(Peer):
    name = 'floor'

    def build(self):
        import transaction
        from BTrees.OOBTree import OOBTree

        self.keys = [os.urandom(16) for _ in range(self.sessions)]
        with self.db.transaction() as connection:
            connection.root()['objects'] = OOBTree()
        for start in range(0, self.sessions, BUILD_BATCH):
            with self.db.transaction() as connection:
                tree = connection.root()['objects']
                for key in self.keys[start:start + BUILD_BATCH]:
                    tree[key] = Counter()
        transaction.abort()

    def request(self, variant, index):
        manager = self.transaction_manager
        manager.begin()
        connection = self.db.open(transaction_manager=manager)
        counter = connection.root()['objects'][self.keys[index]]
        if variant == 'rw':
            counter.n += 1
            manager.commit()
        else:
            counter.n
            manager.abort()
        connection.close()

    def counter_total(self):
        with self.db.transaction() as connection:
            return sum(c.n for c in connection.root()['objects'].values())


class ZodbsessionPeer(Peer):
    name = 'zodbsession'

    def build(self):
        import transaction
        from zodbsession import SessionData
        from zodbsession import SessionPkgData
        from zodbsession.site import site_of
        from zodbsession.wsgi import SessionMiddleware

        self.app = SessionMiddleware(
            bench_app, db=self.db, secret=SECRET, timeout=TIMEOUT,
            resolution=RESOLUTION)
        ids = []
        for start in range(0, self.sessions, BUILD_BATCH):
            with self.db.transaction() as connection:
                site = site_of(connection)
                manager = site.client_id_manager
                container = site.container
                for number in range(
                        start, min(start + BUILD_BATCH, self.sessions)):
                    client_id = manager.generateUniqueId()
                    data = SessionData()
                    container[client_id] = data
                    package = SessionPkgData()
                    package['n'] = 0
                    if number % 2:
                        # Every other client: what ro_mut reads (the
                        # others hold what rw and ro use, as the floor's
                        # objects do: one counter).
                        package.update(MUTABLE_VALUES)
                    data[PKG_ID] = package
                    ids.append(client_id)
                namespace = manager.namespace
        transaction.abort()
        self.environs = {}
        for variant, parity in (('rw', 0), ('ro', 0), ('ro_mut', 1)):
            # Request i of a round goes to client i with the variant's
            # kind of session (its neighbour when i has the other kind).
            self.environs[variant] = [
                dict(base_environ(), PATH_INFO='/' + variant,
                     HTTP_COOKIE=f'{namespace}='
                                 f'{ids[min(index - index % 2 + parity, len(ids) - 1)]}')
                for index in range(len(ids))]
        self.new_environ = dict(base_environ(), PATH_INFO='/new')
        self.namespace = namespace
        self.client_ids = ids

    def reopen(self):
        super().reopen()
        self.app.db = self.db

    def request(self, variant, index):
        if variant == 'new':
            environ = self.new_environ
        else:
            environ = self.environs[variant][index]
        self.app(environ, _start_response)

    def check(self):
        """Responses look right: cookies only where they must be set."""
        problems = []
        for variant, index in (('rw', 0), ('ro', 1), ('ro_mut', 2),
                               ('new', None)):
            environ = (self.new_environ if index is None
                       else self.environs[variant][index])
            captured = {}

            def start_response(status, headers, exc_info=None):
                captured['headers'] = headers
            body = b''.join(self.app(environ, start_response))
            cookies = [v for n, v in captured['headers']
                       if n == 'Set-Cookie']
            if (variant == 'new') != bool(cookies):
                problems.append(f'{variant}: Set-Cookie {cookies!r}')
            if variant != 'new' and not body.isdigit():
                problems.append(f'{variant}: body {body!r}')
        return problems

    def counter_total(self):
        """The sum of the existing clients' counters, read through the
        container's public mapping API (its layout is its own business)."""
        import transaction
        from zodbsession.site import site_of
        connection = self.db.open()
        try:
            container = site_of(connection).container
            total = 0
            for client_id in self.client_ids:
                data = container.get(client_id)
                package = data.get(PKG_ID) if data is not None else None
                total += package['n'] if package is not None else 0
            return total
        finally:
            transaction.abort()
            connection.close()

    new_count = 0


def bench_app(environ, start_response):
    """The application behind the middleware: one counter per client."""
    session = environ['zodbsession.session']
    path = environ['PATH_INFO']
    if path == '/rw':
        data = session[PKG_ID]
        value = data['n'] = data['n'] + 1
    elif path == '/ro':
        value = session[PKG_ID]['n']
    elif path == '/ro_mut':
        data = session[PKG_ID]
        value = data['n']
        if data['list'][9] != 'item-9' or data['dict']['key-4'] != 4:
            value = 'wrong mutable values'
    else:   # /new
        value = session[PKG_ID]['n'] = 1
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [str(value).encode('ascii')]


def _start_response(status, headers, exc_info=None):
    return None


class ZopeSessionPeer(Peer):
    name = 'zope.session'

    def build(self):
        import transaction
        import zope.component
        import zope.component.hooks
        from zope.session.http import CookieClientIdManager
        from zope.session.interfaces import IClientId
        from zope.session.interfaces import IClientIdManager
        from zope.session.interfaces import ISession
        from zope.session.interfaces import ISessionDataContainer
        from zope.session.session import ClientId
        from zope.session.session import PersistentSessionDataContainer
        from zope.session.session import Session
        from zope.session.session import SessionData
        from zope.session.session import SessionPkgData

        # What zope.session's adapters.zcml registers.
        zope.component.provideAdapter(ClientId, provides=IClientId)
        zope.component.provideAdapter(Session, provides=ISession)
        zope.component.hooks.setHooks()

        with self.db.transaction() as connection:
            site = connection.root()['site'] = ZopeSite()
            manager = CookieClientIdManager(
                namespace='zope3_cs_bench', secret=SECRET)
            container = PersistentSessionDataContainer()
            container.timeout = TIMEOUT
            container.resolution = RESOLUTION
            site.registry.registerUtility(manager, IClientIdManager)
            site.registry.registerUtility(container, ISessionDataContainer)
        ids = []
        for start in range(0, self.sessions, BUILD_BATCH):
            with self.db.transaction() as connection:
                site = connection.root()['site']
                manager = site.registry.getUtility(IClientIdManager)
                container = site.registry.getUtility(ISessionDataContainer)
                for _ in range(min(BUILD_BATCH, self.sessions - start)):
                    client_id = manager.generateUniqueId()
                    data = container[client_id] = SessionData()
                    package = data[PKG_ID] = SessionPkgData()
                    package['n'] = 0
                    ids.append(client_id)
        transaction.abort()
        self.environs = [
            dict(base_environ(), HTTP_COOKIE=f'zope3_cs_bench={client_id}')
            for client_id in ids]
        self.new_environ = base_environ()

    def request(self, variant, index):
        from zope.component.hooks import setSite
        from zope.publisher.http import HTTPRequest
        from zope.session.interfaces import ISession

        environ = self.new_environ if variant == 'new' \
            else self.environs[index]
        manager = self.transaction_manager
        manager.begin()
        connection = self.db.open()
        try:
            setSite(connection.root()['site'])
            request = HTTPRequest(io.BytesIO(b''), dict(environ))
            data = ISession(request)[PKG_ID]
            if variant == 'rw':
                data['n'] += 1
            elif variant == 'ro':
                data['n']
            else:
                data['n'] = 1
            manager.commit()
            request.response.getHeaders()
        finally:
            setSite(None)
            connection.close()

    def counter_total(self):
        from zope.session.interfaces import ISessionDataContainer
        with self.db.transaction() as connection:
            container = connection.root()['site'].registry.getUtility(
                ISessionDataContainer)
            total = 0
            for data in container.data.values():
                package = data.get(PKG_ID)
                total += package['n'] if package is not None else 0
            return total - self.new_count

    new_count = 0


PEER_CLASSES = {cls.name: cls for cls in
                (FloorPeer, ZodbsessionPeer, ZopeSessionPeer)}


# -- the worker: serves batches on the driver's command ---------------------

def storage_activity(db, before):
    """(transactions, records, data bytes) committed after tid ``before``."""
    from ZODB.utils import p64
    from ZODB.utils import u64
    storage = db.storage
    if storage.lastTransaction() == before:
        return 0, 0, 0
    transactions = records = size = 0
    iterator = storage.iterator(p64(u64(before) + 1))
    try:
        for txn in iterator:
            transactions += 1
            for record in txn:
                records += 1
                size += len(record.data or b'')
    finally:
        close = getattr(iterator, 'close', None)
        if close is not None:
            close()
    return transactions, records, size


def worker(name, directory, sessions, warmup_rw):
    peer = PEER_CLASSES[name](directory, sessions)
    common.progress(f'[{name}] building {sessions} sessions')
    built_at = time.time()
    peer.build()
    peer.reopen()
    cursors = dict.fromkeys(VARIANTS[name], 0)
    rw_done = 0

    def run(variant, count):
        nonlocal rw_done
        timings = []
        clock = time.perf_counter_ns
        cursor = cursors[variant]
        request = peer.request
        for _ in range(count):
            start = clock()
            request(variant, cursor)
            timings.append((clock() - start) / 1000)
            cursor = (cursor + 1) % sessions
        cursors[variant] = cursor
        if variant == 'rw':
            rw_done += count
        elif variant == 'new':
            peer.new_count += count
        return timings

    # Warm-up: every session read once (loads the whole cache), then a
    # few of each variant, so that first-call costs stay out of the
    # timings.
    common.progress(f'[{name}] warming up')
    # (ro_mut's clients are not ro's: see ZodbsessionPeer.build.)
    for variant in ('ro', 'ro_mut'):
        if variant in VARIANTS[name]:
            run(variant, sessions)
    for variant in VARIANTS[name]:
        run(variant, warmup_rw)
    for variant in VARIANTS[name]:
        cursors[variant] = 0
    ready = {'built_at': built_at, 'warm_at': time.time()}
    if hasattr(peer, 'check'):
        ready['problems'] = peer.check()
        rw_done += 1            # check() made one rw and one new request
        peer.new_count += 1
    common.emit_result(ready)

    for line in sys.stdin:
        command = json.loads(line)
        action = command['action']
        if action == 'batch':
            before = peer.db.storage.lastTransaction()
            timings = run(command['variant'], command['count'])
            activity = storage_activity(peer.db, before)
            common.emit_result({'timings': timings, 'activity': activity})
        elif action == 'profile':
            common.emit_result({'profile': profile(
                run, command['variant'], command['count'],
                command.get('limit', 30))})
        elif action == 'finish':
            common.emit_result({
                'counter_total': peer.counter_total(),
                'rw_done': rw_done,
                'age': time.time() - built_at,
            })
            break
    peer.db.close()


def profile(run, variant, count, limit):
    return common.profile_text(lambda: run(variant, count), limit)


# -- the driver ---------------------------------------------------------------

class WorkerProcess:
    """A peer's long-running worker, driven one JSON line at a time."""

    def __init__(self, name, directory, sessions, warmup):
        env = dict(os.environ)
        env['PYTHONPATH'] = os.pathsep.join(
            [common.SRC_DIR] + ([env['PYTHONPATH']]
                                if env.get('PYTHONPATH') else []))
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), '--worker', name,
             directory, str(sessions), str(warmup)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)

    def result(self):
        for line in self.process.stdout:
            if line.startswith(common.RESULT_MARKER):
                return json.loads(line[len(common.RESULT_MARKER):])
        raise RuntimeError(f'worker {self.name} ended without a result'
                           f' (exit code {self.process.wait()})')

    def ask(self, **command):
        self.process.stdin.write(json.dumps(command) + '\n')
        self.process.stdin.flush()
        return self.result()

    def close(self):
        try:
            self.process.stdin.close()
        finally:
            self.process.wait(timeout=60)


def filesystem_of(path):
    """The type of the file system holding ``path`` (Linux), or '?'."""
    path = os.path.realpath(path)
    best, kind = '', '?'
    try:
        with open('/proc/mounts', encoding='utf-8') as mounts:
            for line in mounts:
                fields = line.split()
                point = fields[1]
                if (path == point or path.startswith(point.rstrip('/') + '/')
                        ) and len(point) > len(best):
                    best, kind = point, fields[2]
    except OSError:
        pass
    return kind


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summarize(timings, batch_means, activity, count):
    transactions, records, size = activity
    return {
        'median_us': statistics.median(timings),
        'p90_us': percentile(timings, 0.9),
        'mean_us': statistics.fmean(timings),
        'median_of_batch_means_us': statistics.median(batch_means),
        'requests': count,
        'transactions': transactions,
        'records_per_transaction': records / transactions
        if transactions else 0,
        'bytes_per_transaction': size / transactions if transactions else 0,
    }


def drive(args):
    start = time.time()
    filesystem = filesystem_of(args.dir or tempfile.gettempdir())
    info = common.machine_info()
    print(common.machine_line(info))
    print(f'{args.sessions} sessions per peer, {args.rounds} rounds of'
          f' {args.batch} requests per variant, FileStorage, cache'
          f' {CACHE_SIZE} objects, timeout {TIMEOUT} s, resolution'
          f' {RESOLUTION} s')
    with tempfile.TemporaryDirectory(prefix='zodbsession-bench-',
                                     dir=args.dir) as directory:
        print(f'databases in {directory} ({filesystem_of(directory)})')
        workers = {name: WorkerProcess(name, directory, args.sessions,
                                       args.warmup)
                   for name in PEERS}
        try:
            ready = {name: w.result() for name, w in workers.items()}
            for name, state in ready.items():
                for problem in state.get('problems', ()):
                    print(f'WARNING {name}: {problem}')
            rounds_done = 0
            samples = {(p, v): [] for p in PEERS for v in VARIANTS[p]}
            batch_means = {key: [] for key in samples}
            activity = {key: [0, 0, 0] for key in samples}
            rng = random.Random(args.seed)
            pairs = list(samples)
            built_at = min(state['built_at'] for state in ready.values())
            rounds_done = 0
            for round_number in range(args.rounds):
                if time.time() - built_at > RESOLUTION * 0.8:
                    # Later reads would rewrite last-access times: the
                    # read-only figures would no longer mean what they say.
                    print(f'WARNING: stopped after {rounds_done} rounds,'
                          f' {RESOLUTION * 0.8:.0f} s after the sessions'
                          ' were created')
                    break
                rounds_done += 1
                rng.shuffle(pairs)
                for peer, variant in pairs:
                    reply = workers[peer].ask(
                        action='batch', variant=variant, count=args.batch)
                    samples[peer, variant].extend(reply['timings'])
                    batch_means[peer, variant].append(
                        statistics.fmean(reply['timings']))
                    for i, amount in enumerate(reply['activity']):
                        activity[peer, variant][i] += amount
                common.progress(f'round {round_number + 1}/{args.rounds}')
            finished = {name: w.ask(action='finish')
                        for name, w in workers.items()}
        finally:
            for w in workers.values():
                w.close()

        results = {f'{p}/{v}': summarize(samples[p, v], batch_means[p, v],
                                         activity[p, v], len(samples[p, v]))
                   for p, v in samples}
        report = evaluate(results, finished, args)
        print()
        print(table(results))
        print()
        for line in report['lines']:
            print(line)

        profiles = {}
        if args.profile or not report['all_met']:
            profiles = run_profiles(directory, args)
            for variant, text in profiles.items():
                print(f'\n== cProfile: zodbsession {variant}'
                      f' ({args.profile_count} requests) ==')
                print(text)

    data = {
        'machine': info,
        'versions': common.package_versions(
            'ZODB', 'BTrees', 'persistent', 'transaction', 'WebOb',
            'zope.session', 'zope.publisher', 'zope.component'),
        'settings': {
            'sessions': args.sessions, 'rounds': args.rounds,
            'batch': args.batch, 'warmup': args.warmup,
            'cache_size': CACHE_SIZE, 'timeout': TIMEOUT,
            'resolution': RESOLUTION, 'quick': args.quick,
            'rounds_done': rounds_done,
            'seed': args.seed, 'dir': args.dir or tempfile.gettempdir(),
            'filesystem': filesystem,
        },
        'results': results,
        'ratios': report['ratios'],
        'checks': report['checks'],
        'targets_met': report['all_met'],
        'counters': finished,
        'profiles': profiles,
        'wall_seconds': time.time() - start,
    }
    path = common.write_json(args.out, data)
    print(f'\nwrote {os.path.relpath(path)}')


def evaluate(results, finished, args):
    def median(key):
        return results[key]['median_us']

    lines, ratios, checks = [], {}, {}
    all_met = True
    for peer, variant, base_peer, base_variant, limit in TARGETS:
        key = f'{peer}/{variant}'
        base = f'{base_peer}/{base_variant}'
        value = common.ratio(median(key), median(base))
        met = value <= limit
        all_met &= met
        ratios[f'{key} vs {base}'] = {'ratio': value, 'target': limit,
                                      'met': met}
        lines.append(f'{key:18} / {base:12} = {value:.2f}x'
                     f' (target <= {limit}x) {"ok" if met else "MISSED"}')
    for variant in ('rw', 'ro', 'new'):
        value = common.ratio(median(f'zodbsession/{variant}'),
                             median(f'zope.session/{variant}'))
        met = value < 1 if variant == 'rw' else None
        if met is not None:
            all_met &= met
        ratios[f'zodbsession/{variant} vs zope.session/{variant}'] = {
            'ratio': value, 'target': 1.0 if met is not None else None,
            'met': met}
        lines.append(
            f'zodbsession/{variant:3} / zope.session/{variant:3} ='
            f' {value:.2f}x' + ('' if met is None else
                                f' (target < 1x) {"ok" if met else "MISSED"}'))
    value = common.ratio(median('zodbsession/ro_mut'),
                         median('zodbsession/ro'))
    ratios['zodbsession/ro_mut vs zodbsession/ro'] = {
        'ratio': value, 'target': None, 'met': None}
    lines.append(
        f'zodbsession/ro_mut / zodbsession/ro = {value:.2f}x'
        f' ({median("zodbsession/ro_mut") - median("zodbsession/ro"):+.0f}'
        ' us: finding in-place changes of a 10-item list and a 5-key'
        ' dict)')
    for key in ('floor/ro', 'zodbsession/ro', 'zodbsession/ro_mut',
                'zope.session/ro'):
        written = results[key]['transactions']
        checks[f'{key} transactions'] = written
        ok = written == 0
        if key.startswith('zodbsession/'):
            all_met &= ok
        lines.append(f'{key}: {written} transactions committed during'
                     f' the read-only batches {"ok" if ok else "WRONG"}')
    for peer, state in finished.items():
        ok = state['counter_total'] == state['rw_done']
        checks[f'{peer} counters'] = ok
        lines.append(
            f'{peer}: counters sum to {state["counter_total"]}, expected'
            f' {state["rw_done"]} {"ok" if ok else "WRONG"};'
            f' sessions {state["age"]:.0f} s old at the end'
            f' (resolution {RESOLUTION} s)')
        all_met &= ok
    return {'lines': lines, 'ratios': ratios, 'checks': checks,
            'all_met': bool(all_met)}


def table(results):
    rows = []
    for peer in PEERS:
        for variant in VARIANTS[peer]:
            r = results[f'{peer}/{variant}']
            floor = results[f'floor/{FLOOR_OF[variant]}']['median_us']
            zope = results.get(f'zope.session/{variant}')
            rows.append([
                f'{peer}/{variant}',
                f'{r["median_us"]:.0f}',
                f'{r["p90_us"]:.0f}',
                f'{r["median_of_batch_means_us"]:.0f}',
                f'{r["median_us"] / floor:.2f}x',
                f'{r["median_us"] / zope["median_us"]:.2f}x' if zope else '-',
                f'{r["records_per_transaction"]:.1f}'
                if r['transactions'] else '0 txn',
                f'{r["bytes_per_transaction"]:.0f}'
                if r['transactions'] else '-',
            ])
    return common.format_table(
        ['request', 'median us', 'p90 us', 'batch-mean us', 'vs floor',
         'vs zope.session', 'records/txn', 'bytes/txn'], rows)


def run_profiles(directory, args):
    """cProfile of zodbsession's request path, one profile per variant."""
    worker = WorkerProcess('zodbsession', os.path.join(directory),
                           args.sessions, args.warmup)
    try:
        worker.result()
        return {variant: worker.ask(action='profile', variant=variant,
                                    count=args.profile_count)['profile']
                for variant in VARIANTS['zodbsession']}
    finally:
        worker.ask(action='finish')
        worker.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='few rounds and small batches (a smoke run)')
    parser.add_argument('--sessions', type=int, default=10000)
    parser.add_argument('--rounds', type=int, default=None)
    parser.add_argument('--batch', type=int, default=None)
    parser.add_argument('--warmup', type=int, default=200,
                        help='requests of each variant before timing')
    parser.add_argument('--dir', default=None,
                        help='where the temporary databases go (default:'
                             ' the system temp dir; /dev/shm takes the'
                             ' disk\'s fsync latency out of the timings)')
    parser.add_argument('--out', default=None,
                        help='result file name under bench/out/ (default:'
                             ' requests.json, requests-quick.json with'
                             ' --quick)')
    parser.add_argument('--seed', type=int, default=2024)
    parser.add_argument('--profile', action='store_true',
                        help='also profile zodbsession (always done when a'
                             ' target is missed)')
    parser.add_argument('--profile-count', type=int, default=3000)
    parser.add_argument('--worker', nargs=4, metavar=('PEER', 'DIR', 'N',
                                                      'WARMUP'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        name, directory, sessions, warmup = args.worker
        worker(name, directory, int(sessions), int(warmup))
        return
    if args.rounds is None:
        args.rounds = 5 if args.quick else 30
    if args.batch is None:
        args.batch = 100 if args.quick else 300
    if args.out is None:
        args.out = 'requests-quick.json' if args.quick else 'requests.json'
    if args.quick:
        args.profile_count = min(args.profile_count, 1000)
    drive(args)


if __name__ == '__main__':
    main()
