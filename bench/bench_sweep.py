"""Sweep cost: zodbsession against zope.session 6.0, and how it scales.

Measures, in one run, the wall time of ``container.sweep()`` plus
``transaction.commit()`` on a FileStorage opened cold (a fresh process
opens a fresh copy of the database, so the ZODB cache is empty; the OS
page cache is not flushed):

1. peers: N sessions (default 100,000), 10% of them expired, in
   zodbsession's and in zope.session 6.0's PersistentSessionDataContainer;
2. scaling: zodbsession with L live + 10,000 expired sessions, for each
   L in ``--sizes`` (default 100,000 and 1,000,000): the sweep should
   not grow with the number of live sessions.

Every session holds one small value under one package id. Each library
runs in its own subprocess (builds and sweeps alike), and each sweep is
repeated ``--repeats`` times on fresh copies of the built database; the
table shows the median (and min). Results go to bench/out/sweep.json.

Run:  python bench/bench_sweep.py [--quick] [--sizes 100000,1000000]
      [--sessions 100000] [--expired-fraction 0.1] [--repeats 5]

Building 1,000,000 sessions takes a few minutes (10,000 per transaction).
"""
import argparse
import os
import random
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

PKG_ID = 'bench.pkg'
TIMEOUT = 3600
RESOLUTION = 600
# zope.session's sweep reads time.time(); expired sessions are made this
# much older than the expiry limit, live ones at most this much old.
ZOPE_EXPIRED_EXTRA = 1800
LIVE_SPREAD = 1800
# Objects a connection keeps while building: enough that building does
# not keep reloading the buckets it just wrote.
BUILD_CACHE_SIZE = 200000


def client_ids(count):
    # Any unique string will do: both containers key by the id string
    # (zodbsession hashes it). 54 characters, the length of zope.session's.
    return [secrets.token_urlsafe(40)[:54] for _ in range(count)]


# -- zodbsession ----------------------------------------------------------

def zodbsession_timestamps(now, live, expired, rng):
    """Last-access times: ``expired`` in wholly expired slices (so one
    sweep removes them all), ``live`` spread over the last hour."""
    from zodbsession import expiry
    length = expiry.slice_length(TIMEOUT, RESOLUTION)
    oldest = expiry.oldest_live_end(now, TIMEOUT, RESOLUTION)
    last_expired_end = oldest - oldest % length   # a slice end <= oldest
    times = [rng.uniform(last_expired_end - 3 * length, last_expired_end - 1)
             for _ in range(expired)]
    times += [rng.uniform(now - TIMEOUT + 1, now) for _ in range(live)]
    return sorted(times)


