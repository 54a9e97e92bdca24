"""The persistent session site in the database root."""
import threading

import pytest
import webtest
import ZODB
import ZODB.FileStorage
from zope.interface.interfaces import ComponentLookupError

from zodbsession import CookieClientIdManager
from zodbsession import ISession
from zodbsession import ISessionDataContainer
from zodbsession import PersistentSessionDataContainer
from zodbsession import RAMSessionDataContainer
from zodbsession.site import ROOT_KEY
from zodbsession.site import SessionSite
from zodbsession.site import change_site
from zodbsession.site import ensure_site
from zodbsession.site import site_of
from zodbsession.wsgi import REQUEST_KEY
from zodbsession.wsgi import SessionMiddleware


def open_db(path):
    return ZODB.DB(ZODB.FileStorage.FileStorage(str(path)))


@pytest.fixture
def path(registry, tmp_path):
    return tmp_path / 'sessions.fs'


def read_site(db, function):
    with db.transaction() as connection:
        return function(site_of(connection))


def test_first_use_bootstraps_the_site(path):
    db = open_db(path)
    try:
        with db.transaction() as connection:
            assert ROOT_KEY not in connection.root()
        ensure_site(db)
        with db.transaction() as connection:
            site = site_of(connection)
            assert isinstance(site, SessionSite)
            assert isinstance(site.container, PersistentSessionDataContainer)
            manager = site.client_id_manager
            assert isinstance(manager, CookieClientIdManager)
            [secret] = manager.secret
            assert len(secret) >= 32
            assert site.containers() == {'': site.container}
    finally:
        db.close()

    # Every later opening of the database shares the generated secret.
    db = open_db(path)
    try:
        ensure_site(db)
        assert read_site(db, lambda site: site.client_id_manager.secret) == (
            secret,)
    finally:
        db.close()


def test_a_site_without_changes_writes_nothing(path):
    db = open_db(path)
    try:
        ensure_site(db, timeout=100)
        before = db.storage.lastTransaction()
        ensure_site(db)
        ensure_site(db, timeout=100)
        assert db.storage.lastTransaction() == before
        ensure_site(db, timeout=200)
        assert db.storage.lastTransaction() != before
        assert read_site(db, lambda site: site.container.timeout) == 200
    finally:
        db.close()


def test_secrets_set_as_text_or_list(path):
    db = open_db(path)
    try:
        ensure_site(db, secret='a-secret-that-is-long-enough')
        ensure_site(db, secret=['the-new-secret-signs-now',
                                'a-secret-that-is-long-enough'])
        assert read_site(db, lambda site: site.client_id_manager.secret) == (
            'the-new-secret-signs-now', 'a-secret-that-is-long-enough')
    finally:
        db.close()


def test_unknown_settings_name_the_known_ones(path):
    db = open_db(path)
    try:
        with pytest.raises(TypeError, match="'colour'.*namespace"):
            ensure_site(db, colour='blue')
    finally:
        db.close()


def cart_app(db):
    def app(environ, start_response):
        session = ISession(environ[REQUEST_KEY])
        session['shop.cart']['items'] = ['book']
        session['shop.user']['name'] = 'alice'
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'ok']
    return webtest.TestApp(SessionMiddleware(app, db=db))


def test_a_registration_survives_reopening(path):
    db = open_db(path)
    try:
        ensure_site(db)
        change_site(db, lambda site: site.register_container(
            'shop.cart', RAMSessionDataContainer(timeout=60)))
    finally:
        db.close()

    db = open_db(path)
    try:
        app = cart_app(db)
        app.get('/')
        client_id = app.cookies['zodbsession']

        def where_is_the_data(site):
            ram = site.containers()['shop.cart']
            assert isinstance(ram, RAMSessionDataContainer)
            assert ram.timeout == 60
            in_ram = ram.get(client_id)
            in_zodb = site.container.get(client_id)
            return (sorted(in_ram) if in_ram is not None else None,
                    sorted(in_zodb) if in_zodb is not None else None)

        # The cart went to RAM, the user's package to the database.
        assert read_site(db, where_is_the_data) == (
            ['shop.cart'], ['shop.user'])
    finally:
        db.close()


