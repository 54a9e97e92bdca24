"""The three-way merge of session states, on its own (no database)."""
import pytest
from ZODB.POSException import ConflictError

from zodbsession.merge import merge_dicts
from zodbsession.merge import merge_session_states
from zodbsession.merge import same


def state(t=0, **packages):
    return {'t': t, 'p': packages}


OLD = {'a': b'1', 'b': b'2'}


@pytest.mark.parametrize('committed, new, expected', [
    # nobody changed anything
    (OLD, OLD, OLD),
    # added in one
    ({**OLD, 'c': b'3'}, OLD, {**OLD, 'c': b'3'}),
    (OLD, {**OLD, 'c': b'3'}, {**OLD, 'c': b'3'}),
    # added in both, different keys
    ({**OLD, 'c': b'3'}, {**OLD, 'd': b'4'}, {**OLD, 'c': b'3', 'd': b'4'}),
    # deleted in one
    ({'b': b'2'}, OLD, {'b': b'2'}),
    (OLD, {'b': b'2'}, {'b': b'2'}),
    # changed in one
    ({'a': b'X', 'b': b'2'}, OLD, {'a': b'X', 'b': b'2'}),
    (OLD, {'a': b'X', 'b': b'2'}, {'a': b'X', 'b': b'2'}),
    # changed in both, different keys
    ({'a': b'X', 'b': b'2'}, {'a': b'1', 'b': b'Y'},
     {'a': b'X', 'b': b'Y'}),
    # one deleted a key, the other changed another
    ({'b': b'2'}, {'a': b'1', 'b': b'Y'}, {'b': b'Y'}),
])
def test_mergeable_changes(committed, new, expected):
    old_copy, committed_copy, new_copy = dict(OLD), dict(committed), dict(new)
    assert merge_dicts(OLD, committed, new) == expected
    # symmetric, and the inputs are left alone
    assert merge_dicts(OLD, new, committed) == expected
    assert (OLD, committed, new) == (old_copy, committed_copy, new_copy)


@pytest.mark.parametrize('committed, new', [
    # both changed the same key differently
    ({'a': b'X', 'b': b'2'}, {'a': b'Y', 'b': b'2'}),
    # both added the same key with different values
    ({**OLD, 'c': b'3'}, {**OLD, 'c': b'4'}),
    # one deleted what the other changed
    ({'b': b'2'}, {'a': b'Y', 'b': b'2'}),
    # Equal changes conflict too: from one old value they are usually the
    # same read-modify-write done twice (a counter incremented by two
    # requests), and keeping one would lose the other.
    ({'a': b'X', 'b': b'2'}, {'a': b'X', 'b': b'2'}),
    ({**OLD, 'c': b'3'}, {**OLD, 'c': b'3'}),
    ({'b': b'2'}, {'b': b'2'}),      # both deleted 'a' (both popped it)
])
def test_conflicting_changes(committed, new):
    with pytest.raises(ConflictError, match="'a'|'c'"):
        merge_dicts(OLD, committed, new)
    with pytest.raises(ConflictError):
        merge_dicts(OLD, new, committed)


def test_session_states_merge_packages_and_keys():
    old = state(100, cart={'items': b'[]'}, prefs={'lang': b'en'})
    committed = state(150, cart={'items': b'[1]'}, prefs={'lang': b'en'})
    new = state(120, cart={'items': b'[]', 'coupon': b'X'},
                prefs={'lang': b'en'}, auth={'user': b'bob'})
    assert merge_session_states(old, committed, new) == state(
        150, cart={'items': b'[1]', 'coupon': b'X'}, prefs={'lang': b'en'},
        auth={'user': b'bob'})


def test_last_access_merges_as_maximum_whichever_side_is_newer():
    old = state(100, cart={})
    assert merge_session_states(old, state(300, cart={}),
                                state(200, cart={}))['t'] == 300
    assert merge_session_states(old, state(200, cart={}),
                                state(300, cart={}))['t'] == 300


def test_packages_added_by_both_sides_merge_key_by_key():
    old = state(0)
    committed = state(0, cart={'a': b'1'})
    new = state(0, cart={'b': b'2'})
    assert merge_session_states(old, committed, new) == state(
        0, cart={'a': b'1', 'b': b'2'})


def test_package_added_by_both_sides_with_conflicting_key():
    with pytest.raises(ConflictError, match='cart/a'):
        merge_session_states(state(0), state(0, cart={'a': b'1'}),
                             state(0, cart={'a': b'2'}))


def test_nested_conflict_names_package_and_key():
    old = state(0, cart={'a': b'1'})
    with pytest.raises(ConflictError, match="'cart/a'"):
        merge_session_states(old, state(0, cart={'a': b'2'}),
                             state(0, cart={'a': b'3'}))


def test_package_deleted_by_one_side_and_unchanged_by_other():
    old = state(0, cart={'a': b'1'}, prefs={'x': b'1'})
    committed = state(0, prefs={'x': b'1'})
    new = state(5, cart={'a': b'1'}, prefs={'x': b'2'})
    assert merge_session_states(old, committed, new) == state(
        5, prefs={'x': b'2'})


def test_package_deleted_by_one_side_and_changed_by_other_conflicts():
    old = state(0, cart={'a': b'1'})
    with pytest.raises(ConflictError, match='cart'):
        merge_session_states(old, state(0), state(0, cart={'a': b'2'}))


def test_creation_time_of_the_committed_state_is_kept():
    old = state(0)
    assert merge_session_states(old, dict(state(5), c=7),
                                dict(state(6), c=9))['c'] == 7
    assert merge_session_states(old, state(5),
                                dict(state(6), c=9))['c'] == 9


def test_states_without_fields_are_empty():
    assert merge_session_states({}, {}, {'t': 3}) == state(3)


def test_same_compares_by_equality_and_survives_broken_eq():
    class Broken:
        def __eq__(self, other):
            raise RuntimeError('no')

    assert same(b'x', b'x')
    assert not same(b'x', b'y')
    broken = Broken()
    assert same(broken, broken)
    assert not same(broken, Broken())
