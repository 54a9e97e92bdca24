"""FrozenRegistry: a registry filled once, whose answers are remembered."""
import pytest
import zope.component
from zope.interface.interfaces import ComponentLookupError

from zodbsession import context
from zodbsession import lookup
from zodbsession.clientid import CookieClientIdManager
from zodbsession.interfaces import IClientIdManager
from zodbsession.interfaces import ISessionDataContainer
from zodbsession.lookup import FrozenRegistry
from zodbsession.ram import RAMSessionDataContainer
from zodbsession.testing import TEST_SECRET


def frozen(**named):
    registry = FrozenRegistry(
        'test', bases=(zope.component.getGlobalSiteManager(),))
    unnamed = RAMSessionDataContainer()
    registry.registerUtility(unnamed, ISessionDataContainer)
    for name, container in named.items():
        registry.registerUtility(container, ISessionDataContainer, name)
    return registry, unnamed


def test_a_package_gets_its_named_container_else_the_unnamed_one():
    cart = RAMSessionDataContainer()
    registry, unnamed = frozen(cart=cart)
    assert lookup.container_in(registry, 'cart') is cart
    assert lookup.container_in(registry, 'other') is unnamed
    # Asked again: the same answers (now remembered).
    assert lookup.container_in(registry, 'cart') is cart
    assert lookup.container_in(registry, 'other') is unnamed


def test_the_binding_of_each_package_is_remembered_with_its_container():
    # Whether a package's container is bound to each request (a cookie
    # or RAM container is; a database one is not) is asked once per
    # package.
    from zodbsession import CookieSessionDataContainer
    from zodbsession import PersistentSessionDataContainer
    prefs = CookieSessionDataContainer(secret=TEST_SECRET)
    stored = PersistentSessionDataContainer()
    registry, unnamed = frozen(prefs=prefs, cart=stored)
    for _ in range(2):
        assert lookup.container_binding_in(registry, 'prefs') == (
            prefs, True)
        assert lookup.container_binding_in(registry, 'cart') == (
            stored, False)
        assert lookup.container_binding_in(registry, 'other') == (
            unnamed, True)
    # Any other registry answers the same, asked each time.
    plain = zope.component.globalregistry.BaseGlobalComponents('plain')
    plain.registerUtility(prefs, ISessionDataContainer)
    assert lookup.container_binding_in(plain, 'other') == (prefs, True)


def test_utility_and_a_missing_utility():
    registry, _unnamed = frozen()
    with pytest.raises(ComponentLookupError):
        lookup.utility_in(registry, IClientIdManager)
    assert lookup.utility_in(registry, IClientIdManager, None) is None
    # A missing answer remembered is still refused without a default.
    with pytest.raises(ComponentLookupError):
        lookup.utility_in(registry, IClientIdManager)


def test_answers_stay_right_beyond_what_is_remembered(monkeypatch):
    monkeypatch.setattr(lookup, 'MAX_REMEMBERED', 3)
    cart = RAMSessionDataContainer()
    registry, unnamed = frozen(cart=cart)
    for index in range(10):
        assert lookup.container_in(registry, f'pkg{index}') is unnamed
    assert lookup.container_in(registry, 'cart') is cart


def test_the_same_lookup_serves_any_registry():
    """A registry that is no snapshot (the global one, a persistent
    site's) is asked directly."""
    manager = CookieClientIdManager(secret=TEST_SECRET)
    registry = zope.component.getGlobalSiteManager()
    registry.registerUtility(manager, IClientIdManager)
    try:
        assert context.utility_for(None, IClientIdManager) is manager
    finally:
        registry.unregisterUtility(manager, IClientIdManager)
    assert context.utility_for(None, IClientIdManager, None) is None


def test_cookies_of_a_request_that_is_its_own_cookies():
    from zope.interface import alsoProvides
    from zope.interface import implementer

    from zodbsession.interfaces import IRequestCookies

    @implementer(IRequestCookies)
    class OwnCookies:
        pass

    class Plain:
        pass

    own = OwnCookies()
    assert context.cookies_of(own) is own
    assert context.cookies_of(own) is own          # the class is known now
    marked = Plain()
    alsoProvides(marked, IRequestCookies)         # one instance only
    assert context.cookies_of(marked) is marked
    with pytest.raises(TypeError):                # nothing adapts Plain
        context.cookies_of(Plain())
