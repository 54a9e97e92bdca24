"""A request's own copy of one package's data, written back key by key.

Hosts whose session is a plain in-memory mapping (Beaker's ``save()``,
ASGI's ``scope['session']``) let the application change a copy and write
back only what differs from what was loaded. A value counts as changed
when its pickle differs, so in-place changes (``session['cart'].append``)
are seen without the application saying so; a key the request did not
change is not written, so concurrent requests that change different keys
of one client both keep their change (the package data merges key by
key), and two that change the same key conflict (one is retried).
"""
import pickle

# The fingerprint of a value: its pickle (any protocol; both sides use
# this one).
_PROTOCOL = pickle.HIGHEST_PROTOCOL


def _fingerprint(value):
    try:
        return pickle.dumps(value, _PROTOCOL)
    except Exception:
        # Not picklable (the container will say so when it is stored):
        # never equal to anything, so it is written and refused there.
        return object()


def _copy(value):
    fingerprint = _fingerprint(value)
    if isinstance(fingerprint, bytes):
        return pickle.loads(fingerprint), fingerprint
    return value, fingerprint


class WorkingCopy:
    """What a package held when the request loaded it, and the copy the
    request changes.

    ``data``: the package data (a mapping) or None when the client has
    none. ``values`` is a plain dict the application may change freely.
    """

    def __init__(self, data=None, values=None):
        # ``values``: the (empty) dict to hold the copy, when the host
        # gives the application a dict of its own kind.
        self.values = {} if values is None else values
        self._loaded = {}
        self.reload(data)

    def reload(self, data):
        """Start again from ``data`` (what is stored now)."""
        self.values.clear()
        self._loaded = {}
        for key in (data if data is not None else ()):
            value, fingerprint = _copy(data[key])
            self.values[key] = value
            self._loaded[key] = fingerprint

    def revert(self):
        """Undo the request's changes to ``values``."""
        self.values.clear()
        for key, fingerprint in self._loaded.items():
            self.values[key] = (pickle.loads(fingerprint)
                                if isinstance(fingerprint, bytes) else None)

    def forget_loaded(self):
        """Count every key as new (the stored data went, as after an
        invalidation: what the request keeps is written in full)."""
        self._loaded = {}

    def changes(self):
        """``(set, deleted)``: {key: value} to store, [key] to delete."""
        loaded = self._loaded
        changed = {key: value for key, value in self.values.items()
                   if loaded.get(key) != _fingerprint(value)}
        deleted = [key for key in loaded if key not in self.values]
        return changed, deleted

    def __bool__(self):
        """Whether the request changed anything."""
        changed, deleted = self.changes()
        return bool(changed or deleted)

    def stale_keys(self, data, changes=None):
        """The keys the request changed (or deleted) whose stored value in
        ``data`` (the package data now, or None) is no longer the one it
        loaded: another request changed them meanwhile."""
        changed, deleted = changes if changes is not None else self.changes()
        loaded = self._loaded
        stale = []
        for key in list(changed) + list(deleted):
            now_there = data is not None and key in data
            if key not in loaded:
                if now_there:
                    stale.append(key)
            elif not now_there or _fingerprint(data[key]) != loaded[key]:
                stale.append(key)
        return stale

    def write(self, data, changes=None):
        """Apply the changes to ``data`` (the package data, created by the
        caller); afterwards they count as loaded."""
        changed, deleted = changes if changes is not None else self.changes()
        for key in deleted:
            if key in data:
                del data[key]
            self._loaded.pop(key, None)
        for key, value in changed.items():
            data[key] = value
            self._loaded[key] = _fingerprint(value)