def build_zodbsession(path, live, expired, batch):
    import transaction
    import zodbsession.container
    from zodbsession import expiry
    from zodbsession import PersistentSessionDataContainer
    from zodbsession import SessionData
    from zodbsession import SessionPkgData
    from zodbsession.clock import ManualClock
    from zodbsession.clock import use_clock

    rng = random.Random(2024)
    # Mid-slice, so the slice boundaries are the same on every run.
    now = float(int(time.time()) // RESOLUTION * RESOLUTION
                + RESOLUTION // 2)
    times = zodbsession_timestamps(now, live, expired, rng)
    ids = client_ids(len(times))
    clock = ManualClock(times[0])
    # Creating sessions in time order opens new slices, and opening a
    # slice sweeps implicitly: it would remove the expired sessions before
    # the sweep we mean to measure. Build as a container whose implicit
    # sweeps never ran (as `zodbsession sweep` would find it).
    zodbsession.container.IMPLICIT_SWEEP_LIMIT = 0
    db = common.open_filestorage_db(path, cache_size=BUILD_CACHE_SIZE)
    conn = db.open()
    started = time.perf_counter()
    with use_clock(clock):
        container = conn.root()['sessions'] = PersistentSessionDataContainer(
            timeout=TIMEOUT, resolution=RESOLUTION)
        for index, (client_id, when) in enumerate(zip(ids, times), 1):
            clock.value = when
            data = SessionData()
            data[PKG_ID] = SessionPkgData()
            data[PKG_ID]['key'] = 'small value'
            container[client_id] = data
            if index % batch == 0:
                transaction.commit()
                if index % (batch * 10) == 0:
                    common.progress(f'  zodbsession: {index:,} sessions')
        transaction.commit()
        slices = {end: len(tree) for end, tree in container._slices.items()}
    build_seconds = time.perf_counter() - started
    conn.close()
    db.close()
    oldest = expiry.oldest_live_end(now, TIMEOUT, RESOLUTION)
    return {
        'now': now,
        'build_seconds': build_seconds,
        'file_bytes': os.path.getsize(path),
        'slices': len(slices),
        'expired_slices': sum(1 for end in slices if end <= oldest),
        'live_slice_ends': sorted(end for end in slices if end > oldest),
        'sessions_in_expired_slices': sum(
            n for end, n in slices.items() if end <= oldest),
    }


def sweep_zodbsession(path, now):
    import transaction
    from zodbsession.clock import ManualClock
    from zodbsession.clock import use_clock

    db = common.open_filestorage_db(path)
    conn = db.open()
    with use_clock(ManualClock(now)):
        with common.Timer() as timer:
            with common.Timer() as sweep_only:
                dropped = conn.root()['sessions'].sweep_expired()
            transaction.commit()
        loads, stores = conn.getTransferCounts()
        remaining = list(conn.root()['sessions']._slices.keys())
    conn.close()
    db.close()
    return {'seconds': timer.seconds, 'sweep_only_seconds': sweep_only.seconds,
            'loads': loads, 'stores': stores,
            'slices_dropped': dropped, 'remaining_slice_ends': remaining}


# -- zope.session ---------------------------------------------------------

def build_zope(path, live, expired, batch):
    import transaction
    from zope.session.session import PersistentSessionDataContainer
    from zope.session.session import SessionData
    from zope.session.session import SessionPkgData

    rng = random.Random(2024)
    now = time.time()
    limit = now - TIMEOUT - RESOLUTION
    times = [rng.uniform(limit - ZOPE_EXPIRED_EXTRA, limit - 60)
             for _ in range(expired)]
    times += [rng.uniform(now - LIVE_SPREAD, now) for _ in range(live)]
    rng.shuffle(times)
    ids = client_ids(len(times))
    db = common.open_filestorage_db(path, cache_size=BUILD_CACHE_SIZE)
    conn = db.open()
    started = time.perf_counter()
    container = conn.root()['sessions'] = PersistentSessionDataContainer()
    container.timeout, container.resolution = TIMEOUT, RESOLUTION
    for index, (client_id, when) in enumerate(zip(ids, times), 1):
        data = container[client_id] = SessionData()
        data[PKG_ID] = SessionPkgData()
        data[PKG_ID]['key'] = 'small value'
        data.setLastAccessTime(int(when))
        if index % batch == 0:
            transaction.commit()
            if index % (batch * 10) == 0:
                common.progress(f'  zope.session: {index:,} sessions')
    transaction.commit()
    build_seconds = time.perf_counter() - started
    conn.close()
    db.close()
    return {'build_seconds': build_seconds,
            'file_bytes': os.path.getsize(path)}


def sweep_zope(path):
    import transaction

    db = common.open_filestorage_db(path)
    conn = db.open()
    container = conn.root()['sessions']
    with common.Timer() as timer:
        with common.Timer() as sweep_only:
            container.sweep()
        transaction.commit()
    loads, stores = conn.getTransferCounts()
    remaining = len(container.data)
    conn.close()
    db.close()
    return {'seconds': timer.seconds, 'sweep_only_seconds': sweep_only.seconds,
            'loads': loads, 'stores': stores,
            'remaining_sessions': remaining}


def worker(argv):
    action, path, *rest = argv
    if action == 'build-zodbsession':
        live, expired, batch = map(int, rest)
        result = build_zodbsession(path, live, expired, batch)
    elif action == 'sweep-zodbsession':
        result = sweep_zodbsession(path, float(rest[0]))
    elif action == 'build-zope':
        live, expired, batch = map(int, rest)
        result = build_zope(path, live, expired, batch)
    elif action == 'sweep-zope':
        result = sweep_zope(path)
    else:
        raise SystemExit(f'unknown worker action {action!r}')
    common.emit_result(result)


# -- driver -----------------------------------------------------------------

class Dataset:
    """One built database and the sweeps measured on copies of it."""

    def __init__(self, name, library, live, expired, directory):
        self.name, self.library = name, library
        self.live, self.expired = live, expired
        self.path = os.path.join(directory, f'{name}.fs')
        self.build = None
        self.sweeps = []

    def run_build(self, batch):
        common.progress(f'building {self.name}: {self.live:,} live +'
                        f' {self.expired:,} expired ({self.library})')
        action = ('build-zodbsession' if self.library == 'zodbsession'
                  else 'build-zope')
        self.build = common.run_worker(
            __file__, action, self.path, self.live, self.expired, batch)
        common.progress(f'  built in {self.build["build_seconds"]:.1f} s,'
                        f' {self.build["file_bytes"] / 1e6:.0f} MB')

    def run_sweep(self):
        copy = self.path[:-3] + '-sweep.fs'
        common.remove_filestorage(copy)
        common.copy_filestorage(self.path, copy)
        # The commit ends with an fsync; start it with no other dirty
        # pages pending (from the copy or anyone else) that it might wait
        # for.
        os.sync()
        try:
            if self.library == 'zodbsession':
                result = common.run_worker(
                    __file__, 'sweep-zodbsession', copy, self.build['now'])
                self.check_zodbsession(result)
            else:
                result = common.run_worker(__file__, 'sweep-zope', copy)
                if result['remaining_sessions'] != self.live:
                    raise AssertionError(
                        f'{self.name}: zope.session kept'
                        f' {result["remaining_sessions"]} sessions,'
                        f' expected {self.live}')
        finally:
            common.remove_filestorage(copy)
        self.sweeps.append(result)
        return result

    def check_zodbsession(self, result):
        build = self.build
        if (result['remaining_slice_ends'] != build['live_slice_ends']
                or build['sessions_in_expired_slices'] != self.expired):
            raise AssertionError(
                f'{self.name}: the sweep did not remove exactly the expired'
                f' sessions: {build} / {result}')

    def summary(self):
        seconds = common.summary([s['seconds'] for s in self.sweeps])
        sweep_only = common.summary(
            [s['sweep_only_seconds'] for s in self.sweeps])
        return {
            'library': self.library, 'live': self.live,
            'expired': self.expired, 'build': self.build,
            'sweep_seconds': seconds,
            'sweep_only_seconds': sweep_only,
            'sweep_loads': self.sweeps[-1]['loads'],
            'sweep_stores': self.sweeps[-1]['stores'],
        }


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='small numbers, for smoke-testing')
    parser.add_argument('--sessions', type=int,
                        help='sessions in the peer comparison (100,000)')
    parser.add_argument('--expired-fraction', type=float, default=0.1)
    parser.add_argument('--sizes',
                        help='live sessions of the scaling comparison,'
                             ' comma separated (100000,1000000)')
    parser.add_argument('--zope-sizes',
                        help='live sessions of zope.session at which to'
                             ' plot its sweep too, comma separated'
                             ' (10000,30000; its sweep reads every'
                             ' session, so larger sizes take minutes)')
    parser.add_argument('--scaling-expired', type=int,
                        help='expired sessions in the scaling comparison'
                             ' (10,000)')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--batch', type=int, default=10000,
                        help='sessions per transaction while building')
    parser.add_argument('--keep', action='store_true',
                        help='keep the built databases (path printed)')
    parser.add_argument('--output', default='sweep.json')
    args = parser.parse_args(argv)
    quick = args.quick
    if args.sessions is None:
        args.sessions = 10000 if quick else 100000
    if args.sizes is None:
        args.sizes = '10000,100000' if quick else '100000,1000000'
    args.sizes = [int(size) for size in args.sizes.split(',')]
    if args.zope_sizes is None:
        args.zope_sizes = '2000,5000' if quick else '10000,30000'
    args.zope_sizes = [int(size) for size in args.zope_sizes.split(',')]
    if args.scaling_expired is None:
        args.scaling_expired = 1000 if quick else 10000
    if quick:
        args.batch = min(args.batch, 2000)
    return args


