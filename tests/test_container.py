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

START = 1_700_000_000


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
    # 64 new sessions of one placement (their ids all start with 'c').
    from zodbsession.filing import GROWTH
    from zodbsession.filing import TREE_GROWS_AT
    new_container(db)
    stored(db, 'warm-up', k='v')
    written = []
    for number in range(64):
        manager, container = open_container(db)
        add_session(container, f'client-{number}', k='v')
        manager.commit()
        container._p_jar.close()
        written.append(len(last_transaction_records(db)))
    # Two records each (the trees are small enough never to split), but
    # for the session that filled its placement's one tree: it also made
    # GROWTH trees, and rewrote the placement's record to hold them.
    grew = [count for count in written if count != 2]
    assert grew == [2 + GROWTH + 1], written
    assert written.index(grew[0]) >= TREE_GROWS_AT - 1
    # Steady: the next slice starts that placement with GROWTH trees.
    written = []
    clock.advance(600)
    for number in range(64, 64 + 32):
        manager, container = open_container(db)
        add_session(container, f'client-{number}', k='v')
        manager.commit()
        container._p_jar.close()
        written.append(len(last_transaction_records(db)))
    assert written[1:] == [2] * (len(written) - 1), written


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
    """``count`` client ids whose keys share one tree of a placement's
    generation ``width`` trees wide: the first tree of the placement of
    ids that start with 's', or the tree of the client id ``beside``
    (the ids start as it does, so they share its placement)."""
    from zodbsession.container import client_key
    from zodbsession.filing import PLACEMENTS
    from zodbsession.filing import tree_index

    def place(client_id):
        key = client_key(client_id)
        return key[0] % PLACEMENTS, tree_index(key) % width
    wanted = place(beside) if beside is not None else (
        place('s')[0], 0)
    first = 's' if beside is None else beside[0]
    found = []
    number = 0
    while len(found) < count:
        client_id = f'{first}ame-tree-{number}'
        if place(client_id) == wanted:
            found.append(client_id)
        number += 1
    return found


def ids_of_a_new_thread(count):
    """``count`` ids issued as a thread of its own issues them (with its
    own placement)."""
    import threading
    from zodbsession import CookieClientIdManager
    issuer = CookieClientIdManager(secret='layout-test-secret-012345')
    ids = []
    thread = threading.Thread(target=lambda: ids.extend(
        issuer.generateUniqueId() for _ in range(count)))
    thread.start()
    thread.join()
    return ids


def placement_trees(container, client_id):
    """The PlacementTrees of the newest slice that file ``client_id``."""
    from zodbsession.container import client_key
    from zodbsession.filing import PLACEMENTS
    newest = container._slices[container._slices.maxKey()]
    return newest.placements[client_key(client_id)[0] % PLACEMENTS]


def test_each_threads_sessions_go_to_trees_of_its_own(db, clock):
    # Two threads' new sessions: each thread's go to its placement's
    # trees, which the other never writes (over ZEO they stay in its
    # cache, and nobody else's commit invalidates them), and are spread
    # over them by their digests.
    from zodbsession.filing import GROWTH
    new_container(db)
    (warm_up,) = ids_of_a_new_thread(1)
    stored(db, warm_up, k='v')              # the slice exists
    written = []
    for ids in (ids_of_a_new_thread(40), ids_of_a_new_thread(40)):
        manager, container = open_container(db)
        for client_id in ids:
            container.store_new(client_id, SessionData())
            manager.commit()
            written.append({oid for oid, name in last_transaction_records(db)
                            if name == 'BTrees.OOBTree.OOBTree'})
        trees = placement_trees(container, ids[0])
        # 40 sessions: the first tree filled, and a generation of GROWTH
        # trees followed.
        assert [len(g) for g in trees.generations] == [1, GROWTH]
        assert sum(len(tree) for tree in trees.trees()) == len(ids)
        assert all(container.get(client_id) is not None for client_id in ids)
    # (One tree a session, GROWTH + 1 for the one that grew the trees.)
    assert sorted(map(len, written)) == [1] * 78 + [GROWTH + 1] * 2
    first, second = written[:40], written[40:]
    assert set().union(*first).isdisjoint(set().union(*second))


