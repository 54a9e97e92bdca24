"""SessionData and SessionPkgData: mapping, persistence, concurrency."""
import pickle
import sys
import threading

import pytest
import transaction
from persistent.list import PersistentList
from ZODB.POSException import ConflictError
from zope.interface.verify import verifyObject

from zodbsession import ISessionData
from zodbsession import ISessionPkgData
from zodbsession import SessionData
from zodbsession import SessionPkgData
from zodbsession.testing import last_transaction_records


def open_connection(db):
    """(transaction manager, root) of a new connection with its own manager."""
    manager = transaction.TransactionManager()
    return manager, db.open(manager).root()


def stored_session(db, **packages):
    """Commit a SessionData with ``packages`` ({pkg_id: {key: value}})."""
    manager, root = open_connection(db)
    data = SessionData()
    data.setLastAccessTime(100)
    for pkg_id, items in packages.items():
        pkg = SessionPkgData()
        pkg.update(items)
        data[pkg_id] = pkg
    root['session'] = data
    manager.commit()
    root._p_jar.close()
    db.cacheMinimize()      # later connections load what was stored


def fresh(db):
    """The committed SessionData, as a new connection sees it."""
    manager, root = open_connection(db)
    return root['session']


# -- the mapping ----------------------------------------------------------

def test_verify_objects():
    data = SessionData()
    data['pkg'] = SessionPkgData()
    assert verifyObject(ISessionData, data)
    assert verifyObject(ISessionPkgData, SessionPkgData())
    assert verifyObject(ISessionPkgData, data['pkg'])


def test_pkg_data_mapping():
    pkg = SessionPkgData()
    pkg['a'] = 1
    pkg['b'] = [2]
    assert pkg['a'] == 1 and pkg.get('b') == [2] and pkg.get('c') is None
    assert sorted(pkg) == ['a', 'b'] and len(pkg) == 2
    assert 'a' in pkg and 'c' not in pkg
    assert sorted(pkg.items()) == [('a', 1), ('b', [2])]
    del pkg['a']
    assert list(pkg.keys()) == ['b']
    with pytest.raises(KeyError):
        pkg['a']
    with pytest.raises(KeyError):
        del pkg['a']
    assert pkg.setdefault('c', 3) == 3 and pkg.pop('c') == 3


def test_session_data_maps_package_ids_to_views():
    data = SessionData()
    with pytest.raises(KeyError):
        data['pkg']
    assert data.get('pkg') is None and 'pkg' not in data and len(data) == 0
    pkg = SessionPkgData()
    pkg['a'] = 1
    data['pkg'] = pkg
    # The adopted object and every later lookup see the same data.
    pkg['b'] = 2
    assert dict(data['pkg']) == {'a': 1, 'b': 2}
    data['pkg']['c'] = 3
    assert dict(pkg) == {'a': 1, 'b': 2, 'c': 3}
    assert list(data) == ['pkg'] and 'pkg' in data
    del data['pkg']
    assert 'pkg' not in data and len(data) == 0


def test_last_access_time():
    data = SessionData()
    assert data.getLastAccessTime() == 0 == data.lastAccessTime
    data.setLastAccessTime(1234.9)
    assert data.getLastAccessTime() == 1234
    data.lastAccessTime = 99
    assert data.getLastAccessTime() == 99


# -- persistence ----------------------------------------------------------

def test_values_survive_a_commit_and_a_new_connection(db):
    stored_session(db, cart={'items': ['apple'], 'n': 1}, auth={'u': 'bob'})
    data = fresh(db)
    assert data.getLastAccessTime() == 100
    assert sorted(data) == ['auth', 'cart']
    assert dict(data['cart']) == {'items': ['apple'], 'n': 1}
    assert data['auth']['u'] == 'bob'


def test_changes_and_deletes_persist(db):
    stored_session(db, cart={'a': 1, 'b': 2}, gone={'x': 1})
    manager, root = open_connection(db)
    data = root['session']
    data['cart']['a'] = 10
    del data['cart']['b']
    del data['gone']
    manager.commit()
    again = fresh(db)
    assert dict(again['cart']) == {'a': 10} and 'gone' not in again


def test_in_place_mutation_is_kept_without_changed(db):
    stored_session(db, cart={'items': [1]})
    manager, root = open_connection(db)
    root['session']['cart']['items'].append(2)
    manager.commit()
    db.cacheMinimize()
    assert fresh(db)['cart']['items'] == [1, 2]

    # changed() still works, and stores what was mutated.
    manager, root = open_connection(db)
    pkg = root['session']['cart']
    pkg['items'].append(3)
    pkg.changed()
    manager.commit()
    db.cacheMinimize()
    assert fresh(db)['cart']['items'] == [1, 2, 3]


def test_reading_writes_nothing(db):
    stored_session(db, cart={'items': [1]})
    before = db.storage.lastTransaction()
    manager, root = open_connection(db)
    assert root['session']['cart']['items'] == [1]
    manager.commit()
    assert db.storage.lastTransaction() == before


