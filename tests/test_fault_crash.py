"""A worker writing sessions to a FileStorage is killed with SIGKILL at
random moments; after every restart the storage opens and holds every
write whose answer reached the client, and nothing that was never sent.

Why acknowledged writes survive: ZODB's FileStorage writes a transaction
in ``tpc_vote`` (flagged as in progress, then flushed) and in
``tpc_finish`` clears the flag, flushes and ``fsync``\\ s the file, before
the commit returns and so before the answer is sent. A killed process
loses nothing the kernel already has (its page cache survives the
process), so even without the fsync a SIGKILL could not lose an
acknowledged write; the fsync is what protects them from a power cut. A
transaction cut off mid-write is at the end of the file, still flagged
in progress: FileStorage truncates it when it opens the file.

The moments are drawn from a seeded generator; the seed is printed, and
``ZODBSESSION_FAULT_SEED=<seed>`` replays the same schedule (the thread
interleavings, of course, differ).
"""
import os
import random
import signal
import time

from zodbsession.testing.checks import TokenWriters
from zodbsession.testing.workers import session_worker

KILLS = 20
CLIENTS = 4
# Seconds of traffic before each kill, drawn uniformly: from "just
# started writing" to "many commits in".
EARLIEST_KILL = 0.02
LATEST_KILL = 0.5


def test_acknowledged_writes_survive_sigkill(tmp_path, record_property):
    seed = int(os.environ.get('ZODBSESSION_FAULT_SEED')
               or random.SystemRandom().randrange(2 ** 32))
    print(f'kill schedule seed: {seed}'
          f' (replay with ZODBSESSION_FAULT_SEED={seed})')
    moments = random.Random(seed)
    directory = str(tmp_path)
    storage_path = os.path.join(directory, 'sessions.fs')
    uri = f'file://{storage_path}'
    writers = TokenWriters(CLIENTS)
    started = time.monotonic()

    with session_worker(uri, directory) as worker:
        writers.introduce(worker.url)
    for kill in range(KILLS):
        with session_worker(uri, directory) as worker:
            # The restarted worker opened the storage (it answers) and
            # finds what the killed ones acknowledged.
            writers.check(worker.url)
            writers.start(worker.url, until_lost=True)
            # The fault's moment, not a wait for something to happen.
            time.sleep(moments.uniform(EARLIEST_KILL, LATEST_KILL))
            os.kill(worker.process.pid, signal.SIGKILL)
            worker.process.wait()
            writers.wait_until_lost()
    with session_worker(uri, directory) as worker:
        in_doubt_stored = writers.check(worker.url)
    # FileStorage logs, as it opens, that it cut off a transaction a kill
    # left half-written.
    repaired = sum('truncated' in _read(name)
                   for name in _worker_logs(directory))
    elapsed = time.monotonic() - started

    # The workers killed mid-request (lost answers) and the acknowledged
    # writes show that the kills hit a storage under load.
    assert writers.lost >= KILLS // 2, writers.lost
    assert writers.acknowledged_count >= 2 * KILLS, \
        writers.acknowledged_count
    assert {status for status, *_ in writers.answers} == {200}
    assert _file_is_consistent(storage_path)

    record_property('acknowledged', writers.acknowledged_count)
    record_property('lost_answers', writers.lost)
    print(f'{KILLS} SIGKILLs in {elapsed:.1f}s: {writers.acknowledged_count}'
          f' acknowledged writes all present; {writers.lost} requests cut'
          f' off, {in_doubt_stored} of them committed before the kill;'
          f' {repaired} restarts truncated a half-written transaction')


def _worker_logs(directory):
    return [os.path.join(directory, name) for name in os.listdir(directory)
            if name.startswith('worker-')]


def _read(path):
    with open(path, errors='replace') as log:
        return log.read()


def _file_is_consistent(path):
    """ZODB's fstest: every transaction and data record in the file is
    well formed (it raises FormatError otherwise)."""
    from ZODB.scripts import fstest
    fstest.check(path)
    return True