def test_a_container_replaced_elsewhere_is_used_at_once(path):
    # Requests reach a database container by the object id their process
    # snapshot recorded. Another process (here: a change this process's
    # snapshot has not heard of) that registers a new container under
    # the same name must not leave requests writing to the old one.
    db = open_db(path)
    try:
        app = cart_app(db)
        app.get('/')
        old_client = app.cookies['zodbsession']

        def replace_unnamed_container(connection):
            site = site_of(connection)
            site.registry.registerUtility(
                PersistentSessionDataContainer(), ISessionDataContainer)
        with db.transaction() as connection:
            replace_unnamed_container(connection)

        app.reset()
        app.get('/')
        new_client = app.cookies['zodbsession']
        assert new_client != old_client

        def where(site):
            return (site.container.get(new_client) is not None,
                    site.container.get(old_client) is not None)
        # The new container holds the new session; the old client's
        # session went with the old container.
        assert read_site(db, where) == (True, False)
    finally:
        db.close()


def test_unregistering_a_container(path):
    db = open_db(path)
    try:
        ensure_site(db)
        change_site(db, lambda site: site.register_container(
            'shop.cart', RAMSessionDataContainer()))
        change_site(db, lambda site: site.unregister_container('shop.cart'))
        assert read_site(db, lambda site: list(site.containers())) == ['']
        with pytest.raises(ComponentLookupError, match='shop.cart'):
            change_site(db, lambda site: site.unregister_container(
                'shop.cart'))
    finally:
        db.close()


def test_concurrent_bootstraps_end_with_one_site(path):
    threads_count = 6
    for round_number in range(5):
        round_path = path.with_name(f'round{round_number}.fs')
        db = open_db(round_path)
        start = threading.Barrier(threads_count, timeout=10)
        errors = []

        def bootstrap():
            try:
                start.wait()
                ensure_site(db, timeout=300)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=bootstrap, daemon=True)
                   for _ in range(threads_count)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert not any(thread.is_alive() for thread in threads)
            assert errors == []
            # Exactly one SessionSite was ever committed.
            sites = {record.oid
                     for txn in db.storage.iterator()
                     for record in txn
                     if b'SessionSite' in record.data[:100]}
            assert len(sites) == 1
            assert read_site(db, lambda site: site.container.timeout) == 300
        finally:
            db.close()


def test_two_cookies_of_one_name_are_refused(path):
    # They overwrote each other in the browser: every request a new
    # session, and no error anywhere.
    from zodbsession import CookieSessionDataContainer
    from zodbsession.validated import InvalidSetting
    db = open_db(path)
    try:
        ensure_site(db, namespace='sid')
        with pytest.raises(ValueError, match="container for 'prefs' has"
                                             " the client id cookie's name,"
                                             " 'sid'"):
            change_site(db, lambda site: site.register_container(
                'prefs', CookieSessionDataContainer(cookie_name='sid')))
        prefs = CookieSessionDataContainer(cookie_name='prefs_data')
        change_site(db, lambda site: site.register_container('prefs', prefs))
        with pytest.raises(ValueError, match="for 'cart' has the cookie_name"
                                             " 'prefs_data' of the one for"
                                             " 'prefs'"):
            change_site(db, lambda site: site.register_container(
                'cart', CookieSessionDataContainer(cookie_name='prefs_data')))
        with pytest.raises(InvalidSetting, match="'namespace': 'prefs_data'"
                                                 ".*container for 'prefs'"):
            ensure_site(db, namespace='prefs_data')

        def share(site):
            # One container for two packages: one cookie, as meant.
            site.register_container('cart', site.containers()['prefs'])
            # And a package's container replaced by one of the same name.
            site.register_container('prefs', CookieSessionDataContainer(
                cookie_name='prefs_data'))
        with pytest.raises(ValueError, match="for 'prefs' has the"
                                             " cookie_name 'prefs_data' of"
                                             " the one for 'cart'"):
            change_site(db, share)
        change_site(db, lambda site: site.register_container(
            'cart', site.containers()['prefs']))
        assert read_site(db, lambda site: sorted(site.containers())) == [
            '', 'cart', 'prefs']
        assert read_site(db, lambda site: site.client_id_manager.namespace
                         ) == 'sid'
    finally:
        db.close()
