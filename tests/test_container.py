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
    # The session's own record and the small tree (its one bucket inline)
    # that indexes it; not the container, not the slice, no tree node.
    assert len(records) == 2, records
    names = sorted(name for oid, name in records)
    assert names == ['BTrees.OOBTree.OOBTree',
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
    # Two records each: the trees are small enough never to split.
    assert written == [2] * len(written), written


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
    assert names == ['BTrees.OOBTree.OOBTree',
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


def only_slice(container):
    (slice_,) = container._slices.values()
    return slice_


def ids_filed_in_one_tree(count, width=1, beside=None):
    """``count`` client ids whose keys share one tree of a table
    ``width`` trees per group wide: the first tree, or the tree of the
    client id ``beside``."""
    from zodbsession.container import GROUPS
    from zodbsession.container import client_key
    place = (0, 0)
    if beside is not None:
        key = client_key(beside)
        place = (key[1] % GROUPS, key[2] % width)
    found = []
    number = 0
    while len(found) < count:
        client_id = f'same-tree-{number}'
        key = client_key(client_id)
        if (key[1] % GROUPS, key[2] % width) == place:
            found.append(client_id)
        number += 1
    return found


def test_sessions_spread_evenly_over_the_trees_of_a_table(db, clock):
    # The tree is chosen by the key's digest, not by who made the id, so
    # even the ids of one thread fill every tree: a tree stays small (one
    # record), however few threads make the sessions.
    from zodbsession import CookieClientIdManager
    from zodbsession.container import GROUPS
    issuer = CookieClientIdManager(secret='layout-test-secret-012345')
    new_container(db)
    manager, container = open_container(db)
    ids = [issuer.generateUniqueId() for _ in range(GROUPS * 4)]
    for client_id in ids:
        container.store_new(client_id, SessionData())
    manager.commit()
    (table,) = only_slice(container).tables
    sizes = [len(tree) for group in table for tree in group.trees]
    assert len(sizes) == GROUPS and sum(sizes) == len(ids)
    assert max(sizes) <= 16 and sizes.count(0) <= GROUPS // 8, sizes
    assert all(container.get(client_id) is not None for client_id in ids)


def test_a_slice_adds_a_wider_table_when_a_tree_fills(db, clock):
    from zodbsession.container import GROWTH
    from zodbsession.container import TREE_GROWS_AT
    new_container(db)
    ids = ids_filed_in_one_tree(TREE_GROWS_AT + 3)
    manager, container = open_container(db)
    for number, client_id in enumerate(ids[:TREE_GROWS_AT + 1]):
        add_session(container, client_id, k=number)
    manager.commit()
    slice_ = only_slice(container)
    # The session that made its tree hold more than TREE_GROWS_AT added a
    # table GROWTH times wider; it is itself in the first.
    assert [len(table[0].trees) for table in slice_.tables] == [1, GROWTH]
    newest = slice_.tables[-1]
    assert sum(len(tree) for group in newest for tree in group.trees) == 0
    for client_id in ids[TREE_GROWS_AT + 1:]:
        add_session(container, client_id, k='later')
    manager.commit()
    assert sum(len(tree) for group in newest for tree in group.trees) == 2
    # Sessions of both tables are found, changed and deleted.
    _, fresh = open_container(db)
    assert [fresh[i]['pkg']['k'] for i in ids] == (
        list(range(TREE_GROWS_AT + 1)) + ['later', 'later'])
    assert fresh.count() == len(ids)
    del fresh[ids[0]]
    del fresh[ids[-1]]
    assert ids[0] not in fresh and ids[-1] not in fresh
    assert fresh.count() == len(ids) - 2


def test_a_table_grows_no_wider_than_max_width():
    from zodbsession.container import MAX_WIDTH
    from zodbsession.container import TREE_GROWS_AT
    from zodbsession.container import Slice
    from zodbsession.container import client_key
    slice_ = Slice(MAX_WIDTH)
    for client_id in ids_filed_in_one_tree(TREE_GROWS_AT + 2, MAX_WIDTH):
        slice_[client_key(client_id)] = SessionData()
    assert len(slice_.tables) == 1


def test_the_next_slice_is_as_wide_as_the_last_one_needed(db, clock):
    from zodbsession import CookieClientIdManager
    from zodbsession.container import GROUPS
    from zodbsession.container import SESSIONS_PER_TREE
    issuer = CookieClientIdManager(secret='layout-test-secret-012345')
    new_container(db)
    manager, container = open_container(db)
    # More sessions than tables two trees wide per group are for, fewer
    # than four trees are (the next slice's width is estimated from some
    # of the trees: the ids are fixed, so the figures are too).
    for number in range(GROUPS * 3 * SESSIONS_PER_TREE):
        container.store_new(f'client-{number}', SessionData())
    manager.commit()

    def newest_widths():
        newest = container._slices[container._slices.maxKey()]
        return [len(table[0].trees) for table in newest.tables]
    assert newest_widths() == [1, 8]      # it grew on the way
    clock.advance(600)
    container.store_new(issuer.generateUniqueId(), SessionData())
    manager.commit()
    assert newest_widths() == [4]
    # A quiet slice is followed by a narrow one again.
    clock.advance(600)
    container.store_new(issuer.generateUniqueId(), SessionData())
    manager.commit()
    assert newest_widths() == [1]


def _grow(container, client_ids):
    """File sessions (just-issued ids) until the slice has a second
    table."""
    for client_id in client_ids:
        container.store_new(client_id, SessionData())
        if len(only_slice(container).tables) > 1:
            return
    raise AssertionError('the slice did not grow')


@pytest.mark.parametrize('first', ['narrow', 'wide'])
def test_one_key_filed_in_two_tables_at_once_conflicts(db, clock, first):
    # Two requests of one client store its first session at once, one
    # seeing the slice's first table only, the other the wider one it
    # has just added: whichever commits second fails (to be retried), or
    # the client would have two sessions, one hiding the other.
    from zodbsession.container import client_key
    new_container(db)
    stored(db, 'warm-up', k='v')          # the slice exists
    client = 'client-with-a-cookie'
    manager_narrow, narrow = open_container(db)
    manager_wide, wide = open_container(db)
    add_session(narrow, client, k='narrow')
    _grow(wide, ids_filed_in_one_tree(40))
    add_session(wide, client, k='wide')
    assert len(only_slice(narrow).tables) == 1
    managers = {'narrow': manager_narrow, 'wide': manager_wide}
    second = 'wide' if first == 'narrow' else 'narrow'
    managers[first].commit()
    with pytest.raises(ConflictError):
        managers[second].commit()
    managers[second].abort()
    _, fresh = open_container(db)
    assert fresh[client]['pkg']['k'] == first
    key = client_key(client)
    assert [k for k, _data in only_slice(fresh).items() if k == key] == [key]


def test_two_new_sessions_in_one_tree_both_commit(db, clock):
    # Two new clients filed in the same small tree at once: its one
    # bucket's conflict resolution keeps both, with no retry.
    new_container(db)
    stored(db, 'warm-up', k='v')
    one, two = ids_filed_in_one_tree(2)
    manager1, container1 = open_container(db)
    manager2, container2 = open_container(db)
    container1.store_new(one, SessionData())
    container2.store_new(two, SessionData())
    manager1.commit()
    manager2.commit()
    _, fresh = open_container(db)
    assert one in fresh and two in fresh


def test_slices_of_the_earlier_layout_keep_working(db, clock):
    # A slice an earlier version made: one SessionTree per placement
    # character, chosen by the key's first byte. Its sessions are found
    # and moved on to a new slice; new ones join it; they are deleted.
    from zodbsession.container import SHARDS
    from zodbsession.container import SessionTree
    from zodbsession.container import Slice
    from zodbsession.container import client_key
    from zodbsession.expiry import slice_end
    from zodbsession.expiry import slice_length
    new_container(db)
    manager, container = open_container(db)
    earlier = Slice.__new__(Slice)
    earlier.trees = tuple(SessionTree() for _shard in range(SHARDS))
    container._slices[slice_end(START, slice_length(3600, 600))] = earlier
    old = SessionData()
    old.setLastAccessTime(START)
    key = client_key('old-client')
    earlier.trees[key[0] % SHARDS][key] = old
    manager.commit()

    manager, reopened = open_container(db)
    assert reopened['old-client'] is not None
    add_session(reopened, 'new-client', k='joined')
    manager.commit()
    (slice_,) = reopened._slices.values()
    assert slice_.trees is not None and not slice_.tables
    assert len(slice_) == 2 and reopened['new-client']['pkg']['k'] == 'joined'
    clock.advance(700)                   # the next slice: a move
    reopened['old-client']
    manager.commit()
    moved_to = reopened._slices[reopened._slices.maxKey()]
    assert moved_to is not slice_ and moved_to.get(key) is not None
    assert len(slice_) == 1
    del reopened['new-client']
    manager.commit()
    assert 'new-client' not in reopened and len(slice_) == 0


def test_one_key_filed_in_two_slices_at_once_conflicts(db, clock):
    # A request stores a client's first session in the current slice,
    # from a snapshot older than two other requests of the client: one
    # stored the session in that slice, the next (its clock already in
    # the next slice) replaced it there, moving it. Committing last, the
    # old snapshot's request must fail (to be retried), or the client
    # would have a session in each slice, the older one coming back when
    # the newer is deleted.
    from zodbsession.container import client_key
    new_container(db)
    client = 'client-with-a-cookie'
    # A session in the client's tree, so that the first store changes
    # that tree rather than making it.
    (warm,) = ids_filed_in_one_tree(1, beside=client)
    stored(db, warm, k='v')
    manager_old, old = open_container(db)
    assert old.get(client) is None              # its snapshot: no session
    stored(db, client, k='first')
    clock.advance(600)
    stored(db, client, k='replaced')            # into the next slice
    clock.advance(-600)
    add_session(old, client, k='stale')
    with pytest.raises(ConflictError):
        manager_old.commit()
    manager_old.abort()
    clock.advance(600)
    manager, fresh = open_container(db)
    key = client_key(client)
    assert [end for end, slice_ in fresh._slices.items()
            if slice_.get(key) is not None] == [fresh._slices.maxKey()]
    assert fresh[client]['pkg']['k'] == 'replaced'
