"""FrozenRegistry: a registry filled once, whose answers are remembered."""
import pytest
import zope.component
from zope.interface.interfaces import ComponentLookupError

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
    assert registry.container('cart') is cart
    assert registry.container('other') is unnamed
    # Asked again: the same answers (now remembered).
    assert registry.container('cart') is cart
    assert registry.container('other') is unnamed


def test_utility_and_a_missing_utility():
    registry, _unnamed = frozen()
    with pytest.raises(ComponentLookupError):
        registry.utility(IClientIdManager)
    manager = CookieClientIdManager(secret=TEST_SECRET)
    registry.registerUtility(manager, IClientIdManager)
    assert registry.utility(IClientIdManager) is manager


def test_what_it_remembers_is_bounded(monkeypatch):
    monkeypatch.setattr(lookup, 'MAX_REMEMBERED', 3)
    registry, unnamed = frozen()
    for index in range(10):
        assert registry.container(f'pkg{index}') is unnamed
    assert len(registry._found) == 3


def test_query_utility_remembers_a_missing_utility_as_none():
    registry, _unnamed = frozen()
    assert registry.query_utility(IClientIdManager) is None
    assert registry.query_utility(IClientIdManager) is None
    assert registry._found[IClientIdManager] is None
    # utility() still refuses what is missing.
    with pytest.raises(ComponentLookupError):
        registry.utility(IClientIdManager)


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
    assert lookup.cookies_of(own) is own
    assert lookup.cookies_of(own) is own          # the class is known now
    assert OwnCookies in lookup._COOKIE_CLASSES
    marked = Plain()
    alsoProvides(marked, IRequestCookies)         # one instance only
    assert lookup.cookies_of(marked) is marked
    assert Plain not in lookup._COOKIE_CLASSES
    with pytest.raises(TypeError):                # nothing adapts Plain
        lookup.cookies_of(Plain())
