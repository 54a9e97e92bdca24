"""Run every benchmark, then write bench/RESULTS.md and the sweep plot.

Each ``bench/bench_*.py`` runs in a subprocess of its own, one after the
other (so they never compete for the machine), with ``--quick`` when this
script gets it; a benchmark that fails is reported and the others still
run. Then ``bench/report.py`` turns ``bench/out/*.json`` into the report.
The exit status is non-zero if any benchmark failed.

Run:  python bench/run_all.py [--quick] [--only sweep,concurrency]
      (``make bench`` runs it without options)
"""
import argparse
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_DIR = os.path.join(os.path.dirname(HERE), 'src')

# Seconds one benchmark may run before it is stopped.
BENCH_TIMEOUT = 3 * 3600


def benchmarks(only=None):
    """{name: path} of bench/bench_*.py, in name order."""
    found = {}
    for path in sorted(glob.glob(os.path.join(HERE, 'bench_*.py'))):
        name = os.path.basename(path)[len('bench_'):-len('.py')]
        if only is None or name in only:
            found[name] = path
    return found


def run(path, quick):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [SRC_DIR] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
    command = [sys.executable, path] + (['--quick'] if quick else [])
    print(f"\n=== {' '.join(os.path.relpath(part) if os.path.exists(part) else part for part in command[1:])}",
          flush=True)
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, env=env, timeout=BENCH_TIMEOUT)
        status = completed.returncode
    except subprocess.TimeoutExpired:
        status = 'timed out'
    return status, time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='every benchmark with --quick (a smoke test)')
    parser.add_argument('--only',
                        help='comma-separated names (sweep, requests, ...)')
    parser.add_argument('--no-report', action='store_true')
    args = parser.parse_args(argv)
    only = set(args.only.split(',')) if args.only else None
    found = benchmarks(only)
    if only and only - set(found):
        parser.error(f'no such benchmark: {", ".join(sorted(only - set(found)))}')

    outcomes = {}
    for name, path in found.items():
        outcomes[name] = run(path, args.quick)

    failed = False
    if not args.no_report:
        print('\n=== bench/report.py', flush=True)
        report = subprocess.run(
            [sys.executable, os.path.join(HERE, 'report.py')])
        failed |= report.returncode != 0

    print('\nbenchmark      status   time')
    for name, (status, seconds) in outcomes.items():
        ok = status == 0
        failed |= not ok
        print(f'{name:14} {"ok" if ok else f"FAILED ({status})":8}'
              f' {seconds:6.0f} s')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
