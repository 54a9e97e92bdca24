"""Turns for one client's contending requests, on the event loop.

The ASGI counterpart of ``zodbsession.contention``, with the same rule:
once a request of a client has conflicted, that client's requests take
turns, each running alone from its load to its commit, until none of
them is waiting. Here the turn is held across the application's awaits,
so it is an event-loop lock, not a thread lock: a client's waiting
requests hold no worker thread (a client sending many requests at once
cannot tie up the pool that every request's storage work needs).
"""
import contextlib

import anyio


class _Turn:
    __slots__ = ('lock', 'users')

    def __init__(self):
        self.lock = anyio.Lock()
        self.users = 0


class AsyncClientTurns:
    """Who of a client's contending requests runs now (one event loop)."""

    def __init__(self):
        self._turns = {}    # client key -> _Turn

    @contextlib.asynccontextmanager
    async def turn(self, key, contending, timeout):
        """Run the block in ``key``'s turn when its requests take turns
        (from now on if ``contending``: the request has just conflicted);
        a wait longer than ``timeout`` seconds goes ahead without it (the
        retry policy then decides, by its budget)."""
        turn = self._turns.get(key) if key is not None else None
        if turn is None and (key is None or not contending):
            yield
            return
        if turn is None:
            turn = self._turns[key] = _Turn()
        turn.users += 1
        try:
            with anyio.move_on_after(max(timeout, 0)) as waited:
                await turn.lock.acquire()
            acquired = not waited.cancelled_caught
            try:
                yield
            finally:
                if acquired:
                    turn.lock.release()
        finally:
            turn.users -= 1
            if turn.users == 0 and self._turns.get(key) is turn:
                del self._turns[key]

    def waiting(self):
        """{key: requests holding or waiting for its turn} (for stats)."""
        return {key: turn.users for key, turn in self._turns.items()}