def test_a_placement_adds_a_wider_generation_when_a_tree_fills(db, clock):
    from zodbsession.filing import GROWTH
    from zodbsession.filing import TREE_GROWS_AT
    new_container(db)
    ids = ids_filed_in_one_tree(TREE_GROWS_AT + 3)
    manager, container = open_container(db)
    for number, client_id in enumerate(ids[:TREE_GROWS_AT + 1]):
        add_session(container, client_id, k=number)
    manager.commit()
    trees = placement_trees(container, ids[0])
    # The session that made its tree hold more than TREE_GROWS_AT added a
    # generation GROWTH times wider; it is itself in the first.
    assert [len(g) for g in trees.generations] == [1, GROWTH]
    newest = trees.generations[-1]
    assert sum(len(tree) for tree in newest) == 0
    for client_id in ids[TREE_GROWS_AT + 1:]:
        add_session(container, client_id, k='later')
    manager.commit()
    assert sum(len(tree) for tree in newest) == 2
    # Sessions of both generations are found, changed and deleted.
    _, fresh = open_container(db)
    assert [fresh[i]['pkg']['k'] for i in ids] == (
        list(range(TREE_GROWS_AT + 1)) + ['later', 'later'])
    assert fresh.count() == len(ids)
    del fresh[ids[0]]
    del fresh[ids[-1]]
    assert ids[0] not in fresh and ids[-1] not in fresh
    assert fresh.count() == len(ids) - 2


def test_a_placement_grows_no_wider_than_max_width():
    from zodbsession.container import client_key
    from zodbsession.filing import MAX_WIDTH
    from zodbsession.filing import TREE_GROWS_AT
    from zodbsession.filing import PlacedSlice
    from zodbsession.filing import PLACEMENTS
    slice_ = PlacedSlice((MAX_WIDTH,) * PLACEMENTS)
    ids = ids_filed_in_one_tree(TREE_GROWS_AT + 2, MAX_WIDTH)
    for client_id in ids:
        slice_[client_key(client_id)] = SessionData()
    key = client_key(ids[0])
    assert len(slice_.placements[key[0] % PLACEMENTS].generations) == 1
    assert len(slice_) == len(ids)


def test_the_next_slice_gives_each_placement_the_trees_it_needed(
        db, clock):
    from zodbsession.container import client_key
    from zodbsession.filing import GROWTH
    from zodbsession.filing import PLACEMENTS
    new_container(db)
    manager, container = open_container(db)
    # Ids of one placement (they all start with 'c'): more sessions than
    # GROWTH trees are for, fewer than GROWTH ** 2 (the next slice's width
    # is estimated from some of the trees: the ids are fixed, so the
    # figures are too).
    busy = client_key('c')[0] % PLACEMENTS
    for number in range(200):
        container.store_new(f'client-{number}', SessionData())
    manager.commit()

    def newest_widths():
        newest = container._slices[container._slices.maxKey()]
        return [[len(g) for g in trees.generations]
                for trees in newest.placements]
    widths = newest_widths()
    assert widths[busy] == [1, GROWTH, GROWTH ** 2]     # it grew twice
    assert widths[:busy] + widths[busy + 1:] == [[1]] * (PLACEMENTS - 1)
    clock.advance(600)
    container.store_new('quiet-1', SessionData())
    manager.commit()
    widths = newest_widths()
    assert widths[busy] == [GROWTH ** 2]
    assert widths[:busy] + widths[busy + 1:] == [[1]] * (PLACEMENTS - 1)
    # A quiet slice is followed by a narrow one again.
    clock.advance(600)
    container.store_new('quiet-2', SessionData())
    manager.commit()
    assert newest_widths() == [[1]] * PLACEMENTS


