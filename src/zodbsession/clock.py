"""The time source of expiry, replaceable so tests need no sleeps."""
import contextlib
import time

_source = time.time


def now():
    """Seconds since the epoch, as a float, from the current source."""
    return _source()


class ManualClock:
    """A clock that moves only when told to.

    >>> clock = ManualClock(1000)
    >>> clock.advance(5)
    >>> clock()
    1005.0
    """

    def __init__(self, start=None):
        self.value = float(time.time() if start is None else start)

    def __call__(self):
        return self.value

    def advance(self, seconds):
        self.value += seconds


def reset():
    """Back to real time (a test that failed inside use_clock may have
    left its clock behind)."""
    global _source
    _source = time.time


@contextlib.contextmanager
def use_clock(source):
    """Use ``source`` (a callable returning epoch seconds) inside the block."""
    global _source
    previous, _source = _source, source
    try:
        yield source
    finally:
        _source = previous
