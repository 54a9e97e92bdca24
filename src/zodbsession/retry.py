"""The one retry policy: which failed requests run again, and when.

A request that failed with a TransientError (a ZODB ConflictError, say)
runs again, up to ``retries`` times, after a short random pause that
doubles with each attempt. Without the pause, the process whose cache is
coldest keeps losing the race for a hot key to the others and can run out
of attempts; with it, the contenders spread out.

An unreachable storage is not retried, although ZEO's ClientDisconnected
is a TransientError: the attempt has already waited for the server, and
retrying would hold the worker several times as long.
"""
import logging
import random
import time

from transaction.interfaces import TransientError

from zodbsession.db import is_storage_unavailable

log = logging.getLogger(__name__)

DEFAULT_RETRIES = 3

# Pause before attempt n (n >= 1): uniform in [0, min(CAP, BASE * 2**n)].
BACKOFF_BASE = 0.001
BACKOFF_CAP = 0.05


class RetryPolicy:

    def __init__(self, retries=DEFAULT_RETRIES, backoff_base=BACKOFF_BASE,
                 backoff_cap=BACKOFF_CAP):
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f'retries must be a whole number >= 0, got'
                             f' {retries!r}')
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._random = random.Random()

    def retry(self, error, attempt):
        """Whether to run again after ``error`` ended attempt ``attempt``
        (0-based); if so, pause first."""
        if (not isinstance(error, TransientError)
                or attempt >= self.retries
                or is_storage_unavailable(error)):
            return False
        log.info('retrying request after %s (attempt %d of %d)',
                 type(error).__name__, attempt + 1, self.retries)
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** attempt)
        time.sleep(self._random.uniform(0, ceiling))
        return True
