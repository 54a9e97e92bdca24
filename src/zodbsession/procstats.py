"""This process's request figures, counted in memory.

The hosts count each request they serve (``count_request``); the retry
policy counts each conflict it retries and each request that ran out of
time (``count_conflict``, ``count_unavailable``). Nothing here touches
the database: the maintenance thread publishes a snapshot (``figures``)
to the process's own record at most once a minute (see
``zodbsession.maintenance``), so a request, read-only or not, writes
nothing for the statistics.
"""
import os
import re
import socket
import threading
import time

# "both transactions changed session key 'pkg/key'" (zodbsession.merge)
_KEY_NOTE = re.compile(r"changed session key '(.+)'")
_CLASS_NOTE = re.compile(r'conflicting record is a (\S+?);?\s')

# Keys kept per process: a flood of distinct keys must not grow memory.
MAX_CONFLICT_KEYS = 200
OTHER = '(other)'


def conflict_label(error):
    """What ``error`` (a conflict) was about: ``'pkg/key'`` when the
    session merge named it, else the record's class, else '(unknown)'."""
    notes = ' '.join(getattr(error, '__notes__', ())) + ' ' + str(error)
    found = _KEY_NOTE.search(notes)
    if found:
        return found.group(1)
    found = _CLASS_NOTE.search(notes + ' ')
    if found:
        return f'record {found.group(1)}'
    get_class_name = getattr(error, 'get_class_name', None)
    name = get_class_name() if get_class_name is not None else None
    return f'record {name}' if name else '(unknown)'


class ProcessCounters:
    """Requests, retries, conflicts by key and 503s of this process."""

    def __init__(self):
        self._lock = threading.Lock()
        self.name = f'{socket.gethostname()}:{os.getpid()}'
        self.started = time.time()
        self.requests = 0
        self.retries = 0
        self.unavailable = 0
        self.conflicts = {}
        self.version = 0    # moves on every change: publish only then

    def count_request(self):
        with self._lock:
            self.requests += 1
            self.version += 1

    def count_conflict(self, error, retried=True):
        """A request met conflict ``error``; it runs again if
        ``retried``, else it is answered with a 503."""
        label = conflict_label(error)
        with self._lock:
            self.retries += bool(retried)
            if (label not in self.conflicts
                    and len(self.conflicts) >= MAX_CONFLICT_KEYS):
                label = OTHER
            self.conflicts[label] = self.conflicts.get(label, 0) + 1
            self.version += 1

    def count_unavailable(self):
        with self._lock:
            self.unavailable += 1
            self.version += 1

    def figures(self):
        """A plain-dict snapshot (what is published and shown)."""
        with self._lock:
            return {
                'process': self.name,
                'started': self.started,
                'requests': self.requests,
                'retries': self.retries,
                'unavailable': self.unavailable,
                'conflicts': dict(self.conflicts),
            }


# The process's counters, shared by every host in it.
counters = ProcessCounters()