def test_session_is_one_record(db):
    stored_session(db, a={'x': [1, 2]}, b={'y': {'z': 1}})
    manager, root = open_connection(db)
    data = root['session']
    data['a']['x'] = 'changed'
    manager.commit()
    assert last_transaction_records(db) == [
        (data._p_oid, 'zodbsession.data.SessionData')]


def test_persistent_value_is_stored_as_a_reference(db):
    manager, root = open_connection(db)
    data = root['session'] = SessionData()
    data['pkg'] = SessionPkgData()
    shared = root['shared'] = PersistentList([1])
    data['pkg']['list'] = shared
    manager.commit()
    assert shared._p_oid is not None
    assert shared._p_oid != data._p_oid

    # Mutating the list writes the list, not the session.
    shared.append(2)
    manager.commit()
    assert last_transaction_records(db) == [
        (shared._p_oid, 'persistent.list.PersistentList')]

    manager2, root2 = open_connection(db)
    loaded = root2['session']['pkg']['list']
    assert loaded == [1, 2]
    assert loaded is root2['shared']    # the same object, not a copy


# -- unpicklable values ---------------------------------------------------

@pytest.mark.parametrize('value, type_name, error', [
    (lambda: None, 'function', pickle.PicklingError),
    (threading.Lock(), 'lock', TypeError),
])
def test_unpicklable_value_fails_at_commit_naming_it(
        db, caplog, value, type_name, error):
    stored_session(db, cart={'items': ['apple']})
    manager, root = open_connection(db)
    data = root['session']
    data['cart']['items'] = ['pear']
    data['cart']['bad key'] = value
    with pytest.raises(error) as info:
        manager.commit()
    # The pickler's own exception and message, as zope.session has it;
    # the package and key are named beside it, not in place of it.
    assert type(info.value) is type(pickler_error(value))
    assert str(info.value) == str(pickler_error(value))
    [record] = [r for r in caplog.records if r.name == 'zodbsession.values']
    for text in ("'cart'", "'bad key'", type_name):
        assert text in record.getMessage()
    if sys.version_info >= (3, 11):
        [note] = info.value.__notes__
        assert "'cart'['bad key']" in note and type_name in note
    manager.abort()
    again = fresh(db)
    assert dict(again['cart']) == {'items': ['apple']}


class _UnpicklableKey:
    def __reduce__(self):
        raise RuntimeError('this key cannot be pickled')

    def __hash__(self):
        return 1

    def __eq__(self, other):
        return isinstance(other, _UnpicklableKey)


@pytest.mark.parametrize('key, type_name, error', [
    (_UnpicklableKey(), '_UnpicklableKey', RuntimeError),
    (threading.Lock(), 'lock', TypeError),
])
def test_unpicklable_key_fails_at_commit_naming_it(
        db, caplog, key, type_name, error):
    # The key is pickled with the record: the commit failed naming
    # neither the package nor the key.
    stored_session(db, cart={'items': ['apple']})
    manager, root = open_connection(db)
    data = root['session']
    data['cart']['items'] = ['pear']
    data['cart'][key] = 'value'
    with pytest.raises(error) as info:
        manager.commit()
    assert type(info.value) is type(pickler_error(key))
    [record] = [r for r in caplog.records if r.name == 'zodbsession.values']
    for text in ("'cart'", 'its key', type_name):
        assert text in record.getMessage()
    if sys.version_info >= (3, 11):
        [note] = info.value.__notes__
        assert "'cart'[" in note and type_name in note
    manager.abort()
    assert dict(fresh(db)['cart']) == {'items': ['apple']}


def pickler_error(value):
    try:
        pickle.dumps(value)
    except Exception as exc:
        return exc
    raise AssertionError(f'{value!r} pickles')


def test_unpicklable_value_inside_a_container_is_named(db, caplog):
    manager, root = open_connection(db)
    data = root['session'] = SessionData()
    data['p'] = SessionPkgData()
    data['p']['k'] = {'nested': [threading.Lock()]}
    with pytest.raises(TypeError, match="cannot pickle '_thread.lock'"):
        manager.commit()
    assert any("'p'['k']" in r.getMessage() and 'dict' in r.getMessage()
               for r in caplog.records)
    manager.abort()
    assert 'session' not in open_connection(db)[1]


# -- concurrency on a real FileStorage ------------------------------------

def two_views(db):
    (m1, r1), (m2, r2) = open_connection(db), open_connection(db)
    return (m1, r1['session']), (m2, r2['session'])


def test_different_keys_of_one_package_both_commit(db):
    stored_session(db, cart={'a': 0, 'b': 0})
    (m1, s1), (m2, s2) = two_views(db)
    s1['cart']['a'] = 1
    s2['cart']['b'] = 2
    s2['cart']['new'] = 'x'
    m1.commit()
    m2.commit()                  # resolved, no ConflictError
    assert dict(fresh(db)['cart']) == {'a': 1, 'b': 2, 'new': 'x'}


