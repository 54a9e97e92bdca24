"""PersistentSessionDataContainer on a real FileStorage."""
import pytest
import transaction
import zope.schema
from ZODB.POSException import ConflictError
from zope.interface.verify import verifyObject

from zodbsession import ISessionDataContainer
from zodbsession import PersistentSessionDataContainer
from zodbsession import SessionData
from zodbsession import SessionPkgData
from zodbsession.clock import ManualClock
from zodbsession.clock import use_clock
from zodbsession.testing import add_session
from zodbsession.container import IMPLICIT_SWEEP_LIMIT
from zodbsession.testing import last_transaction_records

START = 1_700_000_000    # a multiple of 600: slices start here


@pytest.fixture
def clock():
    with use_clock(ManualClock(START)) as manual:
        yield manual


def open_container(db):
    """(transaction manager, container) through a new connection."""
    manager = transaction.TransactionManager()
    return manager, db.open(manager).root()['container']


def new_container(db, **settings):
    manager = transaction.TransactionManager()
    connection = db.open(manager)
    connection.root()['container'] = PersistentSessionDataContainer(
        **settings)
    manager.commit()
    connection.close()


def stored(db, client_id, **items):
    manager, container = open_container(db)
    add_session(container, client_id, **items)
    manager.commit()
    container._p_jar.close()


def test_interface_and_defaults():
    container = PersistentSessionDataContainer()
    assert verifyObject(ISessionDataContainer, container)
    assert (container.timeout, container.resolution) == (3600, 600)
    assert 'timeout=3600' in repr(container)


@pytest.mark.parametrize('setting', ['timeout', 'resolution'])
def test_negative_settings_are_rejected(setting):
    with pytest.raises(zope.schema.ValidationError):
        PersistentSessionDataContainer(**{setting: -1})


def test_set_get_contains_delete(db, clock):
    new_container(db)
    manager, container = open_container(db)
    with pytest.raises(KeyError):
        container['client']
    assert container.get('client') is None and 'client' not in container
    data = add_session(container, 'client', k='v')
    assert container['client'] is data
    assert data.getLastAccessTime() == START
    manager.commit()

    manager2, container2 = open_container(db)
    assert 'client' in container2
    assert container2['client']['pkg']['k'] == 'v'
    assert container2.get('other') is None
    del container2['client']
    with pytest.raises(KeyError):
        del container2['client']
    manager2.commit()
    assert 'client' not in open_container(db)[1]


def test_setitem_replaces_existing_data(db, clock):
    new_container(db)
    stored(db, 'client', k='old')
    clock.advance(2000)           # another slice
    manager, container = open_container(db)
    add_session(container, 'client', k='new')
    manager.commit()
    _, fresh = open_container(db)
    assert fresh['client']['pkg']['k'] == 'new'
    assert fresh.count() == 1


@pytest.mark.parametrize('timeout', [3600, 0])
def test_sessions_of_every_live_slice_are_found(db, clock, timeout):
    # One session per slice (timeout 0: 30-day slices), the newest last:
    # a lookup visits every live slice, newest first, and a miss visits
    # them all.
    new_container(db, timeout=timeout, resolution=600)
    step = 600 if timeout else 30 * 24 * 3600
    for number in range(7):
        stored(db, f'client-{number}', n=number)
        clock.advance(step)
    manager, container = open_container(db)
    assert len(container.slice_counts()) == 7
    for number in range(7):
        assert container.peek(f'client-{number}')['pkg']['n'] == number
    assert container.get('nobody') is None and 'nobody' not in container
    manager.abort()


def test_read_within_resolution_writes_nothing(db, clock):
    new_container(db)
    stored(db, 'client', k='v')
    last, size = db.storage.lastTransaction(), db.storage.getSize()
    clock.advance(599)
    manager, container = open_container(db)
    assert container['client']['pkg']['k'] == 'v'
    assert 'client' in container
    manager.commit()
    assert db.storage.lastTransaction() == last
    assert db.storage.getSize() == size


def test_read_after_resolution_writes_the_access_time(db, clock):
    new_container(db)
    stored(db, 'client', k='v')
    last = db.storage.lastTransaction()
    clock.advance(601)
    manager, container = open_container(db)
    container['client']
    manager.commit()
    assert db.storage.lastTransaction() != last
    classes = [name for oid, name in last_transaction_records(db)]
    assert 'zodbsession.data.SessionData' in classes
    _, fresh = open_container(db)
    assert fresh['client'].getLastAccessTime() == START + 601


