"""Flask sessions on zodbsession: ``ZODBSession(app)``.

``flask.session`` is then a zodbsession package (``flask.session`` by
default), transactional with the request, merged key by key with the
client's concurrent requests, expiring on the server. Configuration comes
from ``app.config``:

- ``ZODBSESSION_DB_URI``: the database (default: the embedded
  ``sessions.fs`` in the application's instance folder), or
  ``ZODBSESSION_DB``, an open ``ZODB.DB``;
- ``ZODBSESSION_PACKAGE_ID``: the package of the session's data;
- ``ZODBSESSION_<NAME>``: any other setting of the WSGI
  ``SessionMiddleware`` (``TIMEOUT``, ``RESOLUTION``, ``SECRET``,
  ``RETRIES``, ``RETRY_TIMEOUT``, ``RETRY_AFTER``, ``COOKIELIFETIME``,
  ...), names as upper case;
- Flask's ``SESSION_COOKIE_NAME``, ``_DOMAIN``, ``_PATH``,
  ``_HTTPONLY``, ``_SECURE`` and ``_SAMESITE`` for the cookie, and
  ``PERMANENT_SESSION_LIFETIME`` for permanent sessions, in the browser
  and on the server. ``SECRET_KEY`` plays no part: the site's own secret
  signs the client id.

Flask's application runs inside zodbsession's WSGI ``SessionMiddleware``:
the transaction commits after the response is built and aborts on an
unhandled error; a handled HTTP error (a 4xx or 5xx response) aborts, a
2xx or 3xx (a raised redirect too) commits, and an ``X-Tm`` header
decides when present, as in the Pyramid integration. A conflict re-runs
the request (the view too), a 503 answers when retries run out.
"""
import os

from flask import request as current_request
from flask import session as current_session
from flask.signals import got_request_exception
from flask.sessions import SecureCookieSession
from flask.sessions import SessionInterface
from transaction.interfaces import TransientError

from zodbsession.hosting import wsgi
from zodbsession.container import PersistentSessionDataContainer
from zodbsession.hosting.db import is_storage_unavailable
from zodbsession.hosting.db import shared_database
from zodbsession.expiry import resolution_for
from zodbsession.flask.session import PERMANENT_SUFFIX
from zodbsession.flask.session import FlaskSession
from zodbsession.interfaces import ICookieClientIdManager
from zodbsession.hosting.settings import parse_settings
from zodbsession.hosting.sitechanges import ensure_container
from zodbsession.validated import InvalidSetting
from zodbsession.validated import check

__all__ = ['ZODBSession', 'FlaskSession', 'regenerate_session']

DEFAULT_PKG_ID = 'flask.session'
CONFIG_PREFIX = 'ZODBSESSION_'
EXTENSION_KEY = 'zodbsession'
# Where the request's error waits for the hosting to judge it.
ERROR_KEY = 'zodbsession.flask.error'

_HOSTING = ('retries', 'retry_timeout', 'retry_after')
_SETTINGS = {name.upper(): name for name in (
    _HOSTING + tuple(ICookieClientIdManager) + ('secret',)
    + ('timeout', 'resolution'))}
_OWN = ('DB_URI', 'DB', 'PACKAGE_ID')

# Flask's cookie settings and the client id manager's.
_COOKIE_SETTINGS = (('SESSION_COOKIE_NAME', 'namespace'),
                    ('SESSION_COOKIE_DOMAIN', 'domain'),
                    ('SESSION_COOKIE_PATH', 'path'),
                    ('SESSION_COOKIE_HTTPONLY', 'httpOnly'),
                    ('SESSION_COOKIE_SECURE', 'secure'),
                    ('SESSION_COOKIE_SAMESITE', 'sameSite'))


class ZODBSession:
    """The extension: ``ZODBSession(app)`` or ``ZODBSession().init_app(app)``.
    """

    def __init__(self, app=None):
        if app is not None:
            self.init_app(app)

    def init_app(self, app):
        config = app.config
        options = _middleware_options(config)
        pkg_id = config.get(CONFIG_PREFIX + 'PACKAGE_ID') or DEFAULT_PKG_ID
        db = config.get(CONFIG_PREFIX + 'DB')
        if db is None:
            db = shared_database(config.get(CONFIG_PREFIX + 'DB_URI') or (
                'file://' + os.path.join(app.instance_path, 'sessions.fs')))
        lifetime = int(app.permanent_session_lifetime.total_seconds())
        app.wsgi_app = wsgi.SessionMiddleware(
            _reraising_for_retry(app, app.wsgi_app), db=db, **options)
        ensure_container(db, pkg_id + PERMANENT_SUFFIX,
                         *_permanent_container(lifetime))
        app.session_interface = ZODBSessionInterface(pkg_id, lifetime)
        # Per application (one extension may serve several):
        # app.extensions['zodbsession'].db is the application's database.
        app.extensions[EXTENSION_KEY] = AppSessions(db, pkg_id)
        self.db = db
        return app


