"""How one session value is stored: pickled on its own, by key.

Each value is pickled separately, so conflict resolution compares bytes
(exact, and needs none of the application's classes), reads unpickle only
the keys they use, and a value that cannot be pickled is reported with its
package id, key and type. Values that hold persistent objects are kept as
they are, as ``(value,)``, so ZODB stores them as references.
"""
import io
import pickle

import persistent

PROTOCOL = 4

# Values of these types (the most common ones) are pickled directly.
_FLAT_TYPES = frozenset({int, float, str, bytes, bool, type(None)})


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
    """Return the stored form of ``value``: pickle bytes, or ``(value,)``.

    Raise TypeError naming the package id, key and type when the value
    cannot be stored.
    """
    if type(value) in _FLAT_TYPES:
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
        raise TypeError(
            f'cannot store session data {pkg_id!r}[{key!r}]: a value of'
            f' type {_type_name(value)} cannot be pickled ({exc}). Store'
            ' plain data (str, numbers, lists, dicts, ...) instead.'
        ) from exc
    return buffer.getvalue()


def decode(stored):
    """The value of a stored form made by ``encode``."""
    if isinstance(stored, tuple):
        return stored[0]
    return pickle.loads(stored)
