"""A long fuzzing campaign against every cookie parser and verifier.

The test suite runs a few thousand fixed examples (tests/test_fuzz_cookies.py);
this runs the same strategies and invariants (tests/fuzzing.py) for as long
as you give it, with fresh random examples each time:

    python bench/fuzz_campaign.py                      # 200,000 examples
    python bench/fuzz_campaign.py --examples 50000 --seconds 600
    python bench/fuzz_campaign.py --target middleware --seed 7

The examples are shared among the targets in proportion to their weight;
``--seconds`` bounds the whole campaign (each target gets its share).
A broken invariant stops the campaign and prints the smallest failing
example hypothesis found and the command that reproduces it; the exit
status is then 1.
"""
import argparse
import logging
import os
import random
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests'))
sys.path.insert(0, os.path.join(HERE, '..', 'src'))

from hypothesis import HealthCheck  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import seed as hypothesis_seed  # noqa: E402
from hypothesis import settings  # noqa: E402

import fuzzing  # noqa: E402
from zodbsession import testing  # noqa: E402

# Relative share of the examples: the end-to-end target is the slowest
# and the one that matters most.
WEIGHTS = {
    'signer': 1, 'b64decode': 1, 'codec': 1, 'manager': 2, 'publisher': 2,
    'middleware': 4,
}


def weight(target):
    for prefix, share in WEIGHTS.items():
        if target.name.startswith(prefix):
            return share
    return 1


# Examples per hypothesis run: the time limit is checked between runs, so
# a run that finds a failure still shrinks it undisturbed.
CHUNK = 2_000


def run_target(target, examples, seconds, run_seed):
    """Run ``target`` for ``examples`` examples or ``seconds``, whichever
    ends first; returns (examples run, seconds taken)."""
    count = 0

    def check(example):
        nonlocal count
        count += 1
        target.check(example)

    started = time.monotonic()
    chunk_number = 0
    while count < examples:
        if seconds is not None and time.monotonic() - started >= seconds:
            break
        before = count
        property_test = settings(
            max_examples=min(CHUNK, examples - count), deadline=None,
            database=None, derandomize=False, print_blob=True,
            suppress_health_check=list(HealthCheck),
        )(hypothesis_seed(run_seed + chunk_number)(
            given(target.strategy)(check)))
        property_test()
        chunk_number += 1
        if count == before:
            break       # nothing left to try
    return count, time.monotonic() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--examples', type=int, default=200_000,
                        help='examples in all, shared among the targets')
    parser.add_argument('--seconds', type=float, default=None,
                        help='stop after about this long in all')
    parser.add_argument('--target', action='append', default=[],
                        help='run only targets whose name starts with this'
                        ' (repeatable)')
    parser.add_argument('--seed', type=int, default=None,
                        help='hypothesis seed (default: a random one)')
    options = parser.parse_args(argv)
    run_seed = (options.seed if options.seed is not None
                else random.randrange(2**32))

    # zope.publisher logs every cookie it cannot parse; we know.
    logging.basicConfig(level=logging.ERROR)
    testing.setUp()
    directory = tempfile.mkdtemp(prefix='zodbsession-fuzz-')
    failed = False
    with testing.filestorage_db(directory) as db:
        world = fuzzing.MiddlewareWorld(db)
        targets = (fuzzing.signer_targets() + fuzzing.codec_targets()
                   + fuzzing.manager_targets() + fuzzing.publisher_targets()
                   + [world.target()])
        if options.target:
            targets = [t for t in targets
                       if any(t.name.startswith(p) for p in options.target)]
        total = sum(weight(t) for t in targets)
        print(f'seed {run_seed}; {len(targets)} targets;'
              f' {options.examples} examples'
              + (f', at most {options.seconds:.0f} s' if options.seconds
                 else ''))
        all_examples = 0
        all_seconds = 0.0
        for target in targets:
            share = weight(target) / total
            examples = max(1, int(options.examples * share))
            seconds = (None if options.seconds is None
                       else options.seconds * share)
            try:
                count, elapsed = run_target(target, examples, seconds,
                                            run_seed)
            except Exception as exc:
                print(f'FAILED {target.name}: {type(exc).__name__}: {exc}')
                print(f'reproduce: python bench/fuzz_campaign.py'
                      f' --seed {run_seed} --target "{target.name}"')
                failed = True
                break
            all_examples += count
            all_seconds += elapsed
            print(f'{target.name:45} {count:8d} examples {elapsed:8.1f} s'
                  f' {count / max(elapsed, 1e-9):9.0f} /s', flush=True)
    testing.tearDown()
    if not failed:
        print(f'{"all targets":45} {all_examples:8d} examples'
              f' {all_seconds:8.1f} s'
              f' {all_examples / max(all_seconds, 1e-9):9.0f} /s')
        print('no invariant broken')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
