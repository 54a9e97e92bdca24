"""ISession(request): package namespaces, container choice, laziness."""
import pytest
import transaction
import zope.component
from zope.interface.verify import verifyObject

from zodbsession import IClientId
from zodbsession import ISession
from zodbsession import ISessionDataContainer
from zodbsession import ISessionPkgData
from zodbsession import PersistentSessionDataContainer
from zodbsession import RAMSessionDataContainer
from zodbsession import Session
from zodbsession import SessionData
from zodbsession import SessionPkgData
from zodbsession.testing import SessionTestClient
from zodbsession.testing import response_headers


def test_verify_object(sessions):
    session = ISession(SessionTestClient().request())
    assert isinstance(session, Session)
    assert verifyObject(ISession, session)


def test_getitem_creates_package_data(sessions):
    manager, container = sessions
    request = SessionTestClient().request()
    data = ISession(request)['shop.cart']
    assert verifyObject(ISessionPkgData, data)
    assert len(data) == 0
    data['items'] = ['apple']
    client_id = IClientId(request)
    assert container[client_id]['shop.cart']['items'] == ['apple']
    assert any(name == 'Set-Cookie' for name, _ in response_headers(request))
    # A second lookup in the same request finds the same data.
    assert ISession(request)['shop.cart']['items'] == ['apple']


def test_get_never_creates_anything(sessions):
    manager, container = sessions
    request = SessionTestClient().request()
    session = ISession(request)
    assert session.get('shop.cart') is None
    assert session.get('shop.cart', 'default') == 'default'
    assert response_headers(request) == []
    assert container.count() == 0


def test_an_id_issued_by_the_manager_directly_is_the_sessions_id(sessions):
    # zope.session code may ask the manager itself for the client's id
    # (getUtility(IClientIdManager).getClientId(request)) after the
    # session found the client had none: the session then uses that id,
    # and the response carries that one cookie.
    manager, container = sessions
    client = SessionTestClient()
    request = client.request()
    session = ISession(request)
    assert session.get('shop.cart') is None         # no id sent
    issued = manager.getClientId(request)
    container[issued] = SessionData()
    container[issued]['shop.prefs'] = SessionPkgData()
    container[issued]['shop.prefs']['theme'] = 'dark'
    assert session.get('shop.prefs')['theme'] == 'dark'
    session['shop.cart']['items'] = ['apple']
    assert IClientId(request) == issued
    assert container[issued]['shop.cart']['items'] == ['apple']
    cookies = [value for name, value in response_headers(request)
               if name == 'Set-Cookie']
    assert len(cookies) == 1 and issued in cookies[0]


def test_get_for_a_known_client_without_that_package(sessions):
    manager, container = sessions
    client = SessionTestClient()
    request = client.request()
    ISession(request)['auth']['user'] = 'bob'
    client.receive(request)
    second = client.request()
    assert ISession(second).get('shop.cart') is None
    assert ISession(second).get('auth')['user'] == 'bob'
    assert list(container[IClientId(second)]) == ['auth']
    assert response_headers(second) == []


def test_get_with_a_forged_cookie_creates_nothing(sessions):
    manager, container = sessions
    client = SessionTestClient()
    client.cookies[manager.namespace] = 'forged.cookie'
    request = client.request()
    assert ISession(request).get('auth') is None
    assert response_headers(request) == [] and container.count() == 0


def test_a_returning_client_sees_its_data(sessions):
    client = SessionTestClient()
    first = client.request()
    ISession(first)['shop.cart']['items'] = ['apple']
    client.receive(first)
    assert ISession(client.request())['shop.cart']['items'] == ['apple']
    # Somebody else does not.
    stranger = SessionTestClient().request()
    assert ISession(stranger).get('shop.cart') is None
    assert 'items' not in ISession(stranger)['shop.cart']


def test_named_container_wins_and_unnamed_is_the_fallback(sessions):
    manager, unnamed = sessions
    cart_container = RAMSessionDataContainer()
    zope.component.provideUtility(
        cart_container, ISessionDataContainer, name='shop.cart')
    request = SessionTestClient().request()
    ISession(request)['shop.cart']['items'] = ['apple']
    ISession(request)['auth']['user'] = 'bob'
    client_id = IClientId(request)
    assert 'shop.cart' in cart_container[client_id]
    assert 'auth' not in cart_container[client_id]
    assert list(unnamed[client_id]) == ['auth']
    transaction.abort()


def test_packages_do_not_see_each_others_keys(sessions):
    request = SessionTestClient().request()
    session = ISession(request)
    session['one']['key'] = 1
    session['two']['key'] = 2
    assert session['one']['key'] == 1 and session['two']['key'] == 2
    del session['one']['key']
    assert 'key' not in session['one'] and session['two']['key'] == 2
    session['three']
    assert 'key' not in session['three']


