"""Values changed in place are stored: the sessions a transaction reads.

``data['cart'].append(item)`` changes a value without telling its
session. Every stored session whose mutable values a transaction reads is
watched: just before the transaction commits, each compares the values it
handed out with their stored form (``SessionData.keep_in_place_changes``)
and marks changed the keys that differ, and only those, so concurrent
changes of other keys still merge. After an abort the watched sessions
are unloaded, so that a change made in place and aborted is not seen by
the next request on the same connection.

Watching costs no transaction: a request that only reads may have none
(the thread's manager starts one when something joins, or when the
commit is asked for). One watch per transaction manager follows its
transactions as a synchronizer: when one of them completes, what was
read in it is compared (``beforeCompletion``, which a commit calls after
its before-commit hooks and before any data manager commits; an abort
calls it too, and then unloads what was compared).
"""

import threading
import weakref

import transaction

from zodbsession.context import has_transaction


class _Watch:
    """The sessions read (mutable values) in the current transaction of
    one transaction manager; a synchronizer of that manager."""

    def __init__(self):
        self.sessions = []
        self.checked = 0
        self.generation = 0     # which transaction's reads these are

    def add(self, session_data):
        self.sessions.append(session_data)

    def keep_in_place_changes(self):
        # Each session once: a host may look before the commit does.
        while self.checked < len(self.sessions):
            session_data = self.sessions[self.checked]
            self.checked += 1
            session_data.keep_in_place_changes()

    def reset(self):
        self.sessions = []
        self.checked = 0
        self.generation += 1

    # -- as a synchronizer ---------------------------------------------

    def newTransaction(self, txn):
        pass

    def beforeCompletion(self, txn):
        # A commit calls this while the transaction is active; after a
        # failed commit, or for a doomed one, only an abort can follow
        # (and it unloads what was read).
        if txn.status == 'Active':
            self.keep_in_place_changes()

    def afterCompletion(self, txn):
        if txn.status != 'Committed':
            self.forget()
        self.reset()

    def forget(self):
        # What was changed in place is not what is stored: unload it.
        for session_data in self.sessions:
            session_data._p_invalidate()


_watches = weakref.WeakKeyDictionary()     # transaction manager -> _Watch
_watches_lock = threading.Lock()


class _LastWatch(threading.local):
    # (manager, its watch or None, _made) this thread asked for last: most
    # requests of a thread use its own manager, and a weak-key lookup
    # costs a weak reference each time. ``_made`` counts the watches made,
    # so an answer of None is asked again once a watch has been made.
    last = (None, None, -1)


_last = _LastWatch()
_made = 0


def _existing_watch(transaction_manager):
    """The watch of ``transaction_manager``'s transactions, or None."""
    last_manager, watch, made = _last.last
    if last_manager is transaction_manager and made == _made:
        # (Most calls: a host's, with the thread's own manager.)
        return watch
    manager = _own_manager(transaction_manager)
    watch = _watches.get(manager)
    _last.last = (manager, watch, _made)
    return watch


def _own_manager(manager):
    # The thread-dispatching manager stands for each thread's own: each
    # thread's transactions are watched apart.
    if isinstance(manager, transaction.ThreadTransactionManager):
        return manager.manager
    return manager


def watch_of(transaction_manager):
    """The watch of ``transaction_manager``'s transactions (made once)."""
    manager = _own_manager(transaction_manager)
    watch = _watches.get(manager)
    if watch is None:
        with _watches_lock:
            watch = _watches.get(manager)
            if watch is None:
                global _made
                watch = _watches[manager] = _Watch()
                manager.registerSynch(watch)
                _made += 1
    return watch


def transaction_key(transaction_manager):
    """A value that stays the same until ``transaction_manager``'s
    current transaction ends (begun or not): what lives no longer than
    a transaction is kept under it. Starts no transaction."""
    watch = watch_of(transaction_manager)
    return (watch, watch.generation)


def keep_in_place_changes(transaction_manager):
    """Mark changed now what the sessions read in the current
    transaction of ``transaction_manager`` changed in place (its commit
    does it anyway; a host that wants to know whether a connection has
    changes asks first). Starts no transaction."""
    watch = _existing_watch(transaction_manager)
    if watch is not None:
        watch.keep_in_place_changes()


def reads_over(transaction_manager):
    """The reads of ``transaction_manager``'s current transaction are
    over, and no transaction ends them (nothing changed, so nothing
    commits): forget them, as a transaction's end would. (A host that
    checked with ``keep_in_place_changes`` and found nothing to commit
    says so.)"""
    watch = _existing_watch(transaction_manager)
    if watch is not None:
        watch.reset()


def forget_unfinished(transaction_manager):
    """Unload the sessions read since ``transaction_manager``'s last
    transaction ended, when no transaction is under way to commit them:
    a request that failed before anything joined its transaction leaves
    no change made in place to the next user of its connection."""
    watch = _existing_watch(transaction_manager)
    if watch is None or not watch.sessions or has_transaction(
            _own_manager(transaction_manager)):
        return
    watch.forget()
    watch.reset()


def forget_watch(transaction_manager):
    """``transaction_manager``'s synchronizers were cleared
    (``clearSynchs``): its watch is made again on next use."""
    global _made
    manager = _own_manager(transaction_manager)
    with _watches_lock:
        _watches.pop(manager, None)
        _made += 1      # every thread asks again
