"""Following a transaction manager's transactions, at the cost of a list.

What lives no longer than a request (its pending cookies, its Session's
client id) follows the request's transaction manager: it is told when
each transaction completes (``afterCompletion(txn)``, as a synchronizer
is; no follower needs a synchronizer's other two calls, so they are not
made). Registering a synchronizer with the manager costs a weak
reference each time, on every request; so each manager gets one
synchronizer, once, for as long as it lives (a thread's manager lives as
long as its thread), and requests add themselves to its list of
followers and leave it.
"""
import threading
import weakref

import transaction


class _Followers:
    """The one synchronizer of a transaction manager: tells its current
    followers of each completion, in the order they came."""

    __slots__ = ('followers', 'told', '__weakref__')

    def __init__(self):
        self.followers = []
        self.told = False

    def newTransaction(self, txn):
        self.told = True

    def beforeCompletion(self, txn):
        pass

    def afterCompletion(self, txn):
        for follower in tuple(self.followers):
            follower.afterCompletion(txn)


_registered = weakref.WeakKeyDictionary()   # manager -> _Followers
_registered_lock = threading.Lock()


class _Last(threading.local):
    # (manager, its _Followers) this thread asked for last: most requests
    # of a thread use its own manager, and a weak-key lookup costs a weak
    # reference each time.
    last = (None, None)


_last = _Last()


def _followers_of(manager):
    if isinstance(manager, transaction.ThreadTransactionManager):
        # The thread-dispatching manager stands for each thread's own.
        manager = manager.manager
    last_manager, followers = _last.last
    if last_manager is manager:
        return followers
    followers = _registered.get(manager)
    if followers is None:
        with _registered_lock:
            followers = _registered.get(manager)
            if followers is None:
                followers = _registered[manager] = _Followers()
                manager.registerSynch(followers)
    _last.last = (manager, followers)
    return followers


def transaction_under_way(manager):
    """Whether ``manager`` has a transaction under way, asked without
    starting one (``manager.get()`` would): registering a synchronizer
    tells it of the transaction under way (ITransactionManager), and
    registering the manager's own again costs no more than that."""
    if isinstance(manager, transaction.ThreadTransactionManager):
        manager = manager.manager
    followers = _followers_of(manager)
    followers.told = False
    manager.registerSynch(followers)
    return followers.told


def follow(manager, follower):
    """Tell ``follower`` (calling its ``afterCompletion(txn)``, as a
    synchronizer's) of the completion of each of ``manager``'s
    transactions until ``unfollow``."""
    _followers_of(manager).followers.append(follower)


def unfollow(manager, follower):
    """Stop telling ``follower`` (nothing if it does not follow)."""
    followers = _followers_of(manager).followers
    try:
        followers.remove(follower)
    except ValueError:
        pass


def forget(manager):
    """``manager``'s synchronizers were cleared (``clearSynchs``): its
    followers are told nothing any more, and the next ``follow``
    registers anew. Those following now stop following."""
    if isinstance(manager, transaction.ThreadTransactionManager):
        manager = manager.manager
    with _registered_lock:
        followers = _registered.pop(manager, None)
    if followers is not None:
        followers.followers.clear()
    if _last.last[0] is manager:
        _last.last = (None, None)
