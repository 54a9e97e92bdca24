"""Hosting Pyramid requests: a connection, a transaction, retries.

Each request reaches the session site through a connection of its own,
opened when it first touches a session and closed when Pyramid finishes
the request (after pyramid_tm's commit or abort), so persistent objects
never cross threads. Session cookies reach the response only if the
request's transaction committed: an aborted request leaves the client's
session exactly as it was.

The transaction belongs to pyramid_tm when it is active for the request;
otherwise ``manage_transaction`` begins, commits and aborts it the way
pyramid_tm does with its ``default_commit_veto``: the response decides,
also one that an exception view rendered for a raised ``HTTPFound``.
Retries happen in one place, ``retrying_policy`` (or pyramid_retry's
policy when the application includes it).
"""

import logging

import transaction
from transaction.interfaces import TransientError
from webob import Response

from zodbsession.hosting.contention import client_turns
from zodbsession.hosting.contention import incoming_client_key
from zodbsession.hosting.db import is_storage_unavailable
from zodbsession.context import install
from zodbsession.environkeys import ATTEMPT_KEY
from zodbsession.environkeys import CONTEXT_KEY
from zodbsession.hosting.connection import ConnectionSite
from zodbsession.hosting.retry import DEFAULT_RETRY_TIMEOUT
from zodbsession.procstats import counters as process_counters
from zodbsession.hosting.transactions import end_transaction
from zodbsession.hosting.transactions import vetoes_commit

log = logging.getLogger(__name__)

# Seconds a client is asked to wait (Retry-After) after a 503.
DEFAULT_RETRY_AFTER = 5

HOSTING_KEY = 'zodbsession.pyramid.hosting'


def transaction_manager_of(request):
    """pyramid_tm's ``request.tm`` when present, else the thread's."""
    manager = getattr(request, 'tm', None)
    return manager if manager is not None else transaction.manager


class RequestHosting:
    """The session site of one Pyramid request and its outcome."""

    def __init__(self, db, request):
        self.request = request
        self.transaction_manager = transaction_manager_of(request)
        self.site = ConnectionSite(
            db, self.transaction_manager,
            retrying=_attempt_number(request.environ) > 0)
        # pyramid_retry reuses the environ for the next attempt: each
        # attempt has a context of its own, which starts clean.
        self.context = install(request, self.site.registry,
                               self.transaction_manager, self.site)
        self.pending = self.context.pending
        self._turn = None
        self._at_finish = []

    def take_turn(self, contending, db):
        """Under another retry policy (pyramid_retry): run this attempt
        in the client's turn when its requests take turns, always after
        an attempt that conflicted; ``finish`` ends the turn, after
        pyramid_tm's commit or abort."""
        if contending or client_turns.contended():
            self._turn = client_turns.take(
                incoming_client_key(db, self.request.environ), contending,
                DEFAULT_RETRY_TIMEOUT)

    def apply_cookies(self, request, response):
        # What is pending now belongs to transactions that committed: the
        # pending response follows the request's transactions (the one
        # mechanism every host shares, zodbsession.requests).
        if self.pending:
            self.pending.apply(response)

    def on_finish(self, callback):
        """Call ``callback()`` when Pyramid has finished the request."""
        self._at_finish.append(callback)

    def finish(self, request):
        at_finish, self._at_finish = self._at_finish, []
        for callback in at_finish:
            callback()
        client_turns.give_back(self._turn)
        self._turn = None
        # The request's cookies no longer follow its manager (the
        # thread's, which later requests use).
        self.context.end()
        environ = request.environ
        if environ.get(HOSTING_KEY) is self:
            # A late ISession(request) must not open a connection that
            # nobody closes.
            del environ[HOSTING_KEY]
            if environ.get(CONTEXT_KEY) is self.context:
                del environ[CONTEXT_KEY]
        self.site.close()
        # What the request made is freed by reference counting, not left
        # in cycles for the garbage collector (RequestContext.release).
        # Not given the environ: nothing of the context stays with the
        # request, whose late ISession would open a connection through
        # the site that nobody closes.
        self.context.release()


def _attempt_number(environ):
    # Our execution policy's, else pyramid_retry's.
    return environ.get(ATTEMPT_KEY, environ.get('retry.attempt', 0))


