"""Storage cost of a new session: bytes and records per new small session.

Each peer gets a FileStorage warmed with ``--warm`` sessions (default
10,000), then ``--sessions`` new clients (default 2,000) each make one
request that stores one small value under one package id, through the
library's normal API, in a transaction of its own:

* zodbsession: ``ISession(request)[pkg_id][key] = value`` on a fresh
  WSGIRequest, with the registered CookieClientIdManager and a
  PersistentSessionDataContainer;
* zope.session 6.0: the same on a fresh zope.publisher TestRequest, with
  zope.session's ClientId, Session, CookieClientIdManager and
  PersistentSessionDataContainer;
* floor: bare ZODB, one small PersistentMapping per transaction inserted
  into an OOBTree under a 16-byte key (what any persistent session costs
  at least).

It reports the growth of the storage file per new session, and, from the
storage's transaction log, the records written per new session and which
classes they are. Each peer runs in its own subprocess (own component
registry, own caches). Results go to bench/out/bytes.json.

Run:  python bench/bench_bytes.py [--quick] [--sessions 2000] [--warm 10000]
      [--max-widths 1,8]
"""
import argparse
import collections
import os
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

PKG_ID = 'bench.pkg'
KEY = 'key'
VALUE = 'small value'
WARM_BATCH = 1000
SECRET = 'bench-secret-not-for-production'


# -- one peer per worker ------------------------------------------------------
# Each peer function sets the library up on a database and returns the
# connection and ``add_session()``: one new client's request storing one
# small value, without committing; it returns whether a cookie was issued.

def zodbsession_peer(db):
    import transaction
    from zodbsession import CookieClientIdManager
    from zodbsession import ISession
    from zodbsession import PersistentSessionDataContainer
    from zodbsession import register_adapters
    from zodbsession import register_session_utilities
    from zodbsession.testing import SessionTestClient
    from zodbsession.testing import response_headers

    conn = db.open()
    container = conn.root()['sessions'] = PersistentSessionDataContainer()
    transaction.commit()
    register_adapters()
    register_session_utilities(
        CookieClientIdManager(secret=SECRET), container)

    def add_session():
        request = SessionTestClient().request()
        ISession(request)[PKG_ID][KEY] = VALUE
        return any(name == 'Set-Cookie'
                   for name, _ in response_headers(request))

    return conn, add_session


def zope_session_peer(db):
    import transaction
    import zope.component
    from zope.publisher.browser import TestRequest
    from zope.publisher.interfaces import IRequest
    from zope.session.http import CookieClientIdManager
    from zope.session.interfaces import IClientId
    from zope.session.interfaces import IClientIdManager
    from zope.session.interfaces import ISession
    from zope.session.interfaces import ISessionDataContainer
    from zope.session.session import ClientId
    from zope.session.session import PersistentSessionDataContainer
    from zope.session.session import Session

    conn = db.open()
    container = conn.root()['sessions'] = PersistentSessionDataContainer()
    transaction.commit()
    zope.component.provideAdapter(ClientId, (IRequest,), IClientId)
    zope.component.provideAdapter(Session, (IRequest,), ISession)
    zope.component.provideUtility(
        CookieClientIdManager(namespace='zope3_cs', secret=SECRET),
        IClientIdManager)
    zope.component.provideUtility(container, ISessionDataContainer)

    def add_session():
        request = TestRequest()
        ISession(request)[PKG_ID][KEY] = VALUE
        return bool(request.response.getCookie('zope3_cs'))

    return conn, add_session


def floor_peer(db):
    import transaction
    from BTrees.OOBTree import OOBTree
    from persistent.mapping import PersistentMapping

    conn = db.open()
    tree = conn.root()['sessions'] = OOBTree()
    transaction.commit()

    def add_session():
        tree[secrets.token_bytes(16)] = PersistentMapping({KEY: VALUE})
        return True

    return conn, add_session


PEERS = {
    'zodbsession': zodbsession_peer,
    'zope.session': zope_session_peer,
    'floor': floor_peer,
}

# --max-widths: zodbsession with each placement of its slices held to
# fewer trees, to see what a tree holding more sessions (and so a bigger
# record, and then splits) costs a new session.
WIDTH_PEER_PREFIX = 'zodbsession-width'


def max_width_peer(width):
    def peer(db):
        import zodbsession.filing
        zodbsession.filing.MAX_WIDTH = width        # this subprocess only
        return zodbsession_peer(db)
    return peer


def peer_factory(name):
    if name.startswith(WIDTH_PEER_PREFIX):
        return max_width_peer(int(name[len(WIDTH_PEER_PREFIX):]))
    return PEERS[name]


def record_census(storage, start_tid):
    """Transactions, records, payload bytes and classes since start_tid."""
    from ZODB.utils import get_pickle_metadata
    transactions = records = payload = 0
    classes = collections.Counter()
    class_bytes = collections.Counter()
    for txn in storage.iterator(start_tid):
        transactions += 1
        for record in txn:
            records += 1
            payload += len(record.data or b'')
            module, name = get_pickle_metadata(record.data)
            classes[f'{module}.{name}'] += 1
            class_bytes[f'{module}.{name}'] += len(record.data or b'')
    return transactions, records, payload, classes, class_bytes