def main(argv):
    args = parse_args(argv)
    machine = common.machine_info()
    print(common.machine_line(machine), flush=True)
    expired = round(args.sessions * args.expired_fraction)
    live = args.sessions - expired
    started = time.perf_counter()
    with common.temp_dir(keep=args.keep) as directory:
        if args.keep:
            print(f'databases in {directory}')
        peers = [
            Dataset('zodbsession-peer', 'zodbsession', live, expired,
                    directory),
            Dataset('zope.session-peer', 'zope.session', live, expired,
                    directory),
        ]
        scaling = [
            Dataset(f'zodbsession-{size}', 'zodbsession', size,
                    args.scaling_expired, directory)
            for size in args.sizes]
        # For the plot only: zope.session's sweep at a few sizes.
        zope_scaling = [
            Dataset(f'zope.session-{size}', 'zope.session', size,
                    args.scaling_expired, directory)
            for size in args.zope_sizes]
        datasets = peers + scaling + zope_scaling
        for dataset in datasets:
            dataset.run_build(args.batch)
        # Interleave the repeats, so drift in machine speed hits all alike.
        for repeat in range(args.repeats):
            common.progress(f'sweeps, round {repeat + 1}/{args.repeats}')
            for dataset in datasets:
                dataset.run_sweep()
    total = time.perf_counter() - started

    results = {
        'machine': machine,
        'versions': common.package_versions('zope.session', 'ZODB',
                                            'BTrees'),
        'settings': {'timeout': TIMEOUT, 'resolution': RESOLUTION,
                     'repeats': args.repeats, 'batch': args.batch,
                     'quick': args.quick},
        'datasets': {d.name: d.summary() for d in datasets},
        'total_seconds': total,
    }
    ours = results['datasets']['zodbsession-peer']['sweep_seconds']['median']
    theirs = results['datasets']['zope.session-peer']['sweep_seconds'][
        'median']
    smallest = results['datasets'][scaling[0].name]['sweep_seconds'][
        'median']
    largest = results['datasets'][scaling[-1].name]['sweep_seconds'][
        'median']
    def fastest(name):
        return results['datasets'][name]['sweep_seconds']['min']

    results['ratios'] = {
        'zodbsession_over_zope_session': common.ratio(ours, theirs),
        'zope_session_over_zodbsession': common.ratio(theirs, ours),
        'largest_over_smallest': common.ratio(largest, smallest),
        # A millisecond sweep is mostly FileStorage's fsync, which jitters;
        # the ratio of the fastest runs shows the work itself.
        'largest_over_smallest_min': common.ratio(
            fastest(scaling[-1].name), fastest(scaling[0].name)),
    }
    results['targets'] = {
        'peer_ratio_at_most_1_20': results['ratios'][
            'zodbsession_over_zope_session'] <= 1 / 20,
        'scaling_ratio_within_1_5': results['ratios'][
            'largest_over_smallest'] <= 1.5,
    }
    print_report(results, datasets, peers, scaling)
    path = common.write_json(args.output, results)
    print(f'\nresults written to {os.path.relpath(path)}'
          f' (total {total:.0f} s)')


