"""WorkingCopy: a request's copy of a package, written back key by key."""
import pytest

from zodbsession.workingcopy import WorkingCopy


def test_only_what_changed_is_written_in_place_changes_included():
    stored = {'a': 1, 'items': ['x'], 'gone': True, 'same': {'k': 1}}
    copy = WorkingCopy(stored)
    copy.values['items'].append('y')        # in place
    copy.values['new'] = 2
    copy.values['same'] = {'k': 1}          # equal: not a change
    del copy.values['gone']
    assert copy.changes() == ({'items': ['x', 'y'], 'new': 2}, ['gone'])
    # The copy is the application's: the stored values are untouched.
    assert stored['items'] == ['x']
    copy.write(stored)
    assert stored == {'a': 1, 'items': ['x', 'y'], 'same': {'k': 1},
                      'new': 2}
    assert not copy


def test_revert_and_forget_loaded():
    copy = WorkingCopy({'a': [1]})
    copy.values['a'].append(2)
    copy.values['b'] = 3
    copy.revert()
    assert copy.values == {'a': [1]} and not copy
    copy.forget_loaded()
    assert copy.changes() == ({'a': [1]}, [])


@pytest.mark.parametrize('now, stale', [
    ({'a': 1, 'b': 1}, []),             # nothing changed meanwhile
    ({'a': 1, 'b': 2}, []),             # another key changed: merges
    ({'a': 5, 'b': 1}, ['a']),          # the key we change changed
    ({'b': 1}, ['a']),                  # ... or went
    ({'a': 1, 'b': 1, 'c': 0}, ['c']),  # the key we create was created
    (None, ['a']),                      # the whole session went
])
def test_stale_keys(now, stale):
    copy = WorkingCopy({'a': 1, 'b': 1})
    copy.values['a'] = 2
    copy.values['c'] = 1
    assert sorted(copy.stale_keys(now)) == sorted(stale)
