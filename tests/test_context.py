"""The request context, its one data manager, and following a
transaction manager's transactions."""
import pytest
import transaction

from zodbsession import following
from zodbsession.context import RequestDataManager
from zodbsession.context import context_of
from zodbsession.context import has_transaction
from zodbsession.context import install
from zodbsession.requests import WSGIRequest


class Follower:
    def __init__(self):
        self.told = []

    def newTransaction(self, txn):
        self.told.append('begun')

    def beforeCompletion(self, txn):
        self.told.append('completing')

    def afterCompletion(self, txn):
        self.told.append('committed' if txn.status == 'Committed'
                         else 'not committed')


def test_a_follower_is_told_of_each_transaction_until_it_stops():
    manager = transaction.TransactionManager()
    follower = Follower()
    following.follow(manager, follower)
    manager.begin()
    manager.commit()
    manager.get()
    manager.abort()
    following.unfollow(manager, follower)
    manager.begin()
    manager.commit()
    assert follower.told == ['begun', 'completing', 'committed',
                             'completing', 'not committed']
    following.unfollow(manager, follower)       # twice: nothing happens


def test_followers_survive_a_manager_whose_synchronizers_were_cleared():
    # After a storage outage the middleware clears the thread manager's
    # synchronizers, ours among them; the next follower registers anew.
    manager = transaction.TransactionManager()
    following.follow(manager, Follower())
    manager.clearSynchs()
    following.forget(manager)
    follower = Follower()
    following.follow(manager, follower)
    manager.get()
    manager.commit()
    assert follower.told == ['completing', 'committed']


def test_whether_a_transaction_is_under_way_is_asked_without_starting_one():
    manager = transaction.TransactionManager()
    assert has_transaction(manager) is False
    assert has_transaction(manager) is False    # asking began nothing
    manager.get()
    assert has_transaction(manager) is True
    manager.abort()
    assert has_transaction(manager) is False
    # The thread-dispatching manager answers for the thread's own.
    assert has_transaction(transaction.manager) is has_transaction(
        transaction.manager.manager)


class Participant:
    def __init__(self, name, log, fail_vote=False):
        self.name, self.log, self.fail_vote = name, log, fail_vote

    def tpc_vote(self, txn):
        self.log.append((self.name, 'vote'))
        if self.fail_vote:
            raise ValueError(f'{self.name} cannot be stored')

    def tpc_finish(self, txn):
        self.log.append((self.name, 'finish'))

    def tpc_abort(self, txn):
        self.log.append((self.name, 'abort'))

    abort = tpc_abort


def test_request_bound_data_commits_alone_all_or_nothing():
    manager = transaction.TransactionManager()
    log = []
    data_manager = RequestDataManager(manager)
    data_manager.enlist(Participant('a', log))
    data_manager.enlist(Participant('b', log))
    data_manager.commit_alone()
    assert log == [('a', 'vote'), ('b', 'vote'),
                   ('a', 'finish'), ('b', 'finish')]

    log.clear()
    data_manager.enlist(Participant('a', log))
    data_manager.enlist(Participant('b', log, fail_vote=True))
    with pytest.raises(ValueError, match='b cannot be stored'):
        data_manager.commit_alone()
    assert log == [('a', 'vote'), ('b', 'vote'),
                   ('a', 'abort'), ('b', 'abort')]
    data_manager.commit_alone()         # nothing is left to commit
    assert len(log) == 4
    data_manager.stop_following()


def test_request_bound_data_joins_the_transaction_that_commits():
    manager = transaction.TransactionManager()
    log = []
    data_manager = RequestDataManager(manager)
    data_manager.enlist(Participant('a', log))
    manager.get()
    manager.commit()
    assert log == [('a', 'vote'), ('a', 'finish')]
    data_manager.enlist(Participant('b', log))
    manager.get()
    manager.abort()
    assert log[2:] == [('b', 'abort')]
    data_manager.stop_following()
    data_manager.enlist(Participant('c', log))     # follows again
    manager.get()
    manager.commit()
    assert log[3:] == [('c', 'vote'), ('c', 'finish')]
    data_manager.stop_following()


def test_a_request_no_host_prepared_gets_one_context_kept_with_it():
    request = WSGIRequest({})
    context = context_of(request)
    assert context_of(request) is context
    assert context.hosted is False
    assert context.transaction_manager_for() is transaction.manager


def test_a_host_prepares_a_request_that_keeps_state_only():
    manager = transaction.TransactionManager()
    request = WSGIRequest({})
    context = install(request, transaction_manager=manager,
                      cookies=request)
    assert context_of(request) is context
    assert context.transaction_manager_for() is manager
    with pytest.raises(TypeError, match='keeps no per-request state'):
        install(object())