def print_report(results, datasets, peers, scaling):
    rows = []
    for dataset in datasets:
        s = results['datasets'][dataset.name]
        rows.append([
            dataset.name, f'{dataset.live:,}', f'{dataset.expired:,}',
            common.format_seconds(s['sweep_seconds']['median']),
            common.format_seconds(s['sweep_seconds']['min']),
            common.format_seconds(s['sweep_only_seconds']['median']),
            f"{s['sweep_loads']:,}", f"{s['sweep_stores']:,}",
            f"{s['build']['build_seconds']:.1f} s",
            f"{s['build']['file_bytes'] / 1e6:.0f} MB",
        ])
    print('\nsweep() + transaction.commit(), cold cache, FileStorage,'
          f" {results['settings']['repeats']} runs each;"
          ' loads/stores: objects read/written by the sweep')
    print(common.format_table(
        ['dataset', 'live', 'expired', 'median', 'min', 'of which sweep()',
         'loads', 'stores', 'build', 'file'], rows))
    ratios = results['ratios']
    targets = results['targets']
    print(f'\nzodbsession / zope.session sweep time'
          f' ({peers[0].live + peers[0].expired:,} sessions):'
          f" {ratios['zodbsession_over_zope_session']:.5f}"
          f" (zope.session {ratios['zope_session_over_zodbsession']:,.0f}x"
          f" slower; target <= 1/20:"
          f" {'met' if targets['peer_ratio_at_most_1_20'] else 'MISSED'})")
    print('(zodbsession: "of which sweep()" is the work; the rest of the'
          ' time is the commit, i.e. FileStorage writing one record and'
          ' fsyncing)')
    print(f'zodbsession sweep, {scaling[-1].live:,} live /'
          f' {scaling[0].live:,} live (each + {scaling[0].expired:,}'
          f" expired): {ratios['largest_over_smallest']:.2f}x (target <= 1.5:"
          f" {'met' if targets['scaling_ratio_within_1_5'] else 'MISSED'});"
          f" fastest runs: {ratios['largest_over_smallest_min']:.2f}x")


if __name__ == '__main__':
    if sys.argv[1:2] == ['--worker']:
        worker(sys.argv[2:])
    else:
        main(sys.argv[1:])
