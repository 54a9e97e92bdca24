"""ASGI sessions on zodbsession: Starlette, FastAPI, any ASGI app.

``app.add_middleware(SessionMiddleware, db_uri=...)`` (Starlette,
FastAPI) or ``SessionMiddleware(app, ...)``: ``request.session`` (the
scope's ``'session'``) is then a dict, as Starlette's own
SessionMiddleware offers it, whose data is a zodbsession package
(``asgi.session``): transactional, merged key by key with the client's
concurrent requests, expiring on the server.

Per request: when the client sent an id cookie, its data is loaded in a
worker thread before the application is called (a request without one
touches no storage); the application changes the dict in memory; when it
sends ``http.response.start`` the changes are committed in a worker
thread (unless the response is a 4xx or 5xx, or an ``X-Tm`` header
other than ``commit`` vetoes it: then they are dropped), and the
response goes out with its cookies only if that committed. A commit
that conflicts runs the application again (with the request body it
read, replayed), while nothing has been sent and the retry budget
lasts; one that runs out, or finds the storage unreachable, is answered
with a 503 and Retry-After. The event loop never waits for
the storage. A websocket's session is read-only.
"""
import anyio.to_thread

from zodbsession.asgi.hosting import AttemptHosting
from zodbsession.asgi.session import ASGISession
from zodbsession.asgi.session import SessionClosed
from zodbsession.asgi.turns import AsyncClientTurns
from zodbsession.hosting.db import is_storage_unavailable
from zodbsession.hosting.db import shared_database
from zodbsession.interfaces import IClientIdManager
from zodbsession.lookup import utility_in
from zodbsession.hosting.maintenance import start_maintenance
from zodbsession.hosting.packing import DEFAULT_PACK_INTERVAL
from zodbsession.hosting.packing import check_pack_interval
from zodbsession.adaptation.registration import register_adapters
from zodbsession.adaptation.environ import cookie_value
from zodbsession.hosting.retry import DEFAULT_RETRIES
from zodbsession.hosting.retry import DEFAULT_RETRY_TIMEOUT
from zodbsession.hosting.retry import RetryPolicy
from zodbsession.hosting.retry import check_retry_after
from zodbsession.hosting.transactions import vetoes_commit
from zodbsession.site import SessionSite
from zodbsession.hosting.sitechanges import ensure_site
from zodbsession.hosting.snapshot import snapshots
from zodbsession.workingcopy import WorkingCopy

__all__ = ['SessionMiddleware', 'ASGISession', 'SessionClosed',
           'CommitFailed']

DEFAULT_PKG_ID = 'asgi.session'
# Seconds a client is asked to wait (Retry-After) after a 503.
DEFAULT_RETRY_AFTER = 5

_BUSY = b'The session was busy; please retry shortly.\n'
_UNAVAILABLE = b'Session storage unavailable; please retry shortly.\n'


class CommitFailed(Exception):
    """Raised into the application by ``send``: its session could not be
    stored, and its response is not sent (the middleware answers)."""


_CLOSED_AT_START = (
    'after the response started: the session was stored then (or, the'
    ' response being a 4xx or 5xx, dropped); change the session before'
    ' the response starts (before returning or sending the Response)')


def _vetoed(start):
    """Whether the response that ``start`` (``http.response.start``)
    begins vetoes the commit: a 4xx or 5xx, unless its ``X-Tm`` header
    says ``commit``."""
    x_tm = None
    for name, value in start.get('headers', ()):
        if name.lower() == b'x-tm':
            x_tm = value.decode('latin-1')
    return vetoes_commit(start.get('status', 200), x_tm)


def _in_thread(function, *args):
    # Storage work, off the event loop; not cancellable, so that a
    # commit under way is never abandoned half done.
    return anyio.to_thread.run_sync(function, *args)


