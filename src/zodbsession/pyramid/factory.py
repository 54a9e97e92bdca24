"""The session factory: settings in code or in the .ini file."""
from zodbsession.hosting.db import open_database
from zodbsession.hosting.maintenance import start_maintenance
from zodbsession.hosting.packing import DEFAULT_PACK_INTERVAL
from zodbsession.pyramid.hosting import prepare_request
from zodbsession.pyramid.session import DEFAULT_PKG_ID
from zodbsession.pyramid.session import PyramidSession
from zodbsession.hosting.retry import DEFAULT_RETRIES
from zodbsession.hosting.retry import DEFAULT_RETRY_TIMEOUT
from zodbsession.hosting.retry import RetryPolicy
from zodbsession.hosting.settings import parse_settings
from zodbsession.hosting.sitechanges import ensure_site

SETTINGS_PREFIX = 'zodbsession.'

# zodbsession.* settings that are not the session factory's: the metrics
# view's (config.include('zodbsession.admin.pyramid') reads them).
OTHER_INCLUDES_SETTINGS = ('metrics_path', 'metrics_token')

# Set in the registry by the tween; without it nothing would commit.
HOSTED_MARK = 'zodbsession.pyramid.hosted'


class SessionFactory:
    """Pyramid's ISessionFactory: ``request.session`` for each request.

    ``db`` holds the sessions; ``pkg_id`` names the package whose data is
    the Pyramid session; ``retries`` and ``retry_timeout`` bound the
    re-runs of a request that met a conflict (when zodbsession, not
    pyramid_retry, retries; see ``zodbsession.retry``).
    """

    def __init__(self, db, pkg_id=DEFAULT_PKG_ID, retries=DEFAULT_RETRIES,
                 owns_db=False, retry_timeout=DEFAULT_RETRY_TIMEOUT):
        self.retry_policy = RetryPolicy(retries, retry_timeout)
        self.db = db
        self.pkg_id = pkg_id
        self.retries = retries
        self.retry_timeout = retry_timeout
        self._owns_db = owns_db

    def __call__(self, request):
        if not request.registry.get(HOSTED_MARK):
            raise RuntimeError(
                "zodbsession's session factory needs its tween: call"
                " config.include('zodbsession.pyramid') in the application's"
                ' configuration')
        hosting = prepare_request(request, self.db)
        session = PyramidSession(request, self.pkg_id)
        hosting.on_finish(session.release)
        return session

    def close(self):
        """Close the database if this factory opened it."""
        if self._owns_db:
            self.db.close()

    def __repr__(self):
        return f'<SessionFactory pkg_id={self.pkg_id!r} db={self.db!r}>'


def session_factory(db=None, db_uri=None, pkg_id=DEFAULT_PKG_ID,
                    retries=DEFAULT_RETRIES,
                    retry_timeout=DEFAULT_RETRY_TIMEOUT,
                    pack_interval=DEFAULT_PACK_INTERVAL, **settings):
    """A session factory for ``config.set_session_factory``.

    ``db``: an open ``ZODB.DB``; otherwise ``db_uri`` is opened (default
    ``file://var/sessions.fs``). ``pkg_id``: the package id of the Pyramid
    session's data (default ``pyramid.session``). ``retries``: most re-runs
    of a request after a conflict (default None: no count), within
    ``retry_timeout`` seconds from its start (default 10). ``settings``: the client id
    manager's (``namespace``, ``secret``, ``cookieLifetime``, ``secure``,
    ``httpOnly``, ``sameSite``, ``path``, ``domain``, ...) and the unnamed
    container's (``timeout``, ``resolution``); they are stored in the
    database, shared by every process that uses it. ``pack_interval``:
    seconds between scheduled packs of the storage, run in the background
    (default one day; 0: never; see ``zodbsession.maintenance``).
    """
    owns_db = db is None
    if owns_db:
        db = open_database(db_uri)
    try:
        ensure_site(db, **settings)
        start_maintenance(db, pack_interval)
        return SessionFactory(db, pkg_id, retries, owns_db=owns_db,
                              retry_timeout=retry_timeout)
    except Exception:
        if owns_db:
            db.close()
        raise


def session_factory_from_settings(settings):
    """A session factory from ``zodbsession.*`` application settings."""
    options = {name[len(SETTINGS_PREFIX):]: value
               for name, value in (settings or {}).items()
               if name.startswith(SETTINGS_PREFIX)}
    pkg_id = options.pop('pkg_id', DEFAULT_PKG_ID).strip()
    for name in OTHER_INCLUDES_SETTINGS:
        options.pop(name, None)
    return session_factory(pkg_id=pkg_id, **parse_settings(options))
