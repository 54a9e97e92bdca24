"""Storage growth over months, in seconds: scheduled packing on and off.

Steady traffic on a FileStorage, with the project's manual clock (no
sleeps): every step of ``resolution`` (600 s) seconds, new clients
arrive, some of the clients in use come back and change their session,
and clients that stopped coming let their session expire. The sessions
live ``timeout`` = one day (so the default ``pack_interval``, one day,
is what schedules packing), and the run lasts 20 timeouts. The
maintenance (``zodbsession.maintenance``) ticks after every step, as the
background thread does: it sweeps, and packs when due.

Run twice, on the same traffic: with the default schedule, and with
``pack_interval=0`` (sweeping only, no packing). Prints the figures and
writes a plot of storage size and live sessions over simulated time to
docs/_static/storage_growth.png (matplotlib, from the ``bench`` extra),
and the numbers to bench/out/storage_growth.json.

Requirement (issue 17): with the schedule on, the largest storage size
in timeouts 11-20 is at most 1.25 times the largest in timeouts 6-10;
without it, the storage grows linearly.

Run:  python bench/bench_storage_growth.py [--timeouts 20] [--new 3]
      [--returning 10]
"""
import argparse
import json
import os
import random
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'src'))

from zodbsession import clock                          # noqa: E402
from zodbsession.testing import SessionTestClient      # noqa: E402
from zodbsession.testing import filestorage_db         # noqa: E402
from zodbsession.wsgi import SessionMiddleware         # noqa: E402

TIMEOUT = 24 * 3600
STEP = 600          # the container's default resolution
START = 1_700_000_000
PLOT = os.path.join(os.path.dirname(HERE), 'docs', '_static',
                    'storage_growth.png')
OUT = os.path.join(HERE, 'out', 'storage_growth.json')


def app(environ, start_response):
    data = environ['zodbsession.session']['bench']
    data['visits'] = data.get('visits', 0) + 1
    data['page'] = environ.get('PATH_INFO', '/') * 40    # ~200 bytes
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'ok']


def run(pack_interval, timeouts, new_per_step, returning_per_step, seed):
    rng = random.Random(seed)
    samples = []
    with clock.use_clock(clock.ManualClock(START)) as manual, \
            filestorage_db(tempfile.mkdtemp(prefix='growth-')) as db:
        wsgi = SessionMiddleware(app, db=db, pack_interval=pack_interval,
                                 timeout=TIMEOUT)
        # Ticked here, after each step, rather than by its thread.
        maintenance = wsgi.maintenance
        maintenance.stop()
        active = []     # [client, step after which it stops coming]
        steps = timeouts * TIMEOUT // STEP
        mean_stay = TIMEOUT // STEP       # clients stay about a timeout
        for step in range(steps):
            for _ in range(new_per_step):
                client = SessionTestClient()
                client.call(wsgi, PATH_INFO='/new')
                active.append(
                    [client, step + int(rng.expovariate(1 / mean_stay))])
            active = [entry for entry in active if entry[1] > step]
            for client, _ in rng.sample(active,
                                        min(returning_per_step,
                                            len(active))):
                client.call(wsgi, PATH_INFO='/back')
            manual.advance(STEP)
            maintenance.tick()
            if step % 6 == 5:       # hourly
                live = _live_sessions(db)
                samples.append({'t': (step + 1) * STEP,
                                'size': db.getSize(), 'live': live})
    return samples


def _live_sessions(db):
    with db.transaction() as connection:
        container = connection.root()['zodbsession'].container
        return container.count()


def largest(samples, first, last):
    """The largest size in timeouts first..last (1-based, inclusive)."""
    return max(s['size'] for s in samples
               if (first - 1) * TIMEOUT < s['t'] <= last * TIMEOUT)


def plot(on, off, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for samples, label, style in ((off, 'pack_interval=0 (sweep only)',
                                   '--'),
                                  (on, 'default schedule (daily pack)',
                                   '-')):
        days = [s['t'] / TIMEOUT for s in samples]
        top.plot(days, [s['size'] / 1e6 for s in samples], style,
                 label=label)
    top.set_ylabel('FileStorage size (MB)')
    top.legend(loc='upper left')
    top.set_title('Storage size and live sessions, steady traffic,'
                  ' timeout = 1 day')
    bottom.plot([s['t'] / TIMEOUT for s in on], [s['live'] for s in on],
                color='tab:green')
    bottom.set_ylabel('sessions not yet swept')
    bottom.set_xlabel('simulated time (timeouts = days)')
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--timeouts', type=int, default=20)
    parser.add_argument('--new', type=int, default=3,
                        help='new clients per step (default 3)')
    parser.add_argument('--returning', type=int, default=10,
                        help='returning clients per step (default 10)')
    parser.add_argument('--seed', type=int, default=17)
    parser.add_argument('--plot', default=PLOT)
    args = parser.parse_args(argv)
    traffic = (args.timeouts, args.new, args.returning, args.seed)
    on = run(24 * 3600, *traffic)
    off = run(0, *traffic)
    result = {}
    for name, samples in (('schedule', on), ('no_schedule', off)):
        early = largest(samples, 6, 10)
        late = largest(samples, 11, args.timeouts)
        result[name] = {'largest_6_10': early, 'largest_11_20': late,
                        'ratio': round(late / early, 3),
                        'final_size': samples[-1]['size'],
                        'final_live': samples[-1]['live']}
        print(f'{name}: largest size in timeouts 6-10 {early:,} B,'
              f' in 11-{args.timeouts} {late:,} B, ratio'
              f' {late / early:.3f}; final size {samples[-1]["size"]:,} B,'
              f' {samples[-1]["live"]} sessions not yet swept')
    # Linear growth: each timeout adds about the same.
    off_sizes = [largest(off, n, n) for n in range(1, args.timeouts + 1)]
    steps = [b - a for a, b in zip(off_sizes[5:], off_sizes[6:])]
    print(f'no_schedule growth per timeout (6-{args.timeouts}):'
          f' min {min(steps):,} B, max {max(steps):,} B')
    result['no_schedule']['growth_per_timeout'] = steps
    ok = result['schedule']['ratio'] <= 1.25
    print('requirement (schedule ratio <= 1.25):',
          'met' if ok else 'NOT met')
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, 'w') as out:
        json.dump({'result': result, 'schedule': on, 'no_schedule': off},
                  out, indent=1)
    plot(on, off, args.plot)
    print(f'plot: {args.plot}')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