class AppSessions:
    """What ``init_app`` set up for one application: its ``db`` and the
    ``pkg_id`` of its sessions."""

    def __init__(self, db, pkg_id):
        self.db = db
        self.pkg_id = pkg_id

    def __repr__(self):
        return f'<AppSessions pkg_id={self.pkg_id!r} db={self.db!r}>'


def _middleware_options(config):
    """The WSGI middleware's settings from ``app.config``."""
    options = {}
    for flask_name, setting in _COOKIE_SETTINGS:
        value = config.get(flask_name)
        if value is None or value is False and flask_name.endswith(
                ('_DOMAIN', '_PATH')):
            continue
        if setting == 'sameSite' and isinstance(value, str):
            value = value.capitalize()
        options[setting] = check(ICookieClientIdManager[setting], value,
                                 flask_name)
    texts = {}
    for key, value in config.items():
        if not key.startswith(CONFIG_PREFIX):
            continue
        name = key[len(CONFIG_PREFIX):]
        if name in _OWN:
            continue
        setting = _SETTINGS.get(name)
        if setting is None:
            known = sorted(_SETTINGS) + list(_OWN)
            raise InvalidSetting(key, value, 'a zodbsession setting: '
                                 + ', '.join(CONFIG_PREFIX + known_name
                                             for known_name in known))
        texts[setting] = value
    options.update(parse_settings(texts))
    if options.get('timeout') and 'resolution' not in options:
        # A short timeout needs a finer resolution than the default, or
        # sessions outlive it by up to that much.
        options['resolution'] = resolution_for(options['timeout'])
    return options


def _permanent_container(lifetime):
    resolution = resolution_for(lifetime)

    def make():
        return PersistentSessionDataContainer(timeout=lifetime,
                                              resolution=resolution)

    def matches(container):
        return (isinstance(container, PersistentSessionDataContainer)
                and container.timeout == lifetime
                and container.resolution == resolution)

    return make, matches


def _reraising_for_retry(app, wsgi_app):
    """Flask answers every unhandled error with a 500 page; a conflict or
    an unreachable storage must reach the hosting instead, which retries
    or answers 503. Flask's ``got_request_exception`` signal says which
    error the 500 was for."""

    def note(sender, exception, **extra):
        if isinstance(exception, TransientError) or is_storage_unavailable(
                exception):
            current_request.environ[ERROR_KEY] = exception

    got_request_exception.connect(note, app, weak=False)

    def hosted(environ, start_response):
        environ.pop(ERROR_KEY, None)
        result = wsgi_app(environ, start_response)
        error = environ.pop(ERROR_KEY, None)
        if error is not None:
            close = getattr(result, 'close', None)
            if close is not None:
                close()
            raise error
        return result

    return hosted


class UnhostedSession(SecureCookieSession):
    """The session of a request context that no request came through
    (``app.test_request_context()``): empty, and a change raises."""

    def _fail(self, *args, **kwargs):
        raise RuntimeError(
            'zodbsession.flask: this request context did not come through'
            ' app.wsgi_app (where ZODBSession keeps sessions), so it has no'
            ' session to change; make the request with app.test_client()')

    __setitem__ = __delitem__ = clear = pop = popitem = update = (
        setdefault) = _fail
    del _fail


class ZODBSessionInterface(SessionInterface):
    """Flask's session interface: opens a ``FlaskSession`` per request;
    the WSGI middleware around the application decides the commit by
    the response's status."""

    def __init__(self, pkg_id=DEFAULT_PKG_ID, permanent_lifetime=None):
        self.pkg_id = pkg_id
        self.permanent_lifetime = permanent_lifetime

    null_session_class = UnhostedSession

    def open_session(self, app, request):
        hosted = request.environ.get(wsgi.REQUEST_KEY)
        if hosted is None:
            # A request context made without a request through the
            # application (app.test_request_context(), the shell): Flask
            # gives it an UnhostedSession.
            return None
        return FlaskSession(hosted, self.pkg_id)

    def save_session(self, app, session, response):
        # The commit is the WSGI middleware's to decide, by the response
        # Flask sends it (its status, an X-Tm header).
        if session.accessed:
            response.vary.add('Cookie')
        session.restore()
        refresh = app.config['SESSION_REFRESH_EACH_REQUEST']
        if session.loaded_permanent and (session.modified or refresh):
            session.renew_cookie(self.permanent_lifetime)


def regenerate_session():
    """Keep the current session's data under a new client id; call it
    right after a user logs in."""
    current_session.regenerate()