def test_different_packages_added_to_one_session_both_commit(db):
    stored_session(db, existing={'k': 0})
    (m1, s1), (m2, s2) = two_views(db)
    s1['cart'] = SessionPkgData()
    s1['cart']['items'] = [1]
    s2['auth'] = SessionPkgData()
    s2['auth']['user'] = 'bob'
    m1.commit()
    m2.commit()
    data = fresh(db)
    assert sorted(data) == ['auth', 'cart', 'existing']
    assert data['cart']['items'] == [1] and data['auth']['user'] == 'bob'


def test_same_key_changed_by_both_conflicts(db):
    stored_session(db, cart={'count': 0})
    (m1, s1), (m2, s2) = two_views(db)
    s1['cart']['count'] = 1
    s2['cart']['count'] = 2
    m1.commit()
    with pytest.raises(ConflictError):
        m2.commit()
    m2.abort()
    assert fresh(db)['cart']['count'] == 1


def test_same_change_by_both_conflicts(db):
    # Equal writes from the same old value are usually one read-modify-
    # write done twice (a counter incremented by two requests); keeping
    # one would lose the other.
    stored_session(db, cart={'count': 0})
    (m1, s1), (m2, s2) = two_views(db)
    s1['cart']['count'] += 1
    s2['cart']['count'] += 1
    m1.commit()
    with pytest.raises(ConflictError):
        m2.commit()
    m2.abort()
    assert fresh(db)['cart']['count'] == 1


def unstable_set():
    """A set whose pickle changes when it is unpickled and pickled again."""
    tags = {str(number) for number in range(100)}
    tags -= {str(number) for number in range(0, 100, 2)}
    return tags


def test_values_only_read_do_not_conflict(db):
    stored_session(db, cart={'tags': unstable_set(), 'a': 0, 'b': 0})
    (m1, s1), (m2, s2) = two_views(db)
    assert s1['cart']['tags'] == unstable_set() == s2['cart']['tags']
    s1['cart']['a'] = 1
    s2['cart']['b'] = 2
    m1.commit()
    m2.commit()
    data = fresh(db)
    assert dict(data['cart']) == {'tags': unstable_set(), 'a': 1, 'b': 2}


def test_delete_against_change_conflicts(db):
    stored_session(db, cart={'count': 0})
    (m1, s1), (m2, s2) = two_views(db)
    del s1['cart']['count']
    s2['cart']['count'] = 2
    m1.commit()
    with pytest.raises(ConflictError):
        m2.commit()
    m2.abort()


def test_last_access_times_merge_as_maximum(db):
    stored_session(db, cart={'a': 0})
    (m1, s1), (m2, s2) = two_views(db)
    s1.setLastAccessTime(500)
    s2.setLastAccessTime(300)
    s2['cart']['a'] = 1
    m1.commit()
    m2.commit()
    data = fresh(db)
    assert data.getLastAccessTime() == 500
    assert data['cart']['a'] == 1


# -- values beside the packages (zope.session's SessionData allows them) ---

def test_a_value_that_is_not_package_data_is_stored_as_in_zope_session(db):
    stored_session(db, cart={'items': ['apple']})
    manager, root = open_connection(db)
    data = root['session']
    data['name'] = 'bob'
    assert data['name'] == 'bob' and 'name' in data
    assert sorted(data) == ['cart', 'name'] and len(data) == 2
    manager.commit()
    again = fresh(db)
    assert again['name'] == 'bob'
    assert dict(again['cart']) == {'items': ['apple']}
    manager, root = open_connection(db)
    del root['session']['name']
    manager.commit()
    assert 'name' not in fresh(db) and list(fresh(db)) == ['cart']


def test_concurrent_values_beside_the_packages_merge(db):
    stored_session(db, cart={'items': ['apple']})
    (m1, d1), (m2, d2) = two_views(db)
    d1['a'] = 1
    d2['b'] = 2
    m1.commit()
    m2.commit()
    again = fresh(db)
    assert (again['a'], again['b']) == (1, 2)
    (m1, d1), (m2, d2) = two_views(db)
    d1['a'] = 10
    d2['a'] = 20
    m1.commit()
    with pytest.raises(ConflictError):
        m2.commit()
    m2.abort()


def test_package_data_and_a_value_replace_each_other(db):
    data = SessionData()
    data['x'] = SessionPkgData()
    data['x'] = 'plain'
    assert data['x'] == 'plain' and len(data) == 1
    data['x'] = SessionPkgData()
    assert isinstance(data['x'], SessionPkgData) and len(data) == 1


def test_unpicklable_value_beside_the_packages_is_named(db, caplog):
    manager, root = open_connection(db)
    data = root['session'] = SessionData()
    data['lock'] = threading.Lock()
    with pytest.raises(TypeError, match="cannot pickle '_thread.lock'"):
        manager.commit()
    assert any("['lock'] (beside the packages)" in r.getMessage()
               for r in caplog.records)
    manager.abort()