def test_a_new_slice_is_made_with_at_most_max_opening_trees():
    # However busy the placements were, the request that opens a slice
    # makes MAX_OPENING_TREES trees at most, the widest placements held
    # narrower (they grow again within the slice).
    from zodbsession.filing import GROWTH
    from zodbsession.filing import MAX_OPENING_TREES
    from zodbsession.filing import MAX_WIDTH
    from zodbsession.filing import PLACEMENTS
    from zodbsession.filing import opening_widths
    busy = opening_widths([MAX_WIDTH] * PLACEMENTS)
    assert sum(busy) <= MAX_OPENING_TREES
    assert set(busy) == {MAX_WIDTH // GROWTH ** 2}
    one = [MAX_WIDTH] + [1] * (PLACEMENTS - 1)
    assert opening_widths(one) == tuple(one)
    two = [MAX_WIDTH] * 2 + [1] * (PLACEMENTS - 2)
    assert opening_widths(two) == tuple(
        [MAX_WIDTH // GROWTH] * 2 + [1] * (PLACEMENTS - 2))


def _grow(container, client_ids):
    """File sessions (just-issued ids) until their placement has a second
    generation."""
    for client_id in client_ids:
        container.store_new(client_id, SessionData())
        if len(placement_trees(container, client_id).generations) > 1:
            return
    raise AssertionError('the placement did not grow')


@pytest.mark.parametrize('first', ['narrow', 'wide'])
def test_one_key_filed_in_two_generations_at_once_conflicts(
        db, clock, first):
    # Two requests of one client store its first session at once, one
    # seeing its placement's first generation only, the other the wider
    # one it has just added: whichever commits second fails (to be
    # retried), or the client would have two sessions, one hiding the
    # other.
    from zodbsession.container import client_key
    from zodbsession.expiry import slice_end
    from zodbsession.expiry import slice_length
    from zodbsession.filing import GROWTH
    from zodbsession.filing import PLACEMENTS
    from zodbsession.filing import PlacedSlice
    from zodbsession.filing import tree_index
    new_container(db)
    manager, container = open_container(db)
    # The slice starts its placements GROWTH trees wide; the client's
    # tree is not the one the other sessions fill.
    container._slices[slice_end(START, slice_length(3600, 600))] = (
        PlacedSlice((GROWTH,) * PLACEMENTS))
    manager.commit()
    filling = ids_filed_in_one_tree(40, width=GROWTH)
    client = next(f'same-tree-client-{number}' for number in range(99)
                  if tree_index(client_key(f'same-tree-client-{number}'))
                  % GROWTH != 0)
    manager_narrow, narrow = open_container(db)
    manager_wide, wide = open_container(db)
    add_session(narrow, client, k='narrow')
    _grow(wide, filling)
    add_session(wide, client, k='wide')
    assert len(placement_trees(narrow, client).generations) == 1
    assert len(placement_trees(wide, client).generations) == 2
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


def earlier_slice(container, layout):
    """Put a slice of an earlier version's ``layout`` in ``container``,
    as the slice of START; returns it."""
    from zodbsession.container import SHARDS
    from zodbsession.container import SessionTree
    from zodbsession.container import Slice
    from zodbsession.expiry import slice_end
    from zodbsession.expiry import slice_length
    if layout == 'trees':
        earlier = Slice.__new__(Slice)
        earlier.trees = tuple(SessionTree() for _shard in range(SHARDS))
    else:
        earlier = Slice(2)
    container._slices[slice_end(START, slice_length(3600, 600))] = earlier
    return earlier


@pytest.mark.parametrize('layout', ['trees', 'tables'])
def test_slices_of_earlier_layouts_keep_working(db, clock, layout):
    # A slice an earlier version made: the first layout, one SessionTree
    # per placement character, or the second, tables of trees chosen by
    # the key's digest. Its sessions are found and moved on to a new
    # slice; new ones join it; they are deleted.
    from zodbsession.container import client_key
    from zodbsession.filing import PlacedSlice
    new_container(db)
    manager, container = open_container(db)
    earlier = earlier_slice(container, layout)
    old = SessionData()
    old.setLastAccessTime(START)
    key = client_key('old-client')
    earlier[key] = old
    manager.commit()

    manager, reopened = open_container(db)
    assert reopened['old-client'] is not None
    add_session(reopened, 'new-client', k='joined')
    manager.commit()
    (slice_,) = reopened._slices.values()
    assert type(slice_) is type(earlier) and (
        (slice_.trees is not None) == (layout == 'trees'))
    assert len(slice_) == 2 and reopened['new-client']['pkg']['k'] == 'joined'
    clock.advance(700)                   # the next slice: a move
    reopened['old-client']
    manager.commit()
    moved_to = reopened._slices[reopened._slices.maxKey()]
    assert isinstance(moved_to, PlacedSlice)
    assert moved_to.get(key) is not None and len(slice_) == 1
    del reopened['new-client']
    manager.commit()
    assert 'new-client' not in reopened and len(slice_) == 0


def test_two_first_stores_that_each_open_a_slice_conflict(db, clock):
    # Two requests of one client (it has an id, no session yet) store its
    # first session at once across a slice boundary, where neither slice
    # exists yet: each opens its slice, so each writes the index of
    # slices, where ZODB checks no read as current and BTrees would merge
    # the two. The second to commit fails (to be retried), or one session
    # would hide the other.
    from zodbsession.container import client_key
    from zodbsession.expiry import slice_end
    from zodbsession.expiry import slice_length
    new_container(db)
    stored(db, 'warm-up', k='v')                # the slice of START only
    length = slice_length(3600, 600)
    boundary = slice_end(START, length) + length
    end_a, end_b = (slice_end(boundary - 1, length),
                    slice_end(boundary, length))
    client = 'client-with-a-cookie'
    manager_a, a = open_container(db)
    manager_b, b = open_container(db)
    assert sorted(a._slices) == [slice_end(START, length)] < [end_a] < [end_b]
    clock.value = boundary - 1
    add_session(a, client, k='a')
    clock.value = boundary
    add_session(b, client, k='b')
    manager_a.commit()
    with pytest.raises(ConflictError):
        manager_b.commit()
    manager_b.abort()
    _, fresh = open_container(db)
    key = client_key(client)
    assert [end for end, slice_ in fresh._slices.items()
            if slice_.get(key) is not None] == [end_a]
    assert fresh[client]['pkg']['k'] == 'a'


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