class SessionMiddleware:
    """``SessionMiddleware(app, db=None, db_uri=None, **settings)``.

    ``db`` is an open ``ZODB.DB``; otherwise ``db_uri`` is opened
    (default ``file://var/sessions.fs``). ``settings`` are those of the
    WSGI ``SessionMiddleware``: the client id cookie's (``namespace``,
    ``secure``, ``sameSite``, ``secret``, ...), the unnamed container's
    (``timeout``, ``resolution``), ``retries``, ``retry_timeout``,
    ``retry_after`` and ``pack_interval``; ``pkg_id`` names the package of the session's data.
    The database is opened, and the settings applied, in a worker thread
    on the first request (Starlette builds its middleware inside the
    event loop); the id cookie's name is read then, once, so that the
    event loop can tell a request without a session from its headers
    (restart the process after changing ``namespace`` in the database).
    """

    def __init__(self, app, db=None, db_uri=None, pkg_id=DEFAULT_PKG_ID,
                 retries=DEFAULT_RETRIES, retry_timeout=DEFAULT_RETRY_TIMEOUT,
                 retry_after=DEFAULT_RETRY_AFTER,
                 pack_interval=DEFAULT_PACK_INTERVAL, **settings):
        self.app = app
        self.pack_interval = check_pack_interval(pack_interval)
        self.db = db
        self.db_uri = db_uri
        self.pkg_id = pkg_id
        self.retry_policy = RetryPolicy(retries, retry_timeout)
        self.retry_after = check_retry_after(retry_after)
        given, settings = settings, from_starlette_names(settings)
        # Checked now, in memory (a bad setting fails at start-up, not at
        # the first request); stored in the database by ``prepare``.
        try:
            SessionSite().configure(**settings)
        except ValueError as error:
            # The message names zodbsession's setting; the application
            # may have given it by Starlette's name.
            renamed = [f'{name} is {STARLETTE_NAMES[name]!r}'
                       for name in given
                       if STARLETTE_NAMES.get(name, name) != name]
            if renamed:
                error.add_note("Starlette's arguments given: "
                               + ', '.join(renamed))
            raise
        self.settings = settings
        self.cookie_name = None
        self.turns = AsyncClientTurns()
        self._ready = None

    def prepare(self):
        """Open the database and apply the settings (blocking: call it in
        a thread, or before the event loop runs)."""
        if self.cookie_name is not None:
            return
        if self.db is None:
            self.db = shared_database(self.db_uri)
        register_adapters()
        ensure_site(self.db, **self.settings)
        # Sweeping and packing on a schedule, as under every host.
        self.maintenance = start_maintenance(self.db, self.pack_interval)
        # The cookie that says whether a request has a session to load,
        # read on the event loop without touching the storage.
        manager = utility_in(snapshots.get(self.db), IClientIdManager)
        self.cookie_name = manager.namespace

    async def _prepared(self):
        if self.cookie_name is None:
            if self._ready is None:
                self._ready = anyio.Lock()
            async with self._ready:
                if self.cookie_name is None:
                    await _in_thread(self.prepare)

    async def __call__(self, scope, receive, send):
        if scope['type'] not in ('http', 'websocket'):
            await self.app(scope, receive, send)
            return
        await self._prepared()
        await _Exchange(self, scope, receive, send).serve()


# Starlette's SessionMiddleware's arguments, and the settings they are.
STARLETTE_NAMES = {'secret_key': 'secret', 'session_cookie': 'namespace',
                   'max_age': 'cookieLifetime', 'path': 'path',
                   'same_site': 'sameSite', 'https_only': 'secure',
                   'domain': 'domain'}


def from_starlette_names(settings):
    """``settings`` with Starlette's argument names (``secret_key``,
    ``session_cookie``, ``max_age``, ``path``, ``same_site``,
    ``https_only``, ``domain``) turned into zodbsession's, so that the
    arguments given to Starlette's middleware keep working. Starlette's
    ``max_age=None`` is a browser-session cookie, as ``cookieLifetime``'s;
    its ``session_cookie`` must be a zodbsession cookie name."""
    result = {}
    for name, value in settings.items():
        setting = STARLETTE_NAMES.get(name, name)
        if setting in result or (setting != name and setting in settings):
            raise TypeError(f'{name!r} and {setting!r} are the same'
                            ' setting; give one of them')
        if name == 'same_site' and isinstance(value, str):
            value = value.capitalize()
        result[setting] = value
    return result


def _environ(scope):
    """What the core reads of a request: its cookies, method, root path
    and scheme."""
    environ = {
        'REQUEST_METHOD': scope.get('method', 'GET'),
        'SCRIPT_NAME': scope.get('root_path', ''),
        'PATH_INFO': scope.get('path', '/'),
        'wsgi.url_scheme': scope.get('scheme', 'http'),
    }
    cookies = [value.decode('latin-1') for name, value
               in scope.get('headers', ()) if name == b'cookie']
    if cookies:
        environ['HTTP_COOKIE'] = '; '.join(cookies)
    return environ


