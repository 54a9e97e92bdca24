"""Placement: which of a slice's session trees holds a client's session.

A time slice spreads its sessions over several trees. Were a tree chosen
at random per session, every process of a cluster would add sessions to
every tree, and each new session would invalidate (and sometimes conflict
with) the same few buckets in the other processes' caches, above all in
a young slice whose trees are still small.

So a client id starts with a placement character, which a thread takes
once for the ids it issues: the sessions a thread creates then share one
tree per slice, which other threads and processes rarely write. The
character comes from the process id and the thread's rank in its process,
so that sibling worker processes (forked one after another, with
consecutive ids) and the threads of one process get different ones.
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
