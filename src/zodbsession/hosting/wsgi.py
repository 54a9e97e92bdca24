"""SessionMiddleware: namespaced ZODB sessions for any WSGI application.

Per request: one transaction, committed when the application returns and
aborted when it raises or answers with a 4xx or 5xx (an ``X-Tm``
response header, when present, decides: ``commit`` commits, any other
value aborts, as in the Pyramid and Flask hosts); a conflict re-runs the
request (its body is kept for that) while its ``retry_timeout`` lasts
(see ``zodbsession.retry``), and a request that runs out of it gets a
503 with Retry-After. The database connection is used only when the
request touches its session, so requests that never do cost nothing;
each thread keeps its connection from one request to the next, brought
up to date before each use (see ``zodbsession.site``). The transaction
starts only when something joins it (the thread's manager starts it
then), so a request that only reads commits nothing and skips the
transaction's bookkeeping. The application finds:

- ``environ['zodbsession.session']``: the request's ISession, with
  ``invalidate()``, ``regenerate()``, ``delete()`` and ``persist()``;
- ``environ['zodbsession.request']``: a request that ``ISession(...)``
  and ``IClientId(...)`` adapt (WebOb/Pyramid requests built on the same
  environ adapt too).
"""
import io
import logging
import time

import transaction

from zodbsession import current
from zodbsession import following
from zodbsession import inplace
from zodbsession.adaptation.environ import WSGIRequest
from zodbsession.conflicts import annotate as annotate_conflict
from zodbsession.conflicts import forget as forget_conflicts
from zodbsession.context import has_transaction
from zodbsession.context import RequestContext
from zodbsession.environkeys import ATTEMPT_KEY
from zodbsession.environkeys import CONTEXT_KEY
from zodbsession.environkeys import REQUEST_KEY
from zodbsession.environkeys import SESSION_KEY
from zodbsession.hosting.connection import ConnectionSite
from zodbsession.hosting.contention import incoming_client_key
from zodbsession.hosting.db import is_storage_unavailable
from zodbsession.hosting.db import open_database
from zodbsession.hosting.retry import DEFAULT_RETRIES
from zodbsession.hosting.retry import DEFAULT_RETRY_TIMEOUT
from zodbsession.hosting.retry import RetryPolicy
from zodbsession.hosting.retry import check_retry_after
from zodbsession.hosting.sitechanges import ensure_site
from zodbsession.hosting.transactions import end_transaction
from zodbsession.hosting.transactions import vetoes_commit
from zodbsession.hosting.maintenance import start_maintenance
from zodbsession.hosting.packing import DEFAULT_PACK_INTERVAL
from zodbsession.hosting.packing import check_pack_interval
from zodbsession.procstats import counters as process_counters
from zodbsession.remembered import Remembered
from zodbsession.adaptation.registration import register_adapters
from zodbsession.session import Session

log = logging.getLogger(__name__)


# Seconds a client is asked to wait (Retry-After) when the storage server
# is unreachable.
DEFAULT_RETRY_AFTER = 5

# Request bodies above this size are spooled to a temporary file rather
# than kept in memory while they wait for a possible retry.
MAX_MEMORY_BODY = 1024 * 1024