def prepare_request(request, db):
    """Give ``request`` its session site (once per request object)."""
    environ = request.environ
    hosting = environ.get(HOSTING_KEY)
    if hosting is not None and hosting.request is request:
        return hosting
    hosting = environ[HOSTING_KEY] = RequestHosting(db, request)
    request.add_response_callback(hosting.apply_cookies)
    request.add_finished_callback(hosting.finish)
    return hosting


def manage_transaction(handler, request, hosting):
    """Run ``handler(request)`` in a transaction, like pyramid_tm with
    ``tm.commit_veto = pyramid_tm.default_commit_veto``.

    Aborts when the handler raised (no exception view answered), when
    ``commit_veto`` vetoes the response, when an exception view answered
    a conflict (the retry policy runs the request again), or when the
    transaction was doomed; otherwise commits. A failed commit is aborted
    and its error raised, for the retry policy to judge.
    """
    manager = hosting.transaction_manager
    manager.begin()
    try:
        response = handler(request)
    except BaseException:
        manager.abort()
        raise
    conflict = isinstance(getattr(request, 'exception', None),
                          TransientError)
    end_transaction(manager,
                    abort=conflict or commit_veto(request, response))
    return response


def commit_veto(request, response):
    """Whether ``response`` vetoes the commit: the rule of
    ``pyramid_tm.default_commit_veto`` (pyramid_tm is optional, so it is
    not imported). An ``X-Tm`` header decides (``commit`` commits, any
    other value aborts); without it, a 4xx or 5xx status aborts and any
    other commits."""
    return vetoes_commit(response.status, response.headers.get('x-tm'))


def retrying_policy(retry_policy, db):
    """A Pyramid execution policy that re-runs a request that failed with
    a TransientError (a ZODB ConflictError, say) as ``retry_policy``
    decides, each time as a fresh request with the same body, the
    client's contending requests taking turns; a request that runs out
    of its budget, or finds the storage unreachable, gets a 503."""

    def policy(environ, router):
        run = retry_policy.start(incoming_client_key, db, environ)
        while True:
            environ[ATTEMPT_KEY] = run.number
            ticket = run.take_turn()
            try:
                with router.request_context(environ) as request:
                    if retry_policy.enabled:
                        request.make_body_seekable()   # rewinds on a replay
                    try:
                        response = router.invoke_request(request)
                    except Exception as exc:
                        if run.retry(exc):
                            continue
                        unavailable = unavailable_response(exc, run)
                        if unavailable is not None:
                            return unavailable
                        return request.invoke_exception_view(reraise=True)
                    # An exception view may have answered a conflict.
                    error = getattr(request, 'exception', None)
                    if error is None:
                        return response
                    if run.retry(error):
                        continue
                    return unavailable_response(error, run) or response
            finally:
                run.give_back(ticket)

    return policy


def answering_unavailable(policy):
    """Wrap another execution policy (pyramid_retry's): a conflict that
    outlasted its attempts, or an unreachable storage, gets a 503 rather
    than a traceback."""

    def wrapped(environ, router):
        try:
            return policy(environ, router)
        except Exception as exc:
            response = unavailable_response(exc)
            if response is None:
                raise
            return response

    return wrapped


def unavailable_response(error, run=None, retry_after=DEFAULT_RETRY_AFTER):
    """The 503 for ``error`` if it is a conflict that ran out of retries
    (logged with what it was about; ``run``: zodbsession's retries, None
    for another policy's) or an unreachable storage; else None."""
    if run is not None and run.ran_out(error):
        body = 'The session was busy; please retry shortly.'
    elif (run is None and isinstance(error, TransientError)
            and not is_storage_unavailable(error)):
        log.error('a conflict outlasted the retry policy\'s attempts'
                  ' (pyramid_retry: the retry.attempts setting): %s: %s',
                  type(error).__name__, error)
        body = 'The session was busy; please retry shortly.'
    elif is_storage_unavailable(error):
        log.warning('session storage unavailable: %s: %s',
                    type(error).__name__, error, exc_info=error)
        body = 'Session storage unavailable; please retry shortly.'
    else:
        return None
    process_counters.count_unavailable()
    response = Response(body, status=503, content_type='text/plain',
                        charset='utf-8')
    response.headers['Retry-After'] = str(retry_after)
    response.cache_control.no_store = True
    return response
