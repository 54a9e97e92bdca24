"""Helpers for testing code that uses sessions (and for our own tests).

This package holds what tests need: these helpers, and in its modules
real servers and processes (``zeo``, ``postgres``, ``workers``,
``processes``, ``coldstart``) and shared checks (``checks``).

``setUp``/``tearDown`` give a clean component registry with the adapters
registered; ``SessionTestClient`` plays a browser: it makes requests that
carry the cookies earlier responses set.
"""
import contextlib
import os
import shutil
import tempfile
import threading
import time

import transaction
import webob
import webob.cookies
import ZODB
import ZODB.FileStorage
import ZODB.utils
import zope.component.testing

from zodbsession import clock
from zodbsession.clientid import CookieClientIdManager
from zodbsession.container import PersistentSessionDataContainer
from zodbsession.data import SessionData
from zodbsession.data import SessionPkgData
from zodbsession.adaptation.registration import register_adapters
from zodbsession.adaptation.registration import register_session_utilities
from zodbsession.context import context_of
from zodbsession.adaptation.environ import WSGIRequest
from zodbsession.hosting.sitechanges import change_site

TEST_SECRET = 'test-secret-do-not-use-in-production'


def setUp(test=None):
    """A clean global registry with zodbsession's adapters."""
    transaction.abort()
    clock.reset()
    zope.component.testing.setUp(test)
    register_adapters()


def tearDown(test=None):
    transaction.abort()
    clock.reset()
    zope.component.testing.tearDown(test)


def setUpSessions(test=None, **named_containers):
    """setUp, plus a cookie client id manager and an unnamed container.

    Returns (manager, container).
    """
    setUp(test)
    manager = CookieClientIdManager(secret=TEST_SECRET)
    container = PersistentSessionDataContainer()
    register_session_utilities(manager, container, **named_containers)
    return manager, container


@contextlib.contextmanager
def filestorage_db(directory=None, name='sessions.fs'):
    """A ZODB.DB on a FileStorage in a fresh temporary directory."""
    own_directory = directory is None
    if own_directory:
        directory = tempfile.mkdtemp(prefix='zodbsession-')
    db = ZODB.DB(ZODB.FileStorage.FileStorage(os.path.join(directory, name)))
    try:
        yield db
    finally:
        db.close()
        if own_directory:
            shutil.rmtree(directory, ignore_errors=True)


def last_transaction_records(db):
    """[(oid, 'module.Class')] of the records the last transaction wrote.

    Counts what a request really costs the storage; works on storages
    that support iteration (FileStorage, MappingStorage).
    """
    storage = db.storage
    tid = storage.lastTransaction()
    transactions = storage.iterator(tid, tid)
    try:
        for txn in transactions:
            return [(record.oid,
                     '.'.join(ZODB.utils.get_pickle_metadata(record.data)))
                    for record in txn]
        return []
    finally:
        close = getattr(transactions, 'close', None)
        if close is not None:
            close()


def response_headers(request):
    """[(name, value)] that zodbsession added to the request's response."""
    pending = context_of(request).pending_if_any
    return pending.header_list() if pending else []


class SessionTestClient:
    """A browser's cookie jar over WSGIRequests.

    >>> client = SessionTestClient()
    >>> request = client.request()      # carries the jar's cookies
    >>> client.receive(request)         # keeps the cookies it was sent
    """

    def __init__(self, **environ):
        self.cookies = {}
        self.environ = environ

    def request(self, method='GET', **environ):
        env = dict(self.environ, REQUEST_METHOD=method, SCRIPT_NAME='',
                   PATH_INFO='/')
        env.update(environ)
        if self.cookies:
            env['HTTP_COOKIE'] = '; '.join(
                f'{name}={value}' for name, value in self.cookies.items())
        return WSGIRequest(env)

    def call(self, app, method='GET', **environ):
        """Run the WSGI ``app`` on a request of this browser and keep the
        cookies it sets; returns ``(status, headers, body bytes)``."""
        request = self.request(method, **environ)
        response = {}

        def start_response(status, headers, exc_info=None):
            response.update(status=status, headers=headers)

        result = app(request.environ, start_response)
        try:
            body = b''.join(result)
        finally:
            close = getattr(result, 'close', None)
            if close is not None:
                close()
        self.receive(response['headers'])
        return response['status'], response['headers'], body

    def receive(self, request_or_headers):
        """Take the Set-Cookie headers of a response."""
        headers = request_or_headers
        if isinstance(headers, WSGIRequest):
            headers = response_headers(headers)
        for name, value in headers:
            if name.lower() != 'set-cookie':
                continue
            self._set_cookie(value)

    def _set_cookie(self, header):
        morsel_text = header.split(';', 1)[0]
        name, _, value = morsel_text.partition('=')
        attributes = header.lower()
        if 'max-age=0' in attributes or not value:
            self.cookies.pop(name.strip(), None)
        else:
            self.cookies[name.strip()] = webob.cookies.RequestCookies(
                {'HTTP_COOKIE': morsel_text}).get(name.strip(), value)


