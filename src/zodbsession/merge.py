"""Three-way merge of session state: the core of conflict resolution.

Pure functions of (old, committed, new) states; ZODB calls them through
``SessionData._p_resolveConflict`` and the RAM container calls them
directly. A change made by one side wins over no change on the other;
changes made by both sides to the same key conflict, even when equal.
"""
from ZODB.POSException import ConflictError

_MISSING = object()


def same(a, b):
    """Whether two stored values are the same.

    Pickled values are bytes and compare exactly; values kept unpickled
    (persistent objects) compare by equality, which for persistent
    references means the same object id.
    """
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:
        return False


def merge_dicts(old, committed, new, merge_both_changed=None, path=()):
    """Merge two concurrent changes of ``old``; raise ConflictError.

    ``merge_both_changed(old, committed, new, path)``, if given, is tried
    for a key that both sides changed and both kept.
    """
    merged = {}
    for key in set(old) | set(committed) | set(new):
        o = old.get(key, _MISSING)
        c = committed.get(key, _MISSING)
        n = new.get(key, _MISSING)
        # Two equal changes still conflict: from the same old value they
        # are usually the same read-modify-write (a counter incremented
        # twice), and keeping one would lose the other.
        if same(o, n):
            value = c
        elif same(o, c):
            value = n
        elif (merge_both_changed is not None
              and c is not _MISSING and n is not _MISSING):
            base = {} if o is _MISSING else o
            value = merge_both_changed(base, c, n, path=path + (key,))
        else:
            raise ConflictError(
                'both transactions changed session key'
                f' {"/".join(map(str, path + (key,)))!r}')
        if value is not _MISSING:
            merged[key] = value
    return merged


def merge_session_states(old, committed, new):
    """Merge SessionData states (see ``zodbsession.data``)."""
    merged = {
        't': max(committed.get('t', 0), new.get('t', 0)),
        'p': merge_dicts(
            old.get('p', {}), committed.get('p', {}), new.get('p', {}),
            merge_both_changed=merge_dicts),
    }
    # Values stored beside the packages (see zodbsession.data), by name.
    if 'v' in old or 'v' in committed or 'v' in new:
        merged['v'] = merge_dicts(old.get('v', {}), committed.get('v', {}),
                                  new.get('v', {}))
    # The creation time is written once; either side's copy will do.
    created = committed.get('c') or new.get('c')
    if created:
        merged['c'] = created
    return merged
