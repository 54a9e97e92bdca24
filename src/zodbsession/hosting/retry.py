"""The one retry policy: which failed requests run again, and when.

A request that failed with a TransientError (a ZODB ConflictError, say)
runs again while its time budget lasts: ``retry_timeout`` seconds from
the start of its first attempt (10 by default), and at most ``retries``
times when that is given (by default there is no count: a count small
enough to bound a request is too small for a few threads incrementing
one counter, and a budget in seconds is what a client waiting for the
page feels).

Two things keep the attempts few:

- a client's contending requests take turns within the process
  (``zodbsession.contention``): after a conflict, each of them runs
  alone, so threads of one process never conflict over a client again;
- before each new attempt, a short random pause that doubles with each
  attempt: what still contends for a record comes from other processes,
  and the pauses spread those few contenders out.

An unreachable storage is not retried, although ZEO's ClientDisconnected
is a TransientError: the attempt has already waited for the server, and
retrying would hold the worker several times as long.
"""
import logging
import random
import time

from transaction.interfaces import TransientError

from zodbsession.hosting.contention import client_turns
from zodbsession.hosting.db import is_storage_unavailable
from zodbsession.procstats import counters as process_counters

log = logging.getLogger(__name__)

# No limit on the number of retries; the time budget bounds them.
DEFAULT_RETRIES = None
# Seconds from a request's first attempt after which it retries no more.
DEFAULT_RETRY_TIMEOUT = 10.0

# Pause before attempt n (n >= 1): uniform in [0, min(CAP, BASE * 2**n)].
BACKOFF_BASE = 0.001
BACKOFF_CAP = 0.05


def _check_retries(retries):
    if retries is None:
        return None
    if isinstance(retries, bool) or not isinstance(retries, int) or (
            retries < 0):
        raise ValueError(f'retries must be a whole number >= 0 (or None:'
                         f' no limit but retry_timeout), got {retries!r}')
    return retries


def _check_timeout(retry_timeout):
    # (Not infinite: a conflict that never clears would hold its worker
    # for ever, where the budget promises a 503.)
    if isinstance(retry_timeout, bool) or not isinstance(
            retry_timeout, (int, float)) or not (
            0 <= retry_timeout < float('inf')):
        raise ValueError(f'retry_timeout must be a number of seconds >= 0,'
                         f' got {retry_timeout!r}')
    return float(retry_timeout)


def check_retry_after(retry_after):
    """``retry_after`` (the seconds a 503's Retry-After asks a client to
    wait: HTTP's delay-seconds, a whole number >= 0), or a ValueError
    naming the setting."""
    if isinstance(retry_after, bool) or not isinstance(
            retry_after, int) or retry_after < 0:
        raise ValueError(f'retry_after must be a whole number of seconds'
                         f' >= 0 (the Retry-After of a 503), got'
                         f' {retry_after!r}')
    return retry_after


class RetryPolicy:
    """How a host re-runs requests that conflicted.

    ``retries``: the most re-runs of one request (None: no count, only
    the budget); ``retry_timeout``: seconds from the first attempt's
    start after which a conflict is not retried but answered with a 503.
    """

    def __init__(self, retries=DEFAULT_RETRIES,
                 retry_timeout=DEFAULT_RETRY_TIMEOUT,
                 backoff_base=BACKOFF_BASE, backoff_cap=BACKOFF_CAP,
                 turns=client_turns):
        self.retries = _check_retries(retries)
        self.retry_timeout = _check_timeout(retry_timeout)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.turns = turns
        self._random = random.Random()

    @property
    def enabled(self):
        """Whether a request may run more than once (then hosts keep its
        body for the replay)."""
        return self.retries != 0 and self.retry_timeout > 0

    def start(self, client_key=None, *args, started=None):
        """The retry state of one request.

        ``client_key(*args)`` names the request's client (for instance the
        value of its client id cookie), or returns None; it is called at
        most once, and only when the request has to take turns.
        ``started``: the ``time.monotonic()`` of its first attempt's
        start, when that was earlier than now.
        """
        return RetryRun(self, client_key, args, started)


class RetryRun:
    """One request's attempts.

    A host runs them so::

        run = policy.start(client_key, *args)
        while True:
            ticket = run.take_turn()
            try:
                response = attempt(run.number)
            except Exception as error:
                run.give_back(ticket)
                if run.retry(error):
                    continue
                ...   # run.ran_out(error): answer 503
            run.give_back(ticket)
    """

    def __init__(self, policy, client_key, args=(), started=None):
        self.policy = policy
        self.number = 0
        self.started = time.monotonic() if started is None else started
        self._client_key = client_key
        self._args = args
        self._key = None
        self._key_known = client_key is None

    def elapsed(self):
        return time.monotonic() - self.started

    def remaining(self):
        return self.policy.retry_timeout - self.elapsed()

    def key(self):
        if not self._key_known:
            self._key_known = True
            self._key = self._client_key(*self._args)
        return self._key

    def take_turn(self):
        """Wait for the client's turn when its requests take turns (always
        after this request conflicted); returns the ticket for
        ``give_back``, None when no turn was needed."""
        turns = self.policy.turns
        contending = self.number > 0
        if contending or turns.contended():
            return turns.take(self.key(), contending, self.remaining())
        return None

    def give_back(self, ticket):
        """End the turn ``take_turn`` gave (None: nothing to end)."""
        if ticket is not None:
            self.policy.turns.give_back(ticket)

    def retryable(self, error):
        """Whether ``error`` is one that a new attempt may not meet."""
        return (isinstance(error, TransientError)
                and not is_storage_unavailable(error))

    def retry(self, error):
        """Whether to run again after ``error`` ended the current attempt;
        if so, pause first, and count the attempt."""
        policy = self.policy
        if not self.retryable(error) or not policy.enabled:
            return False
        if policy.retries is not None and self.number >= policy.retries:
            return False
        ceiling = min(policy.backoff_cap,
                      policy.backoff_base * 2 ** self.number)
        pause = policy._random.uniform(0, ceiling)
        if self.elapsed() + pause >= policy.retry_timeout:
            return False
        log.info('retrying request after %s (attempt %d, %.3f s so far)',
                 type(error).__name__, self.number + 1, self.elapsed())
        time.sleep(pause)
        self.number += 1
        process_counters.count_conflict(error)
        return True

    def ran_out(self, error):
        """Whether ``error`` would have been retried but for the budget:
        the request ends with a 503, and the log says what conflicted."""
        if not self.retryable(error):
            return False
        notes = '; '.join(getattr(error, '__notes__', ()))
        log.error(
            'giving up on a request after %d attempt(s) in %.2f s'
            ' (retries=%s, retry_timeout=%s): %s: %s%s',
            self.number + 1, self.elapsed(), self.policy.retries,
            self.policy.retry_timeout, type(error).__name__, error,
            f' [{notes}]' if notes else '')
        process_counters.count_conflict(error, retried=False)
        return True
