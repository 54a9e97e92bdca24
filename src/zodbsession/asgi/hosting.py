"""One attempt of an ASGI request: the hosting pieces, all in one place.

Everything here is storage work and runs in a worker thread, never on
the event loop; the request's transaction has a manager of its own (not
the thread's), so its load and its commit may run in different threads
of the pool. The attempt opens a connection only when the session is
touched, takes the client's turn when its requests take turns
(``zodbsession.retry``), and sends cookies only if it committed.
"""
import contextlib

import transaction

from zodbsession.conflicts import annotate as annotate_conflict
from zodbsession.conflicts import forget as forget_conflicts
from zodbsession.environkeys import PENDING_KEY
from zodbsession.environkeys import REGISTRY_KEY
from zodbsession.environkeys import SITE_KEY
from zodbsession.environkeys import TRANSACTION_MANAGER_KEY
from zodbsession.interfaces import ISession
from zodbsession.requests import PendingResponse
from zodbsession.requests import WSGIRequest
from zodbsession.site import ConnectionSite
from zodbsession.transactions import end_transaction
from zodbsession.transactions import has_transaction
from zodbsession.workingcopy import WorkingCopy


class AttemptHosting:
    """The session site, transaction and pending cookies of one attempt.

    ``environ``: the request as the core reads it (its cookie header,
    method and root path); ``run``: the request's RetryRun.
    """

    def __init__(self, db, environ, pkg_id, run):
        self.pkg_id = pkg_id
        self.run = run
        self.manager = transaction.TransactionManager(explicit=True)
        self.site = ConnectionSite(db, self.manager)
        self.environ = environ = dict(environ)
        self.pending = environ[PENDING_KEY] = PendingResponse()
        environ[REGISTRY_KEY] = self.site.registry
        environ[SITE_KEY] = self.site
        environ[TRANSACTION_MANAGER_KEY] = self.manager
        self.request = WSGIRequest(environ)
        self._turn = contextlib.ExitStack()
        self._begun = False
        self._closed = False

    def _begin(self):
        if not self._begun:
            self._begun = True
            self._turn.enter_context(self.run.turn())
            self.manager.begin()

    def load(self, session):
        """Fill the dict ``session`` with the package's data (the client
        sent an id cookie); returns the WorkingCopy."""
        self._begin()
        return WorkingCopy(ISession(self.request).get(self.pkg_id), session)

    def commit(self, copy, session):
        """Store what the request changed (``copy``, and the flags of the
        ``session`` dict) and commit; returns the headers the response
        must carry. Raises what the commit raised (aborted)."""
        self._begin()
        forget_conflicts()
        try:
            changes = copy.changes()
            sessions = ISession(self.request)
            if session.invalidating:
                sessions.invalidate()
                copy.forget_loaded()
                changes = copy.changes()
            elif session.regenerating:
                sessions.regenerate()
            if changes[0] or changes[1]:
                copy.write(sessions[self.pkg_id], changes)
            self.site.close_if_unchanged()
        except BaseException as error:
            annotate_conflict(error)
            self.manager.abort()
            raise
        try:
            end_transaction(self.manager, before_abort=annotate_conflict)
            return [(name.lower().encode('latin-1'),
                     value.encode('latin-1'))
                    for name, value in self.pending.header_list()]
        finally:
            # The attempt is over: its connection and turn go back now,
            # in the same worker thread hop.
            self.close()

    def abort(self):
        """End the attempt's transaction without storing anything."""
        if self._begun and has_transaction(self.manager):
            self.manager.abort()

    @property
    def open(self):
        """Whether the attempt holds anything (a transaction, a turn)
        that ``close`` must give back."""
        return self._begun and not self._closed

    def close(self):
        """Give back the connection and the client's turn (once)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.abort()
        finally:
            self.pending.stop_following()
            self.site.close()
            self._turn.close()

    def retry(self, error):
        """The retry policy's decision (it may pause: a worker thread's
        work)."""
        return self.run.retry(error)