class _Body:
    """The request's body messages, kept to replay them to a re-run."""

    def __init__(self, receive):
        self._receive = receive
        self._messages = []

    def receiver(self):
        """A ``receive`` for one attempt: what earlier attempts read,
        then the client's."""
        position = 0

        async def receive():
            nonlocal position
            if position < len(self._messages):
                position += 1
                return self._messages[position - 1]
            message = await self._receive()
            if message['type'] == 'http.request':
                self._messages.append(message)
                position += 1
            return message

        return receive


class _Exchange:
    """One request through the middleware: its attempts, each hosted by
    an ``AttemptHosting`` in worker threads."""

    def __init__(self, middleware, scope, receive, send):
        self.middleware = middleware
        self.scope = scope
        self.send = send
        self.body = _Body(receive)
        self.environ = _environ(scope)
        self.run = middleware.retry_policy.start()
        # Whose turn the request waits for, when its client's requests
        # take turns: its id cookie as sent (unverified: it only orders
        # requests that bring the same value).
        self.client_key = cookie_value(self.environ.get('HTTP_COOKIE'),
                                       middleware.cookie_name)

    async def serve(self):
        while True:
            error = await self._attempt()
            if error is None:
                return
            hosting_retry = self.run.retryable(error)
            if hosting_retry and await _in_thread(self.run.retry, error):
                continue
            if hosting_retry and self.run.ran_out(error):
                await self._unavailable(_BUSY)
                return
            if is_storage_unavailable(error):
                await self._unavailable(_UNAVAILABLE)
                return
            raise error

    async def _attempt(self):
        """Run the application once; returns the storage error that
        stopped the attempt before anything was sent, or None."""
        middleware = self.middleware
        hosting = AttemptHosting(middleware.db, self.environ,
                                 middleware.pkg_id,
                                 retrying=self.run.number > 0)
        session = ASGISession()
        websocket = self.scope['type'] == 'websocket'
        try:
            # A websocket may live for hours: it takes no turn.
            async with middleware.turns.turn(
                    None if websocket else self.client_key,
                    self.run.number > 0, self.run.remaining()):
                if self.client_key is not None:
                    copy = await _in_thread(hosting.load, session)
                else:
                    copy = WorkingCopy(None, session)
                if websocket:
                    session.close('in a websocket: a websocket session'
                                  ' is read-only')
                return await self._call_app(hosting, copy, session)
        except Exception as error:
            if is_storage_unavailable(error) or self.run.retryable(error):
                return error
            raise

    async def _call_app(self, hosting, copy, session):
        state = {'started': False, 'failed': None}
        send = self.send

        async def send_after_commit(message):
            if state['failed'] is not None:
                raise CommitFailed('the session was not stored')
            if message['type'] == 'http.response.start' and (
                    not state['started']):
                session.close(_CLOSED_AT_START)
                if _vetoed(message):
                    # An error the application answered (a 4xx or 5xx):
                    # what it changed is not stored, as in every host.
                    headers = hosting.headers()
                elif copy or session.invalidating or session.regenerating:
                    try:
                        headers = await _in_thread(hosting.commit, copy,
                                                   session)
                    except Exception as error:
                        state['failed'] = error
                        raise CommitFailed(
                            'the session could not be stored') from error
                else:
                    headers = hosting.headers()
                if headers:
                    message = dict(message, headers=list(
                        message.get('headers', ())) + headers)
                state['started'] = True
            await send(message)

        scope = dict(self.scope, session=session)
        try:
            await self.middleware.app(scope, self.body.receiver(),
                                      send_after_commit)
        except BaseException:
            if state['failed'] is None:
                raise
        if state['failed'] is not None:
            if state['started']:
                raise state['failed']
            return state['failed']
        return None

    async def _unavailable(self, body):
        if self.scope['type'] != 'http':
            await self.send({'type': 'websocket.close', 'code': 1013})
            return
        await self.send({
            'type': 'http.response.start', 'status': 503,
            'headers': [
                (b'content-type', b'text/plain; charset=utf-8'),
                (b'content-length', str(len(body)).encode()),
                (b'retry-after', str(self.middleware.retry_after).encode()),
                (b'cache-control', b'no-store')]})
        await self.send({'type': 'http.response.body', 'body': body})