def test_expired_data_is_never_returned_even_before_sweep(db, clock):
    new_container(db, timeout=3600, resolution=600)
    stored(db, 'client', k='v')
    clock.advance(3600)
    manager, container = open_container(db)
    assert 'client' in container              # not early
    manager.abort()
    clock.advance(600 + 1)                    # timeout + resolution passed
    manager, container = open_container(db)
    assert container.count() == 1             # still stored ...
    assert 'client' not in container          # ... but never returned
    assert container.get('client') is None
    with pytest.raises(KeyError):
        container['client']


def test_touched_session_lives_on(db, clock):
    new_container(db, timeout=3600, resolution=600)
    stored(db, 'client', k='v')
    for _ in range(10):                       # 10 hours of use
        clock.advance(3000)
        manager, container = open_container(db)
        assert container['client']['pkg']['k'] == 'v'
        manager.commit()
        container._p_jar.close()
    _, container = open_container(db)
    assert container.count() == 1


def test_sweep_removes_expired_sessions_only(db, clock):
    new_container(db, timeout=3600, resolution=600)
    stored(db, 'old', k=1)
    clock.advance(3000)
    stored(db, 'young', k=2)
    clock.advance(1800)
    manager, container = open_container(db)
    assert container.count() == 2
    assert container.sweep_expired() >= 1
    manager.commit()
    _, container = open_container(db)
    assert container.count() == 1
    assert 'young' in container and 'old' not in container


def test_timeout_zero_never_expires(db, clock):
    new_container(db, timeout=0)
    stored(db, 'client', k='v')
    clock.advance(10 * 365 * 24 * 3600)
    manager, container = open_container(db)
    assert container.sweep_expired() == 0
    assert container['client']['pkg']['k'] == 'v'


def test_new_session_in_a_warm_container_writes_two_records(db, clock):
    new_container(db)
    stored(db, 'warm-up', k='v')
    manager, container = open_container(db)
    add_session(container, 'newcomer', k='v')
    manager.commit()
    records = last_transaction_records(db)
    # The session's own record and the one bucket (here inline in the
    # small SessionTree) that indexes it; not the container, not the
    # slice tree.
    assert len(records) == 2, records
    names = sorted(name for oid, name in records)
    assert names == ['zodbsession.container.SessionTree',
                     'zodbsession.data.SessionData'], names
    assert container._p_oid not in [oid for oid, name in records]


def test_new_sessions_cost_few_records_on_average(db, clock):
    new_container(db)
    stored(db, 'warm-up', k='v')
    written = []
    for number in range(64):
        manager, container = open_container(db)
        add_session(container, f'client-{number}', k='v')
        manager.commit()
        container._p_jar.close()
        written.append(len(last_transaction_records(db)))
    # Two records each, plus the occasional bucket split.
    assert written.count(2) >= len(written) * 0.6, written
    assert sum(written) / len(written) <= 3, written


def test_store_new_stores_a_session_under_a_just_issued_id(db, clock):
    # A just-issued id: stored as with container[id] = data (two records
    # in a warm container), the hold of that id ended, found again.
    from zodbsession.interfaces import IFreshSessions
    new_container(db)
    stored(db, 'warm-up', k='v')
    manager, container = open_container(db)
    assert verifyObject(IFreshSessions, container)
    data = container.new_session_data()
    container.hold('just-issued', data)
    assert 'just-issued' not in container
    clock.advance(5)
    container.store_new('just-issued', data)
    data['pkg'] = SessionPkgData()
    data['pkg']['k'] = 'v'
    assert 'just-issued' in container and container['just-issued'] is data
    assert data.getLastAccessTime() == START + 5
    manager.commit()
    names = sorted(name for oid, name in last_transaction_records(db))
    assert names == ['zodbsession.container.SessionTree',
                     'zodbsession.data.SessionData'], names
    manager.abort()
    _, fresh = open_container(db)
    assert fresh['just-issued']['pkg']['k'] == 'v'
    assert fresh.count() == 2


