"""Naming what a conflict was about, for the log.

When a request's retries run out, the operator needs to know which
session keys were fought over. ZODB's ConflictError names only the
record (its oid and class): the reason the session's merge gave up
(``both transactions changed session key 'pkg/key'``) is dropped on the
way. So the merge reports it here as well, in the thread that commits
(FileStorage, RelStorage and the RAM container resolve conflicts in the
committing thread; a ZEO server resolves them in its own process, and
there only the record can be named). Package ids and keys are named,
never values.
"""
import threading

from ZODB.POSException import ConflictError

_failed_merges = threading.local()


def merge_failed(error):
    """Note why a session merge in this thread failed (``error``)."""
    _failed_merges.reason = str(error)


def forget():
    """Start an attempt with no failed merge noted."""
    _failed_merges.reason = None


def describe(error):
    """A line saying what the conflict ``error`` was about, or None."""
    if not isinstance(error, ConflictError):
        return None
    reason = getattr(_failed_merges, 'reason', None)
    _failed_merges.reason = None
    if reason is not None and reason != str(error):
        return reason
    class_name = error.get_class_name()
    if reason is None and class_name is not None:
        return (f'the conflicting record is a {class_name}; its keys were'
                ' not merged here (a ZEO server merges them, and logs why'
                ' it could not)' if class_name.endswith('.SessionData')
                else f'the conflicting record is a {class_name}')
    return None


def annotate(error):
    """Add ``describe``'s line to ``error`` as a note (once)."""
    line = describe(error)
    if line is not None and line not in getattr(error, '__notes__', ()):
        error.add_note(line)
