"""The small persistent records of operating a session database.

Kept in the database root beside the session site, each under a key of
its own, so that the maintenance of one process, the statistics another
publishes and the logins of a principal never rewrite the same record:

- ``MaintenanceRecord`` (root key ``zodbsession.maintenance``): when the
  last sweep and the last pack ran, how long they took, what they
  removed; the pack's claim is committed before the pack starts, which
  is what keeps two processes sharing the database from packing at once.
- ``ProcessRecord``\\ s (root key ``zodbsession.processes``, a tree keyed
  by process name): each running process's request figures, written by
  that process alone, at most once a minute.
- ``PrincipalSessions`` (in ``zodbsession.principals``'s index): the
  sessions one principal logged in with.

Persistent classes are named by this module path in every database's
pickles: they never move.
"""
import persistent
from BTrees.LOBTree import LOBTree
from BTrees.OOBTree import OOBTree
from BTrees.OOBTree import OOTreeSet

from zodbsession.merge import merge_dicts

MAINTENANCE_KEY = 'zodbsession.maintenance'
PROCESSES_KEY = 'zodbsession.processes'
PRINCIPALS_KEY = 'zodbsession.principals'


class MaintenanceRecord(persistent.Persistent):
    """What the background maintenance last did.

    ``last_sweep`` and ``last_pack``: None, or a dict with ``at`` (epoch
    seconds, the session clock), ``seconds`` (how long it took), and
    ``removed`` (sweep: {container name: time slices removed}) or
    ``size_before`` / ``size_after`` (pack: storage bytes).
    ``pack_claimed_at``: when a process last claimed the pack.
    ``history``: ((at, sessions, storage bytes), ...), the latest last,
    taken by sweeps at most every half hour (for charts).
    """

    history = ()

    def __init__(self):
        self.last_sweep = None
        self.last_pack = None
        self.pack_claimed_at = None
        self.sweep_claimed_at = None


class ProcessRecord(persistent.Persistent):
    """One process's published figures: a plain dict in ``figures``
    (see ``zodbsession.procstats``) and when it was published."""

    def __init__(self, figures, published_at):
        self.figures = figures
        self.published_at = published_at


class PrincipalSessions(persistent.Persistent):
    """The sessions one principal was remembered in:
    ``sessions``: {client id: epoch time it was filed}.

    Two logins of one principal at once add different client ids: their
    commits merge, key by key.
    """

    def __init__(self):
        self.sessions = {}

    def _p_resolveConflict(self, old, committed, new):
        merged = dict(committed)
        merged['sessions'] = merge_dicts(
            old.get('sessions', {}), committed.get('sessions', {}),
            new.get('sessions', {}))
        return merged


class PrincipalIndex(persistent.Persistent):
    """principal id -> PrincipalSessions, and the index's own expiry:
    ``filed``: {slice end: set of (principal id, client id)}, so that
    entries whose sessions ended are found at a cost of what expires."""

    def __init__(self):
        self.principals = OOBTree()
        self.filed = LOBTree()

    def new_slice(self):
        return OOTreeSet()
