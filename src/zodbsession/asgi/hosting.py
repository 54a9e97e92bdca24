"""One attempt of an ASGI request: the hosting pieces, all in one place.

Everything here is storage work and runs in a worker thread, never on
the event loop. The request's transactions have a manager of their own
(not a thread's), so they may run in any thread of the pool. An attempt
holds a database connection only while a worker thread works for it,
never while the application awaits something else:

- ``load`` reads the package's data into the request's dict and ends
  its transaction (committing only a last access that was due);
- ``commit`` opens a new one, checks that no key the request changed
  was changed by another request since it loaded (else a ConflictError,
  which the retry policy retries), writes the changes key by key and
  commits. The database's own conflict detection covers the rest: a
  concurrent commit of the same key between the check and the commit.

So between the two nothing is held, and nothing needs giving back if the
application fails. The cookies of an attempt are sent only if it
committed. (The client's turns are taken on the event loop, by
``zodbsession.asgi.turns``.)
"""
import transaction
from ZODB.POSException import ConflictError

from zodbsession.conflicts import annotate as annotate_conflict
from zodbsession.conflicts import forget as forget_conflicts
from zodbsession.adaptation.environ import WSGIRequest
from zodbsession.context import install
from zodbsession.interfaces import ISession
from zodbsession.pending import PendingResponse
from zodbsession.hosting.connection import ConnectionSite
from zodbsession.hosting.transactions import end_transaction
from zodbsession.hosting.transactions import has_transaction
from zodbsession.workingcopy import WorkingCopy


class AttemptHosting:
    """The session site, transactions and pending cookies of one attempt.

    ``environ``: the request as the core reads it (its cookie header,
    method and root path). ``retrying``: an earlier attempt conflicted.
    """

    def __init__(self, db, environ, pkg_id, retrying=False):
        self.pkg_id = pkg_id
        self.manager = transaction.TransactionManager(explicit=True)
        self.site = ConnectionSite(db, self.manager, retrying=retrying)
        self.environ = dict(environ)
        self.pending = PendingResponse()
        self.request = self.context = None

    def _begin(self):
        # A new context for each transaction: it keeps the containers it
        # found, and a container in the database belongs to a connection.
        # The pending cookies are the attempt's.
        request = self.request = WSGIRequest(self.environ)
        self.context = request.context = install(
            request, self.site.registry, self.manager, self.site,
            cookies=request, pending=self.pending)
        self.manager.begin()

    def _end(self):
        """Commit the transaction (aborted if that fails, and raised) and
        give back its connection."""
        try:
            self.site.close_if_unchanged()
            end_transaction(self.manager, before_abort=annotate_conflict)
        finally:
            self._release()

    def _release(self):
        if has_transaction(self.manager):
            self.manager.abort()
        self.site.close()
        self.context.end()
        # What the transaction's context made is freed by reference
        # counting, not left in cycles for the garbage collector.
        self.context.release(self.environ)
        self.request.context = None

    def load(self, session):
        """Fill the dict ``session`` with the package's data (the client
        sent an id cookie); returns the WorkingCopy."""
        self._begin()
        forget_conflicts()
        try:
            copy = WorkingCopy(ISession(self.request).get(self.pkg_id),
                               session)
        except BaseException:
            self._release()
            raise
        self._end()
        return copy

    def commit(self, copy, session):
        """Store what the request changed (``copy``, and the flags of the
        ``session`` dict) and commit; returns the headers the response
        must carry. Raises what the commit raised (aborted), and a
        ConflictError when another request changed a key this one changed
        since it loaded."""
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
                self._check_fresh(copy, sessions, changes)
                copy.write(sessions[self.pkg_id], changes)
        except BaseException as error:
            annotate_conflict(error)
            self._release()
            raise
        try:
            self._end()
        finally:
            self.pending.stop_following()
        return self.headers()

    def headers(self):
        """The cookies and headers of what committed (the commit's, or a
        last access the load wrote), for the response's start."""
        return [(name.lower().encode('latin-1'), value.encode('latin-1'))
                for name, value in self.pending.header_list()]

    def _check_fresh(self, copy, sessions, changes):
        stale = copy.stale_keys(sessions.get(self.pkg_id), changes)
        if stale:
            raise ConflictError(
                'another request of the client changed session key(s) '
                + ', '.join(repr(f'{self.pkg_id}/{key}') for key in stale)
                + ' since this one read them')