def test_iteration_and_in_are_refused_without_looping(sessions):
    session = ISession(SessionTestClient().request())
    with pytest.raises(NotImplementedError):
        iter(session)
    with pytest.raises(NotImplementedError):
        list(session)
    with pytest.raises(TypeError, match="'in'"):
        'shop.cart' in session


def test_no_container_is_a_clear_lookup_error(registry):
    from zodbsession import CookieClientIdManager
    from zodbsession import IClientIdManager
    from zodbsession.testing import TEST_SECRET
    zope.component.provideUtility(
        CookieClientIdManager(secret=TEST_SECRET), IClientIdManager)
    with pytest.raises(zope.component.ComponentLookupError):
        ISession(SessionTestClient().request())['pkg']


def test_sessions_in_a_filestorage(db, registry):
    """Two requests of one client, each with its own connection."""
    from zodbsession import CookieClientIdManager
    from zodbsession import register_session_utilities
    from zodbsession.testing import TEST_SECRET
    manager = CookieClientIdManager(secret=TEST_SECRET)
    connection = db.open()
    connection.root()['sessions'] = PersistentSessionDataContainer()
    transaction.commit()
    register_session_utilities(manager, connection.root()['sessions'])

    client = SessionTestClient()
    first = client.request()
    ISession(first)['shop.cart']['items'] = ['apple']
    transaction.commit()
    client.receive(first)
    connection.close()

    # A read-only request in a new connection writes nothing.
    connection = db.open()
    register_session_utilities(manager, connection.root()['sessions'])
    last = db.storage.lastTransaction()
    second = client.request()
    assert ISession(second).get('shop.cart')['items'] == ['apple']
    assert ISession(second)['shop.cart']['items'] == ['apple']
    transaction.commit()
    assert db.storage.lastTransaction() == last
    assert response_headers(second) == []
    connection.close()


# -- compatibility with zope.session 6.0 ------------------------------------

ZOPE_SESSION_NAMES = {
    'zope.session.interfaces': [
        'IClientId', 'IClientIdManager', 'ISession', 'ISessionDataContainer',
        'ISessionData', 'ISessionPkgData'],
    'zope.session.session': [
        'ClientId', 'Session', 'SessionData', 'SessionPkgData',
        'PersistentSessionDataContainer', 'RAMSessionDataContainer'],
    'zope.session.http': [
        'CookieClientIdManager', 'ICookieClientIdManager',
        'MissingClientIdException'],
}


def _zope_session_objects():
    import importlib
    for module_name, names in ZOPE_SESSION_NAMES.items():
        module = importlib.import_module(module_name)
        for name in names:
            yield name, getattr(module, name)


@pytest.mark.parametrize('name, original', list(_zope_session_objects()))
def test_zope_session_names_are_importable_and_compatible(name, original):
    import zodbsession
    from zope.interface.interface import InterfaceClass
    ours = getattr(zodbsession, name)
    assert name in zodbsession.__all__
    if isinstance(original, InterfaceClass):
        assert isinstance(ours, InterfaceClass)
        missing = set(original.names(all=True)) - set(ours.names(all=True))
        assert not missing, f'{name} lacks {sorted(missing)}'
    else:
        # What the class adds to its generic bases (the mapping API, which
        # our containers deliberately lack, Location and Persistent).
        from collections import UserDict

        import persistent
        import zope.location
        generic = set(dir(UserDict)) | set(dir(zope.location.Location)) | \
            set(dir(persistent.Persistent)) | set(dir(str))
        # RAMSessionDataContainer.data is zope.session's thread-local store.
        public = {attr for attr in dir(original)
                  if not attr.startswith('_') and attr not in generic} - {
                      'data'}
        missing = {attr for attr in public if not hasattr(ours, attr)}
        assert not missing, f'{name} lacks {sorted(missing)}'


def test_a_manager_with_only_zope_sessions_interface_still_works(registry):
    """A zope.session user's own IClientIdManager (getClientId only):
    sessions work, every request gets the id it hands out, and what
    needs more (invalidate) says what it needs."""
    from zope.interface import implementer
    from zodbsession import IClientIdManager
    from zodbsession import PersistentSessionDataContainer
    from zodbsession import register_session_utilities
    from zodbsession.testing import SessionTestClient

    @implementer(IClientIdManager)
    class FixedIds:
        def getClientId(self, request):
            return 'the-one-client'

    container = PersistentSessionDataContainer()
    register_session_utilities(FixedIds(), container)
    request = SessionTestClient().request()
    session = ISession(request)
    session['pkg']['x'] = 1
    assert session.get('pkg')['x'] == 1
    assert container['the-one-client']['pkg']['x'] == 1
    with pytest.raises(TypeError, match='ISessionClientIdManager'):
        session.invalidate()