def measure(peer, count, warm):
    import transaction
    from ZODB.utils import p64
    from ZODB.utils import u64

    with common.temp_dir() as directory:
        path = os.path.join(directory, 'Data.fs')
        db = common.open_filestorage_db(path)
        conn, add_session = peer_factory(peer)(db)
        # Warm through the same path, committed in batches (quicker).
        for index in range(1, warm + 1):
            add_session()
            if index % WARM_BATCH == 0:
                transaction.commit()
        transaction.commit()
        conn.cacheMinimize()
        storage = db.storage
        last_tid = storage.lastTransaction()
        before = os.path.getsize(path)
        cookies = 0
        with common.Timer() as timer:
            for _ in range(count):
                cookies += add_session()
                transaction.commit()
        grown = os.path.getsize(path) - before
        transactions, records, payload, classes, class_bytes = record_census(
            storage, p64(u64(last_tid) + 1))
        conn.close()
        db.close()
    if cookies != count or transactions != count:
        raise AssertionError(
            f'{peer}: {count} new clients gave {cookies} cookies and'
            f' {transactions} transactions')
    return {
        'peer': peer,
        'sessions': count,
        'warm': warm,
        'bytes_grown': grown,
        'bytes_per_session': grown / count,
        'records_per_session': records / count,
        'payload_bytes_per_session': payload / count,
        'overhead_bytes_per_session': (grown - payload) / count,
        'classes_per_session': {name: n / count
                                for name, n in classes.most_common()},
        'class_bytes_per_session': {name: n / count
                                    for name, n in class_bytes.items()},
        'seconds_per_session': timer.seconds / count,
    }


def worker(argv):
    peer, count, warm = argv[0], int(argv[1]), int(argv[2])
    common.emit_result(measure(peer, count, warm))


# -- driver -----------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='small numbers, for smoke-testing')
    parser.add_argument('--sessions', type=int,
                        help='new sessions measured (2,000)')
    parser.add_argument('--warm', type=int,
                        help='sessions created before measuring (10,000)')
    parser.add_argument('--max-widths',
                        help='also run zodbsession with its tables at most'
                             ' this many trees per group wide, comma'
                             ' separated (e.g. 1,8; the default is 64)')
    parser.add_argument('--output', default='bytes.json')
    args = parser.parse_args(argv)
    if args.sessions is None:
        args.sessions = 200 if args.quick else 2000
    if args.warm is None:
        args.warm = 1000 if args.quick else 10000
    return args


def main(argv):
    args = parse_args(argv)
    machine = common.machine_info()
    print(common.machine_line(machine), flush=True)
    started = time.perf_counter()
    results = {}
    peers = list(PEERS)
    if args.max_widths:
        peers += [f'{WIDTH_PEER_PREFIX}{width}'
                  for width in args.max_widths.split(',')]
    for peer in peers:
        common.progress(f'{peer}: {args.warm:,} warm + {args.sessions:,}'
                        ' new sessions')
        results[peer] = common.run_worker(
            __file__, peer, args.sessions, args.warm)
    ours = results['zodbsession']['bytes_per_session']
    theirs = results['zope.session']['bytes_per_session']
    floor = results['floor']['bytes_per_session']
    report = {
        'machine': machine,
        'versions': common.package_versions('zope.session', 'ZODB',
                                            'BTrees'),
        'settings': {'sessions': args.sessions, 'warm': args.warm,
                     'quick': args.quick},
        'peers': results,
        'ratios': {
            'zodbsession_over_zope_session': common.ratio(ours, theirs),
            'zodbsession_over_floor': common.ratio(ours, floor),
        },
        'total_seconds': time.perf_counter() - started,
    }
    report['targets'] = {
        'at_most_1_3_of_zope_session':
            report['ratios']['zodbsession_over_zope_session'] <= 1 / 3,
    }
    print_report(report)
    path = common.write_json(args.output, report)
    print(f'\nresults written to {os.path.relpath(path)}')


def print_report(report):
    rows = []
    for peer, r in report['peers'].items():
        rows.append([
            peer, f"{r['bytes_per_session']:.0f}",
            f"{r['payload_bytes_per_session']:.0f}",
            f"{r['overhead_bytes_per_session']:.0f}",
            f"{r['records_per_session']:.2f}",
            common.format_seconds(r['seconds_per_session']),
        ])
    settings = report['settings']
    print(f"\nper new session ({settings['sessions']:,} new, each its own"
          f" transaction, after {settings['warm']:,} warm; FileStorage)")
    print(common.format_table(
        ['peer', 'bytes', 'pickles', 'headers', 'records', 'time'], rows))
    print('\nrecords (pickle bytes) per new session, by class:')
    for peer, r in report['peers'].items():
        written = ', '.join(
            f"{name} {n:.2f} ({r['class_bytes_per_session'][name]:.0f} B)"
            for name, n in r['classes_per_session'].items())
        print(f'  {peer}: {written}')
    ratios = report['ratios']
    met = report['targets']['at_most_1_3_of_zope_session']
    print(f"\nzodbsession / zope.session bytes per new session:"
          f" {ratios['zodbsession_over_zope_session']:.3f}"
          f" (target <= 0.333: {'met' if met else 'MISSED'});"
          f" zodbsession / floor: {ratios['zodbsession_over_floor']:.2f}")


if __name__ == '__main__':
    if sys.argv[1:2] == ['--worker']:
        worker(sys.argv[2:])
    else:
        main(sys.argv[1:])
