"""Turns for one client's contending requests, within one process.

When requests of one client conflict (they changed the same key of its
session at once), each loser runs again. If all of them ran again at
once, they would conflict again with each other, and with a handful of
threads some would run out of time. So once a request of a client has
conflicted, that client's requests in this process take turns: each
runs alone, from the start of its attempt until its transaction ended,
and a turn is never spent conflicting with a neighbour thread. When no
request of the client is waiting any more, its requests run side by side
again; a client whose requests never conflict never waits.

Across processes (ZEO, RelStorage) each process takes its own turns, so
at most one request per process contends for a client's record at a
time, and the retry policy's growing random pauses spread those few
out (see ``zodbsession.retry``).
"""
import threading

from zodbsession.interfaces import IClientIdManager
from zodbsession.interfaces import ICookieClientIdManager
from zodbsession.lookup import utility_in
from zodbsession.adaptation.environ import WSGIRequest
from zodbsession.hosting.snapshot import snapshots


class _Turn:
    __slots__ = ('lock', 'users')

    def __init__(self):
        self.lock = threading.Lock()
        self.users = 0


class ClientTurns:
    """Who of a client's contending requests runs now (one process)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._turns = {}    # client key -> _Turn

    def contended(self):
        """Whether some client's requests are taking turns now.

        Cheap and unlocked: a request asks this first, and only when it
        is true needs to know which client it serves.
        """
        return bool(self._turns)

    def take(self, key, contending, timeout):
        """Wait for ``key``'s turn, at most ``timeout`` seconds.

        ``contending``: the request has just conflicted, so its client's
        requests take turns from now on; otherwise a turn is taken only
        if they already do. Returns a ticket for ``give_back``, or None
        when no turn was needed. A wait that times out goes ahead
        without the turn (the retry policy then decides, by its budget).
        """
        if key is None:
            return None
        with self._lock:
            turn = self._turns.get(key)
            if turn is None:
                if not contending:
                    return None
                turn = self._turns[key] = _Turn()
            turn.users += 1
        acquired = turn.lock.acquire(timeout=max(timeout, 0))
        return (key, turn, acquired)

    def give_back(self, ticket):
        """End the turn ``take`` returned (None: nothing to end)."""
        if ticket is None:
            return
        key, turn, acquired = ticket
        if acquired:
            turn.lock.release()
        with self._lock:
            turn.users -= 1
            if turn.users == 0 and self._turns.get(key) is turn:
                del self._turns[key]

    def waiting(self):
        """{key: requests holding or waiting for its turn} (for stats)."""
        with self._lock:
            return {key: turn.users for key, turn in self._turns.items()}


# The process's turns: every host of the process shares them, so that a
# client's requests take turns whichever host serves them.
client_turns = ClientTurns()


def incoming_client_key(db, environ):
    """Whose turn a request of ``db``'s site waits for: its client id
    cookie as sent, or None.

    Unverified on purpose: it only orders requests that bring the same
    value, and a forger can only make its own requests wait.
    """
    registry = snapshots.get(db)
    if registry is None:
        return None     # no snapshot: the site's manager is not ours
    manager = utility_in(registry, IClientIdManager)
    if not ICookieClientIdManager.providedBy(manager):
        return None
    return WSGIRequest(environ).get_request_cookie(manager.namespace)
