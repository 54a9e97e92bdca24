"""What a request costs the processor, counted by a simulated one.

The timed benchmarks run on shared machines whose noise (here, often
10 % between two runs of the same code) hides any change smaller than
that. This script runs the same requests under Valgrind's callgrind,
which executes the program on a simulated processor and counts, exactly
and the same on every run: the instructions it executes, its misses in
the level-1 instruction and data caches and in the last-level cache, and
its mispredicted branches. So a change of a few percent in any of them
shows, and shows where it comes from.

It also shows what timings alone do not: the signed-cookie read-write
request of ours executes fewer instructions than Pyramid's, yet takes
longer, because it touches more code and data per request (more distinct
functions, their bytecode, their objects), so more of its reads miss the
level-1 cache and more of its branches are mispredicted.

Requests (each peer as bench_cookies.py and bench_requests.py build it):

- ``cookie-rw``: the signed-cookie read-write request, ours and Pyramid
  2.1's SignedCookieSessionFactory;
- ``cookie-ro``: the signed-cookie read-only request, ours and Pyramid's;
- ``new``: a new client's request through the middleware, beside the
  bare ZODB read-write floor, on a FileStorage under ``--dir`` holding
  ``--sessions`` sessions (fewer than the timed benchmark's 10,000: the
  simulated processor runs some fifty times slower).

Each peer runs in two processes under callgrind: one serving ``--warm``
requests, one serving ``--warm`` + ``--requests``; the difference,
divided by ``--requests``, is what one request costs, with the set-up
and the start of Python left out. Estimated cycles weigh each event by
a typical cost on a current x86 processor (an instruction 1, a level-1
miss that the next level serves 12, a last-level miss 200, a
mispredicted branch 15): a model to compare peers with, not a
measurement of any machine.

Run:  python bench/simulated.py [--only cookie-rw,new] [--requests 1000]
      [--warm 200] [--sessions 1000] [--dir /dev/shm]
Needs valgrind (Debian: ``apt-get install valgrind``). Results go to
bench/out/simulated.json.
"""
import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

# What one event costs, in cycles, in the estimate (see the docstring).
WEIGHTS = {
    'Ir': 1,
    'I1mr': 12, 'D1mr': 12, 'D1mw': 12,
    'ILmr': 200, 'DLmr': 200, 'DLmw': 200,
    'Bcm': 15, 'Bim': 15,
}
SHOWN = (('Ir', 'instructions'), ('D1mr', 'L1 data read misses'),
         ('I1mr', 'L1 instruction misses'), ('Bcm', 'mispredicted branches'),
         ('Bim', 'mispredicted indirect jumps'))
# request -> ((label, peer name), ...): ours first, the peer it is
# compared with second.
REQUESTS = {
    'cookie-rw': (('zodbsession, signed read-write', 'ours-cookie-rw'),
                  ('Pyramid, signed read-write', 'pyramid-cookie-rw')),
    'cookie-ro': (('zodbsession, signed read-only', 'ours-cookie-ro'),
                  ('Pyramid, signed read-only', 'pyramid-cookie-ro')),
    'new': (('zodbsession, a new client', 'ours-new'),
            ('bare ZODB floor, read-write', 'floor-rw')),
}


# -- in the process that callgrind runs ----------------------------------------

def make_request(peer, directory, sessions):
    """A callable serving one request of ``peer``."""
    import bench_cookies
    import bench_requests
    if peer.startswith('ours-cookie'):
        read_only = peer.endswith('ro')
        served = bench_cookies.ZodbsessionPeer(directory, encrypted=False,
                                               read_only=read_only)
        served.before_batch()
        return served.one_request
    if peer.startswith('pyramid-cookie'):
        served = bench_cookies.PyramidPeer(read_only=peer.endswith('ro'))
        served.before_batch()
        return served.one_request
    if peer == 'ours-new':
        served = bench_requests.ZodbsessionPeer(directory, sessions)
        served.build()
        return lambda: served.request('new', None)
    if peer == 'floor-rw':
        served = bench_requests.FloorPeer(directory, sessions)
        served.build()
        indexes = itertools.count()
        return lambda: served.request('rw', next(indexes) % sessions)
    raise SystemExit(f'unknown peer {peer!r}')


def serve(peer, count, directory, sessions):
    request = make_request(peer, directory, sessions)
    for _ in range(count):
        request()


