"""Beaker's session middleware, on zodbsession.

``from zodbsession.beaker import SessionMiddleware`` replaces
``from beaker.middleware import SessionMiddleware``, with Beaker's
configuration (see ``zodbsession.beaker.config``). The session is
``environ['beaker.session']``, Beaker's dict-like session with its save
semantics, and its data is one zodbsession package (``beaker.session``):
it gets zodbsession's transactions, expiry and per-key merge. Nothing of
Beaker is imported.

The application runs inside zodbsession's WSGI ``SessionMiddleware``:
one transaction per request, retried on a conflict, a 503 when retries
run out or the storage is down, cookies sent only if it committed.
"""
from zodbsession.hosting import wsgi
from zodbsession.beaker.config import BeakerConfig
from zodbsession.beaker.config import beaker_options
from zodbsession.beaker.session import BeakerSession
from zodbsession.hosting.db import shared_database
from zodbsession.hosting.settings import parse_settings
from zodbsession.hosting.sitechanges import ensure_container

__all__ = ['SessionMiddleware', 'BeakerSession']


class SessionMiddleware:
    """Beaker's ``SessionMiddleware(wrap_app, config=None,
    environ_key='beaker.session', **kwargs)``.

    ``config`` and ``kwargs`` hold Beaker's ``session.*`` (or
    ``beaker.session.*``) options; ``db`` is an open ``ZODB.DB`` to use
    instead of the one the options name (``session.db_uri``, or the type's
    own: ``file://{data_dir}/sessions.fs`` for file and dbm, an in-process
    database for memory and cookie).
    """

    def __init__(self, wrap_app, config=None, environ_key=None, db=None,
                 **kwargs):
        options = beaker_options(config, kwargs)
        if environ_key is not None:
            options['environ_key'] = environ_key
        self.config = BeakerConfig(options)
        self.wrap_app = wrap_app
        self.environ_key = self.config.environ_key
        self.db = db if db is not None else shared_database(
            self.config.db_uri)
        hosting = parse_settings(self.config.hosting)
        self._hosted = wsgi.SessionMiddleware(
            self._serve, db=self.db, **hosting, **self.config.settings)
        if self.config.container is not None:
            ensure_container(self.db, self.config.pkg_id,
                             *self.config.container)

    def __call__(self, environ, start_response):
        return self._hosted(environ, start_response)

    def _serve(self, environ, start_response):
        """One attempt of the request, inside the hosting's transaction:
        the application's whole answer, then the session's saving."""
        session = BeakerSession(environ[wsgi.REQUEST_KEY],
                                self.config.pkg_id, self.config.auto)
        environ[self.environ_key] = session
        body = wsgi.collected(self.wrap_app(environ, start_response))
        session.finish()
        # Written: the environ need not hold it any more (it refers to
        # the request, which refers to the environ: a cycle the garbage
        # collector would have to find).
        if environ.get(self.environ_key) is session:
            del environ[self.environ_key]
        return body
