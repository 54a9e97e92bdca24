"""Values changed in place are stored: the sessions a transaction reads.

``data['cart'].append(item)`` changes a value without telling its
session. Every stored session whose mutable values a transaction reads is
watched: just before the transaction commits, each compares the values it
handed out with their stored form (``SessionData.keep_in_place_changes``)
and marks changed the keys that differ, and only those, so concurrent
changes of other keys still merge. After an abort the watched sessions
are unloaded, so that a change made in place and aborted is not seen by
the next request on the same connection.
"""
from zodbsession.transactions import has_transaction


class _Watched:
    """The sessions one transaction read mutable values of."""

    def __init__(self):
        self.sessions = []
        self.checked = 0

    def keep_in_place_changes(self):
        # Each session once: a host may look before the commit does.
        while self.checked < len(self.sessions):
            session = self.sessions[self.checked]
            self.checked += 1
            session.keep_in_place_changes()

    def forget(self):
        for session in self.sessions:
            session._p_invalidate()


def watch(txn, session_data):
    """Look for in-place changes of ``session_data`` when ``txn``
    commits."""
    try:
        watched = txn.data(_Watched)
    except KeyError:
        watched = _Watched()
        txn.set_data(_Watched, watched)
        txn.addBeforeCommitHook(watched.keep_in_place_changes)
        txn.addAfterAbortHook(watched.forget)
    watched.sessions.append(session_data)


def keep_in_place_changes(transaction_manager):
    """Mark changed now what the current transaction of
    ``transaction_manager`` changed in place (its commit does it anyway;
    a host that wants to know whether a connection has changes asks
    first). Starts no transaction."""
    if not has_transaction(transaction_manager):
        return
    try:
        watched = transaction_manager.get().data(_Watched)
    except KeyError:
        return
    watched.keep_in_place_changes()
