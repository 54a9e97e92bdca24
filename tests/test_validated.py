"""Setting: validated when assigned, stored like a plain attribute."""
import pytest
import transaction
import zope.schema

from zodbsession.clientid import CookieClientIdManager
from zodbsession.container import PersistentSessionDataContainer
from zodbsession.validated import Setting


class Thing:
    size = Setting(zope.schema.Int(__name__='size', min=1))

    def __init__(self, size):
        self.size = size


def test_a_valid_value_is_kept_in_the_instance():
    thing = Thing(3)
    assert thing.size == 3
    assert vars(thing) == {'size': 3}
    thing.size = 4
    assert thing.size == 4


@pytest.mark.parametrize('bad', [0, 'three', None])
def test_an_invalid_value_is_refused_and_the_old_one_kept(bad):
    thing = Thing(3)
    with pytest.raises(zope.schema.ValidationError):
        thing.size = bad
    assert thing.size == 3


def test_a_change_to_a_persistent_object_is_committed(db):
    with db.transaction() as connection:
        connection.root()['c'] = PersistentSessionDataContainer()
        connection.root()['m'] = CookieClientIdManager(secret='s' * 32)
    with db.transaction() as connection:
        connection.root()['c'].timeout = 77
        connection.root()['m'].namespace = 'other'
    transaction.abort()
    db.cacheMinimize()
    with db.transaction() as connection:
        assert connection.root()['c'].timeout == 77
        assert connection.root()['m'].namespace == 'other'
