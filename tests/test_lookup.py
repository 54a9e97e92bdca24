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