def add_session(container, client_id, **items):
    """Store a new session for ``client_id`` in ``container``, holding
    ``items`` in package ``'pkg'``; returns its SessionData."""
    data = SessionData()
    data['pkg'] = SessionPkgData()
    data['pkg'].update(items)
    container[client_id] = data
    return data


def run_in_threads(targets, timeout):
    """Call each of ``targets`` in a thread of its own, all at once.

    Waits at most ``timeout`` seconds in all; raises TimeoutError if a
    thread is still running then, else the first error a target raised.
    """
    errors = []

    def run(target):
        try:
            target()
        except BaseException as exc:   # reported to the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(target,), daemon=True)
               for target in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f'threads did not finish within {timeout} s')
    if errors:
        raise errors[0]


class CompletedTransactions:
    """The status of every transaction of the thread's manager that
    completes inside the ``with`` block (``'Committed'``, or the status
    of one that aborted)::

        with CompletedTransactions() as completed:
            app.get('/')
        assert completed.statuses == []     # the request committed nothing
    """

    def __init__(self):
        self.statuses = []

    def newTransaction(self, txn):
        pass

    def beforeCompletion(self, txn):
        pass

    def afterCompletion(self, txn):
        self.statuses.append(txn.status)

    def __enter__(self):
        transaction.manager.registerSynch(self)
        return self

    def __exit__(self, *exc_info):
        transaction.manager.unregisterSynch(self)


class StorageMeter:
    """What a database's storage gained since the meter was made.

    >>> meter = StorageMeter(db)
    >>> ...                              # requests
    >>> meter.bytes_added, meter.committed
    (0, False)
    """

    def __init__(self, db):
        self.storage = db.storage
        self.size = self.storage.getSize()
        self.last_transaction = self.storage.lastTransaction()

    @property
    def bytes_added(self):
        """Bytes the storage grew by (FileStorage: its file's size)."""
        return self.storage.getSize() - self.size

    @property
    def committed(self):
        """Whether any transaction was committed to the storage since."""
        return self.storage.lastTransaction() != self.last_transaction


def set_cookie_headers(headers):
    """The values of the Set-Cookie headers in ``headers``, a list of
    (name, value) pairs or anything with a ``headerlist`` (a WebOb or
    WebTest response)."""
    headers = getattr(headers, 'headerlist', headers)
    return [value for name, value in headers if name.lower() == 'set-cookie']


def get_without_cookies(app, path='/', count=1):
    """GET ``path`` from the WSGI ``app`` ``count`` times, each as a new
    client (no cookie); returns the responses (WebOb)."""
    return [webob.Request.blank(path).get_response(app)
            for _ in range(count)]


def use_containers(db, **containers):
    """Keep each package's data in its container (``**{pkg_id:
    container}``), in the session site of ``db``."""
    def register(site):
        for pkg_id, container in containers.items():
            site.register_container(pkg_id, container)
    change_site(db, register)


# How a Pyramid application may run its transactions: zodbsession's own
# tween; pyramid_tm (with pyramid_retry) on the thread's transaction
# manager; pyramid_tm with an explicit manager per request.
PYRAMID_TRANSACTIONS = ('own', 'pyramid_tm', 'pyramid_tm_explicit')


def pyramid_app(db, views, transactions='own', **session_settings):
    """A Pyramid WSGI application with zodbsession's session factory on
    ``db``: ``views`` maps paths to views rendered as JSON;
    ``transactions`` is one of PYRAMID_TRANSACTIONS."""
    # Pyramid is an optional dependency: imported only when asked for.
    from pyramid.config import Configurator
    from zodbsession.pyramid import session_factory

    if transactions not in PYRAMID_TRANSACTIONS:
        raise ValueError(
            f'transactions={transactions!r}: one of'
            f' {", ".join(PYRAMID_TRANSACTIONS)}')
    settings = {}
    if transactions == 'pyramid_tm_explicit':
        settings['tm.manager_hook'] = 'pyramid_tm.explicit_manager'
    config = Configurator(settings=settings)
    if transactions != 'own':
        config.include('pyramid_tm')
        config.include('pyramid_retry')
    config.include('zodbsession.pyramid')
    session_settings.setdefault('secret', TEST_SECRET)
    config.set_session_factory(session_factory(db=db, **session_settings))
    for path, view in views.items():
        config.add_route(path, path)
        config.add_view(view, route_name=path, renderer='json')
    return config.make_wsgi_app()
