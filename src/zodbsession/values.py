"""How one session value is stored: pickled on its own, by key.

Each value is pickled separately, so conflict resolution compares bytes
(exact, and needs none of the application's classes), reads unpickle only
the keys they use, and a value that cannot be pickled is reported with its
package id, key and type: its own exception, type and message unchanged
(as zope.session lets it through), carrying a note that names them
(Python 3.11 and later) and always logged. Values that hold persistent
objects are kept as they are, as ``(value,)``, so ZODB stores them as
references.
"""
import io
import logging
import pickle

import persistent

PROTOCOL = 4

logger = logging.getLogger(__name__)

# Values of these types (the most common ones) are pickled directly; they
# hold nothing that could be changed in place.
FLAT_TYPES = frozenset({int, float, str, bytes, bool, type(None)})


class _HoldsPersistentObject(Exception):
    pass


class _ValuePickler(pickle.Pickler):

    def reducer_override(self, obj):
        if isinstance(obj, persistent.Persistent):
            raise _HoldsPersistentObject()
        return NotImplemented


def _type_name(value):
    cls = type(value)
    return f'{cls.__module__}.{cls.__qualname__}'


def encode(pkg_id, key, value):
    """Return the stored form of ``value``: pickle bytes, or ``(value,)``
    (``pkg_id`` None: a value stored beside the packages).

    When the value cannot be pickled, the pickler's exception goes
    through unchanged, with a note and a log record naming the package
    id, key and type.
    """
    if type(key) is not str:
        # The key is pickled with the record, where a failure names
        # nothing: it is tried here, with the value.
        _check_key(pkg_id, key)
    if type(value) in FLAT_TYPES:
        # Nothing inside to be persistent or unpicklable.
        return pickle.dumps(value, PROTOCOL)
    buffer = io.BytesIO()
    try:
        _ValuePickler(buffer, PROTOCOL).dump(value)
    except _HoldsPersistentObject:
        return (value,)
    except RecursionError:
        raise
    except Exception as exc:
        _explain(exc, pkg_id, key, f'a value of type {_type_name(value)}'
                 ' cannot be pickled. Store plain data (str, numbers,'
                 ' lists, dicts, ...) instead.')
        raise
    return buffer.getvalue()


def _check_key(pkg_id, key):
    if type(key) in FLAT_TYPES:
        return
    try:
        _ValuePickler(io.BytesIO(), PROTOCOL).dump(key)
    except _HoldsPersistentObject:
        return      # stored as a reference, as such a value is
    except RecursionError:
        raise
    except Exception as exc:
        _explain(exc, pkg_id, key, f'its key, of type {_type_name(key)},'
                 ' cannot be pickled. Use str keys (or numbers, tuples of'
                 ' them) instead.')
        raise


def _explain(exc, pkg_id, key, problem):
    """Log what could not be stored, and note it on ``exc`` (its type and
    message stay the pickler's)."""
    where = (f'{pkg_id!r}[{key!r}]' if pkg_id is not None
             else f'[{key!r}] (beside the packages)')
    explanation = f'cannot store session data {where}: {problem}'
    logger.error('%s (%s: %s)', explanation, type(exc).__name__, exc)
    if hasattr(exc, 'add_note'):    # Python 3.11 and later
        exc.add_note(explanation)


def decode(stored):
    """The value of a stored form made by ``encode``."""
    if isinstance(stored, tuple):
        return stored[0]
    return pickle.loads(stored)


def unchanged(stored, value):
    """Whether ``value``, decoded from ``stored`` and perhaps changed in
    place since, still is what ``stored`` holds.

    Compared by pickle first (exact, and cheap), then by value: a set or a
    dict may pickle in another order after a round trip, and the built-in
    types (dict, list, set, tuple, str, bytes, numbers, datetime) compare
    by value. Other types without ``__eq__`` compare by their pickle only.
    A stored form that holds persistent objects is the value itself: the
    persistent objects store their own changes (a plain list or dict
    around them needs ``changed()``).
    """
    if isinstance(stored, tuple):
        return True
    try:
        if pickle.dumps(value, PROTOCOL) == stored:
            return True
    except Exception:
        # It cannot be what was stored: storing it reports the problem.
        return False
    try:
        return bool(decode(stored) == value)
    except Exception:
        return False
