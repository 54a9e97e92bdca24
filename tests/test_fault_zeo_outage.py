"""The ZEO server goes down in the middle of traffic and comes back.

While it is down, a worker answers session writes with 503 and
Retry-After within its ZEO ``wait_timeout`` (not a traceback, not a hung
thread) and still serves pages that do not touch the session; once the
server is back (same port, same file) the worker reconnects by itself and
every write it acknowledged before, during or after the outage is stored.
"""
import pytest

from zodbsession.testing.checks import check_outage
from zodbsession.testing.workers import session_worker
from zodbsession.testing.zeo import ZEOServer

pytest.importorskip('ZEO')

# Seconds a ZEO client waits for a missing server before it gives up on a
# request. The default (zodbsession.db.DEFAULT_ZEO_WAIT_TIMEOUT) is 10.
WAIT_TIMEOUT = 1
RETRY_AFTER = 7
# The worker retries conflicts at its defaults; an unreachable storage is
# never retried, or a request would wait several WAIT_TIMEOUTs.
# Seconds a request may take while the server is down: one wait_timeout,
# and slack for a loaded machine. A page that does not touch the session
# may wait as long, for a worker thread: the session requests hold all of
# them while they wait for the server.
BOUND = WAIT_TIMEOUT + 3


def test_zeo_outage(tmp_path, record_property):
    directory = str(tmp_path)
    server = ZEOServer(directory)
    server.start()
    try:
        with session_worker(f'{server.uri}?wait_timeout={WAIT_TIMEOUT}',
                            directory,
                            retry_after=RETRY_AFTER) as worker:
            figures = check_outage(worker, server.stop, server.start,
                                   retry_after=RETRY_AFTER)
    finally:
        server.stop()

    assert figures['slowest_503'] < BOUND, figures
    assert figures['slowest_plain'] < BOUND, figures
    for name, value in figures.items():
        record_property(name, value)
    print('ZEO outage: ' + ', '.join(
        f'{name}={value:.3f}' if isinstance(value, float)
        else f'{name}={value}' for name, value in figures.items()))