def test_two_new_clients_in_one_slice_both_commit(db, clock):
    new_container(db)
    stored(db, 'warm-up', k='v')
    manager1, container1 = open_container(db)
    manager2, container2 = open_container(db)
    add_session(container1, 'one', k=1)
    add_session(container2, 'two', k=2)
    manager1.commit()
    manager2.commit()
    _, fresh = open_container(db)
    assert fresh['one']['pkg']['k'] == 1 and fresh['two']['pkg']['k'] == 2


def test_same_key_of_one_session_conflicts_through_the_container(db, clock):
    new_container(db)
    stored(db, 'client', n=0)
    manager1, container1 = open_container(db)
    manager2, container2 = open_container(db)
    container1['client']['pkg']['n'] = 1
    container2['client']['pkg']['n'] = 2
    manager1.commit()
    with pytest.raises(ConflictError):
        manager2.commit()
    manager2.abort()


def test_implicit_sweep_is_bounded(db, clock):
    # Many expired slices pile up when the timeout is lowered: sessions
    # made without a timeout sit in 30-day slices.
    new_container(db, timeout=0)
    slices = 20
    for number in range(slices):
        stored(db, f'client-{number}', k=number)
        clock.advance(31 * 24 * 3600)     # each in its own slice
    manager, container = open_container(db)
    container.timeout = 3600
    manager.commit()
    assert container.count() == slices
    add_session(container, 'newcomer', k='v')   # opens a new slice
    manager.commit()
    assert container.count() == slices - IMPLICIT_SWEEP_LIMIT + 1
    assert container.sweep_expired() == slices - IMPLICIT_SWEEP_LIMIT
    manager.commit()
    assert container.count() == 1 and 'newcomer' in container


def test_disable_implicit_sweeps(db, clock):
    new_container(db, timeout=0)
    for number in range(6):
        stored(db, f'client-{number}', k=number)
        clock.advance(31 * 24 * 3600)
    manager, container = open_container(db)
    container.timeout = 3600
    container.disable_implicit_sweeps = True
    add_session(container, 'newcomer', k='v')
    manager.commit()
    assert container.count() == 7
    assert container.sweep_expired() == 6


def test_sweep_does_not_load_expired_sessions(db, clock):
    new_container(db, timeout=60, resolution=10)
    for number in range(5):
        stored(db, f'client-{number}', k=number)
    clock.advance(10_000)
    db.cacheMinimize()
    manager, container = open_container(db)
    connection = container._p_jar
    connection.cacheMinimize()
    assert container.sweep_expired() == 1
    manager.commit()
    loaded = [obj for obj in connection._cache.cache_data.values()
              if isinstance(obj, SessionData) and obj._p_changed is not None]
    assert loaded == []


def test_each_thread_files_its_new_sessions_in_a_tree_of_its_own(db, clock):
    # Placement: the ids a thread issues start with its own character, so
    # the sessions it creates share one tree per slice, and concurrent
    # processes (threads) rarely add sessions to the same tree.
    import os
    import threading
    from zodbsession import CookieClientIdManager
    from zodbsession import placement
    from zodbsession.container import SHARDS
    manager = CookieClientIdManager(secret='placement-test-secret-0123')
    issued = {}

    def issue(name, char):
        placement._home.value = (os.getpid(), char)     # its character
        issued[name] = [manager.generateUniqueId() for _ in range(40)]

    threads = [threading.Thread(target=issue, args=('first', 'A')),
               threading.Thread(target=issue, args=('second', 'x'))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(i.startswith('A') for i in issued['first'])
    assert all(i.startswith('x') for i in issued['second'])

    new_container(db)
    manager, container = open_container(db)
    for client_id in issued['first'] + issued['second']:
        container[client_id] = SessionData()
    manager.commit()
    (slice_,) = container._slices.values()
    sizes = {index: len(tree) for index, tree in enumerate(slice_.trees)
             if len(tree)}
    first = placement.ALPHABET.index('A') % SHARDS
    second = placement.ALPHABET.index('x') % SHARDS
    assert sizes == {first: 40, second: 40}
    # Every session is found again, whichever tree holds it.
    assert all(container.get(i) is not None
               for i in issued['first'] + issued['second'])
    manager.abort()
    container._p_jar.close()
