"""Placement: the character a thread's client ids start with.

A time slice files the sessions of each placement in trees of their own
(see zodbsession.filing), so the sessions a thread creates go to trees
that other threads and processes rarely write: they stay in the
thread's connection cache, and a new session reads nothing from the
storage. The character stays in the ids, and in the keys made from
them, so that any process finds a session where it was filed.

The character comes from the process id and the thread's rank in its
process, so that sibling worker processes (forked one after another,
with consecutive ids) and the threads of one process get different ones.
It is no secret and needs none: it only says where a session is filed,
and the id's 256 random bits follow it. Ids of other formats place by
their first character too, which is as random as the rest of them.
"""
import itertools
import os
import string
import threading

ALPHABET = string.ascii_uppercase + string.ascii_lowercase + string.digits \
    + '-_'
_INDEX = {char: index for index, char in enumerate(ALPHABET)}
# Threads of one process take consecutive characters, from a block of
# this many per process.
THREADS_PER_PROCESS = 8

_home = threading.local()
_thread_ranks = itertools.count()


def home_character():
    """This thread's placement character."""
    home = getattr(_home, 'value', None)
    pid = os.getpid()
    # Compared with the pid, so that a process forked from one that had
    # already chosen takes its own (os.register_at_fork would spare the
    # system call, but servers that fork from C, as uWSGI does by
    # default, run no such hook).
    if home is None or home[0] != pid:
        index = pid * THREADS_PER_PROCESS + next(_thread_ranks)
        home = _home.value = (pid, ALPHABET[index % len(ALPHABET)])
    return home[1]


def placement_of(client_id):
    """The placement (0-63) a client id asks for, or None."""
    return _INDEX.get(client_id[:1])
