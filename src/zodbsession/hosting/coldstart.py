"""Start-up steps that race the other processes of a cluster.

Workers started at the same moment against a new, empty database all try
to create the same things: RelStorage's tables, ZODB's root object, the
session site. One of them wins each race; the others fail with a
conflict (or, for the tables, a duplicate-object error from PostgreSQL)
and succeed when they try again, since what they wanted to create now
exists. ``retry_races`` tries again, after a random pause that doubles
each time (so the contenders spread out instead of colliding in step),
for up to ``STARTUP_BUDGET`` seconds rather than a fixed number of times:
a count that suffices for 4 processes does not for 40.
"""
import logging
import random
import time

from ZODB.POSException import ConflictError

log = logging.getLogger(__name__)

# Seconds a start-up step keeps trying while it loses races.
STARTUP_BUDGET = 60.0
# Pause before try n (n >= 1): uniform in [0, min(CAP, BASE * 2**n)].
BACKOFF_BASE = 0.01
BACKOFF_CAP = 1.0

# SQLSTATEs of PostgreSQL errors that one of several concurrent
# "CREATE ... IF NOT EXISTS" (or check-then-create) steps gets when
# another created the same object first; also deadlocks and
# serialization failures between them.
_PG_RACES = frozenset([
    '23505',    # unique_violation (pg_type, pg_namespace rows of DDL)
    '42P06',    # duplicate_schema
    '42P07',    # duplicate_table
    '42710',    # duplicate_object
    '42723',    # duplicate_function
    '40001',    # serialization_failure
    '40P01',    # deadlock_detected
])


def is_race(exc):
    """Whether ``exc`` (or what caused it) says another process created
    the same thing at the same moment: trying again will succeed."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ConflictError):
            return True
        if getattr(exc, 'pgcode', None) in _PG_RACES:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def retry_races(step, what, budget=STARTUP_BUDGET, rng=random):
    """``step()``, tried again while it fails with a race (``is_race``),
    for up to ``budget`` seconds; then the last error propagates."""
    deadline = time.monotonic() + budget
    attempt = 0
    while True:
        try:
            return step()
        except Exception as exc:
            if not is_race(exc):
                raise
            attempt += 1
            pause = rng.uniform(
                0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt))
            if time.monotonic() + pause > deadline:
                raise
            log.info('%s raced another process (%s); trying again'
                     ' (attempt %d)', what, type(exc).__name__, attempt + 1)
            time.sleep(pause)