class SessionMiddleware:
    """Wrap ``app`` so that it has sessions.

    ``db`` is an open ``ZODB.DB``; otherwise ``db_uri`` is opened (default:
    the embedded FileStorage ``var/sessions.fs``). ``settings`` are the
    client id manager's (``namespace``, ``secure``, ``sameSite``,
    ``secret``, ...) and the unnamed container's (``timeout``,
    ``resolution``); they are stored in the database, shared by every
    process that uses it. When the storage server (ZEO, PostgreSQL) cannot
    be reached, requests that need their session get a 503 with
    ``Retry-After: retry_after``; requests that do not still succeed.

    A request that conflicts runs again while ``retry_timeout`` seconds
    (10) from its start last, at most ``retries`` times if given (None,
    the default: no count); one client's contending requests take turns
    in the process. A conflict that outlasts the budget is answered with
    a 503 and ``Retry-After``, and logged with the session keys it was
    about.

    A background thread sweeps expired sessions and packs the storage
    once every ``pack_interval`` seconds (one day; 0: never), one process
    of the database at a time (see ``zodbsession.maintenance``).
    """

    def __init__(self, app, db=None, db_uri=None, retries=DEFAULT_RETRIES,
                 retry_timeout=DEFAULT_RETRY_TIMEOUT,
                 retry_after=DEFAULT_RETRY_AFTER,
                 pack_interval=DEFAULT_PACK_INTERVAL, **settings):
        self.retry_policy = RetryPolicy(retries, retry_timeout)
        check_retry_after(retry_after)
        check_pack_interval(pack_interval)     # before opening anything
        self.app = app
        self.db = db if db is not None else open_database(db_uri)
        self.retries = retries
        self.retry_timeout = retry_timeout
        self.retry_after = retry_after
        register_adapters()
        ensure_site(self.db, **settings)
        self.maintenance = start_maintenance(self.db, pack_interval)

    def __call__(self, environ, start_response):
        process_counters.count_request()
        policy = self.retry_policy
        if policy.turns.contended() or (
                _has_body(environ) and policy.enabled):
            # Turns to take, or a body to keep for replays.
            return self._serve(environ, start_response)
        # Most requests: no body to keep for a replay, no client's requests
        # taking turns; the first attempt needs no retry state.
        started = time.monotonic()
        try:
            status, headers, body, exc_info = self._attempt(dict(environ), 0)
        except Exception as exc:
            failure = exc
        else:
            start_response(status, headers, exc_info)
            return body
        # (Outside the handler: a retry runs with no exception being
        # handled, and what it raises is not chained to this failure.)
        return self._serve(environ, start_response, policy.start(
            incoming_client_key, self.db, environ, started=started), failure)

    def _serve(self, environ, start_response, run=None, failure=None):
        """Serve the request with retries (``run``: its retry state when
        its first attempt, already made, failed with ``failure``)."""
        replay_body = None
        if run is None:
            policy = self.retry_policy
            if policy.enabled and _has_body(environ):
                replay_body = _buffered_body(environ)
            # The budget starts with the first attempt, after the body
            # was read: a slow upload does not use it up.
            run = policy.start(incoming_client_key, self.db, environ)
        while True:
            if failure is None:
                if replay_body is not None:
                    replay_body.seek(0)
                    environ['wsgi.input'] = replay_body
                ticket = run.take_turn()
                try:
                    status, headers, body, exc_info = self._attempt(
                        dict(environ), run.number)
                except Exception as exc:
                    failure = exc
                finally:
                    run.give_back(ticket)
                if failure is None:
                    start_response(status, headers, exc_info)
                    return body
            error, failure = failure, None
            if run.retry(error):
                continue
            if run.ran_out(error):
                return self._unavailable(
                    start_response, b'The session was busy; please'
                    b' retry shortly.\n')
            if not is_storage_unavailable(error):
                raise error
            log.warning('session storage unavailable: %s: %s',
                        type(error).__name__, error, exc_info=error)
            return self._unavailable(start_response)

    def _unavailable(self, start_response,
                     body=b'Session storage unavailable; please retry'
                          b' shortly.\n'):
        process_counters.count_unavailable()
        start_response('503 Service Unavailable', [
            ('Content-Type', 'text/plain; charset=utf-8'),
            ('Content-Length', str(len(body))),
            ('Retry-After', str(self.retry_after)),
            ('Cache-Control', 'no-store'),
        ])
        return [body]

    def _attempt(self, environ, attempt):
        """Run the application once inside a transaction.

        Returns the response to send; raises TransientError to retry.
        """
        # The thread's own manager, not the thread-dispatching proxy: the
        # same transactions, one indirection less on every call.
        manager = transaction.manager.manager
        site = ConnectionSite(self.db, manager, keep=True,
                              retrying=attempt > 0)
        request = WSGIRequest(environ)
        context = request.context = environ[CONTEXT_KEY] = RequestContext(
            request, site.registry, manager, site, cookies=request,
            hosted=True)
        environ[REQUEST_KEY] = request
        environ[SESSION_KEY] = Session.for_context(context)
        environ[ATTEMPT_KEY] = attempt
        if getattr(manager, 'explicit', False) or has_transaction(manager):
            _start(manager)
        forget_conflicts()
        token = current.enter(request)
        try:
            try:
                status, headers, body, exc_info = _call_app(
                    self.app, environ)
            except BaseException as error:
                if has_transaction(manager):
                    annotate_conflict(error)
                    manager.abort()
                raise
            site.close_if_unchanged()
            if context.takes_part(manager) or has_transaction(manager):
                # An application that answers its own errors (a
                # framework's 500 page, start_response with exc_info) does
                # not raise: its response says it failed, and what it
                # half did is not kept.
                end_transaction(manager, abort=_vetoed(status, headers),
                                before_abort=annotate_conflict,
                                under_way=True)
            elif site.opened:
                # (A request that changed nothing: no transaction to end,
                # nor a response to judge.)
                inplace.reads_over(manager)
        finally:
            current.leave(token)
            context.end()
            site.close()
        pending = context.pending_if_any
        if pending:
            headers = _merge_headers(headers, pending)
        # The response is complete: what the request made is freed now,
        # not by the garbage collector (see RequestContext.release), the
        # environ included: its keys of ours and our request refer back
        # to it.
        context.release(environ)
        request.context = None
        environ.pop(REQUEST_KEY, None)
        environ.pop(SESSION_KEY, None)
        return status, headers, body, exc_info


def _vetoed(status, headers):
    """Whether the response vetoes the commit (a 4xx or 5xx, unless its
    ``X-Tm`` header says ``commit``): the rule of every host."""
    x_tm = None
    for name, value in headers:
        if name.lower() == 'x-tm':
            x_tm = value
    return vetoes_commit(status, x_tm)