# -- the driver ---------------------------------------------------------------

def callgrind_totals(peer, count, args):
    """{event: count} of one process serving ``count`` requests."""
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        out = os.path.join(directory, 'callgrind.out')
        command = [
            'valgrind', '--tool=callgrind', '--cache-sim=yes',
            '--branch-sim=yes', f'--callgrind-out-file={out}',
            sys.executable, os.path.abspath(__file__), '--serve', peer,
            '--count', str(count), '--sessions', str(args.sessions),
            '--data-dir', directory]
        # One string hash for every run: with a random one, each process
        # lays its dictionaries out anew, which moves the counts of the
        # same code by some 0.5 % between runs.
        environment = dict(os.environ, PYTHONHASHSEED='0')
        completed = subprocess.run(command, capture_output=True, text=True,
                                   env=environment)
        if completed.returncode != 0:
            raise SystemExit(f'{peer} failed under valgrind:\n'
                             f'{completed.stderr[-3000:]}')
        return parse_totals(out)


def parse_totals(path):
    """The ``events:`` and ``summary:`` lines of a callgrind output file."""
    events = totals = None
    with open(path, encoding='utf-8', errors='replace') as lines:
        for line in lines:
            if line.startswith('events:'):
                events = line.split()[1:]
            elif line.startswith(('summary:', 'totals:')):
                totals = [int(value) for value in line.split()[1:]]
    if events is None or totals is None:
        raise SystemExit(f'{path}: no events or summary line')
    return dict(zip(events, totals))


def per_request(peer, args):
    warm = callgrind_totals(peer, args.warm, args)
    more = callgrind_totals(peer, args.warm + args.requests, args)
    costs = {event: (more[event] - warm.get(event, 0)) / args.requests
             for event in more}
    costs['cycles'] = sum(costs.get(event, 0) * weight
                          for event, weight in WEIGHTS.items())
    return costs


def print_request(name, rows):
    (ours_label, ours), (peer_label, peer) = rows
    print(f'\n{name}: per request')
    print(f'  {"":30} {ours_label:>32} {peer_label:>32}  ratio')
    for event, label in SHOWN + (('cycles', 'estimated cycles'),):
        mine, theirs = ours.get(event, 0), peer.get(event, 0)
        ratio = f'{theirs / mine:.3f}' if mine else '-'
        print(f'  {label:30} {mine:32,.0f} {theirs:32,.0f}  {ratio}')
    print(f'  (ratio: {peer_label} / {ours_label}; above 1, ours'
          ' costs less)')


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--only', help='comma-separated: '
                        + ', '.join(REQUESTS))
    parser.add_argument('--requests', type=int, default=1000)
    parser.add_argument('--warm', type=int, default=200)
    parser.add_argument('--sessions', type=int, default=1000)
    parser.add_argument('--dir', default='/dev/shm'
                        if os.path.isdir('/dev/shm') else None)
    parser.add_argument('--output', default='simulated.json')
    # In the process callgrind runs:
    parser.add_argument('--serve', help=argparse.SUPPRESS)
    parser.add_argument('--count', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--data-dir', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warm < 0 or args.sessions < 1:
        parser.error('--requests and --sessions must be at least 1,'
                     ' --warm at least 0')
    if args.only:
        unknown = set(args.only.split(',')) - set(REQUESTS)
        if unknown:
            parser.error(f'unknown request(s): {", ".join(sorted(unknown))}'
                         f'; known: {", ".join(REQUESTS)}')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.serve:
        serve(args.serve, args.count, args.data_dir, args.sessions)
        return 0
    if shutil.which('valgrind') is None:
        print('valgrind is not installed (Debian: apt-get install'
              ' valgrind); nothing measured', file=sys.stderr)
        return 2
    print(common.machine_line())
    names = args.only.split(',') if args.only else list(REQUESTS)
    report = {'requests': args.requests, 'warm': args.warm,
              'sessions': args.sessions, 'weights': WEIGHTS, 'results': {}}
    for name in names:
        rows = tuple((label, per_request(peer, args))
                     for label, peer in REQUESTS[name])
        report['results'][name] = {label: costs for label, costs in rows}
        print_request(name, rows)
    path = common.write_json(args.output, report)
    print(f'\nwritten to {os.path.relpath(path)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