def _has_body(environ):
    """Whether the request may have a body (a replay must read again)."""
    return bool(environ.get('CONTENT_LENGTH')
                or environ.get('wsgi.input_terminated'))


def _start(manager):
    """Start the request with no transaction left from before it (the
    request's host calls this when a transaction is under way, or the
    manager is explicit).

    The thread's (implicit) manager starts the request's transaction when
    the first data manager joins, and a connection opened without one
    reads the latest state all the same; so nothing is begun here, and a
    request that only reads never creates a transaction. An explicit
    manager has no such start: its transaction is begun now.

    A ZODB connection that an earlier request on this thread could not
    close during a storage outage may still follow the thread's
    transactions and poll the dead storage when one begins or ends; such
    followers are dropped (requests register what they need anew).
    """
    try:
        _clear(manager)
    except Exception as exc:
        if not is_storage_unavailable(exc):
            raise
        log.warning('dropping transaction synchronizers left behind by a'
                    ' storage outage: %s: %s', type(exc).__name__, exc)
        manager.clearSynchs()
        # Ours too: they register again when next needed.
        following.forget(manager)
        inplace.forget_watch(manager)
        _clear(manager)


def _clear(manager):
    if getattr(manager, 'explicit', False):
        manager.begin()
    elif has_transaction(manager):
        manager.abort()


def _buffered_body(environ):
    """A rewindable copy of the request body, for replays."""
    try:
        length = int(environ.get('CONTENT_LENGTH') or 0)
    except ValueError:
        length = 0
    stream = environ.get('wsgi.input')
    if stream is None:
        return io.BytesIO(b'')
    if length <= 0:
        # A server that passes a chunked body on marks the stream as
        # ending at the body's end; otherwise no length means no body.
        if not environ.get('wsgi.input_terminated'):
            return io.BytesIO(b'')
        length = None
    if length is not None and length <= MAX_MEMORY_BODY:
        return io.BytesIO(stream.read(length))
    import tempfile
    spool = tempfile.TemporaryFile()
    remaining = length
    while remaining is None or remaining > 0:
        chunk = stream.read(65536 if remaining is None
                            else min(remaining, 65536))
        if not chunk:
            break
        spool.write(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    return spool


def _call_app(app, environ):
    """Call a WSGI app and collect its whole response.

    The response must be complete before the transaction commits: a
    failed commit turns into a retry or an error, never into a half-sent
    page with a cookie for data that was not stored.
    """
    captured = []

    def start_response(status, headers, exc_info=None):
        captured[:] = [status, list(headers), exc_info]
        return _no_write

    body = collected(app(environ, start_response))
    if not captured:
        raise RuntimeError('the application did not call start_response')
    status, headers, exc_info = captured
    return status, headers, body, exc_info


def collected(result):
    """The whole body of a WSGI application's ``result``, as a list; the
    result is closed, as the WSGI server would close it."""
    if type(result) is list:
        # Most applications' answer: nothing to close (and looking for a
        # ``close`` a list lacks costs an exception).
        return result
    try:
        return list(result)
    finally:
        close = getattr(result, 'close', None)
        if close is not None:
            close()


def _no_write(data):
    raise NotImplementedError(
        'SessionMiddleware needs the response as an iterable; the write()'
        ' callable of start_response is not supported')


def _merge_headers(headers, pending):
    """The application's ``headers`` with ``pending``'s (a
    PendingResponse): its headers replace the application's of the same
    name, its cookies are added."""
    # (A loop, not a comprehension: this runs on every response that
    # sets a cookie, and a comprehension is a call of its own before
    # 3.12.)
    replaced = _replaced_names(tuple(pending.headers))
    merged = []
    for header in headers:
        if header[0].lower() not in replaced:
            merged.append(header)
    merged.extend(pending.header_list())
    return merged


# Header names a response's pending headers replace, lower-cased, by the
# names as given: a handful of sets (most responses: the no-cache
# headers, or none).
_replaced = Remembered(64)


def _replaced_names(names):
    replaced = _replaced.get(names)
    if replaced is None:
        # (A Set-Cookie among them adds to the application's cookies.)
        replaced = frozenset(name.lower() for name in names) - {
            'set-cookie'}
        _replaced.remember(names, replaced)
    return replaced


def make_filter(app, global_conf=None, **local_conf):
    """PasteDeploy ``filter_app_factory``: ``use = egg:zodbsession``.

    Options: ``db_uri``, ``retries``, ``retry_timeout``, ``pack_interval``
    (seconds between background packs; 0: never) and any session setting
    (``timeout``, ``resolution``, ``namespace``, ``secure``, ``httpOnly``,
    ``sameSite``, ``secret``, ...); values are converted to the types the
    settings need.
    """
    from zodbsession.hosting.settings import parse_settings
    options = parse_settings(local_conf)
    return SessionMiddleware(app, **options)
