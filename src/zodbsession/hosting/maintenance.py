"""Background maintenance: sweeping, scheduled packing, publishing stats.

One daemon thread per database per process, started by the hosts
(``start_maintenance``), never work done in a request. Each ``tick``:

1. sweeps every container, if no process of the database swept in the
   last ``sweep_interval`` seconds (the claim is in the database's
   MaintenanceRecord, so one process sweeps per interval), and the
   principal index with them;
2. packs, when the last pack is older than ``pack_interval`` seconds
   (see ``zodbsession.packing``; 0: never);
3. publishes this process's request figures to its own record, when
   they changed and ``publish_interval`` seconds have passed.

Times are the session clock's (``zodbsession.clock``), so tests drive
the schedule with a ManualClock by calling ``tick()``; the thread only
calls ``tick()`` every ``TICK_SECONDS``.
"""
import logging
import threading
import time
import traceback
import weakref

from BTrees.OOBTree import OOBTree
from zope.interface import implementer

from zodbsession import clock
from zodbsession.interfaces import IInspectableContainer
from zodbsession.interfaces import ISessionMaintenance
from zodbsession.hosting.db import database_closed
from zodbsession.hosting.packing import DEFAULT_PACK_INTERVAL
from zodbsession.hosting.packing import check_pack_interval
from zodbsession.hosting.packing import maintenance_record
from zodbsession.hosting.packing import scheduled_pack
from zodbsession.principals import sweep_index
from zodbsession.procstats import counters as process_counters
from zodbsession.records import PROCESSES_KEY
from zodbsession.records import ProcessRecord
from zodbsession.site import ROOT_KEY
from zodbsession.hosting.sitechanges import run_in_transaction

log = logging.getLogger(__name__)

TICK_SECONDS = 60
DEFAULT_SWEEP_INTERVAL = 300
DEFAULT_PUBLISH_INTERVAL = 60
# A process record not refreshed for this long belongs to a process that
# ended: it is dropped.
STALE_PROCESS_SECONDS = 3600
# Sessions over time: a point at most every half hour, a week of them.
HISTORY_INTERVAL = 1800
HISTORY_POINTS = 336


def sweep_all(db, now=None, interval=0):
    """Sweep every container of ``db``'s site (and the principal index),
    unless a sweep ran less than ``interval`` seconds ago; returns the
    sweep's record ({'at', 'seconds', 'removed': {name: slices}}) or
    None when not due."""
    now = clock.now() if now is None else now
    started = time.monotonic()

    def sweep(connection):
        record = maintenance_record(connection)
        last = record.sweep_claimed_at
        if interval and last is not None and now - last < interval:
            return None
        record.sweep_claimed_at = now
        site = connection.root().get(ROOT_KEY)
        removed = {}
        if site is not None:
            for name, container in sorted(site.containers().items()):
                removed[name] = container.sweep_expired()
            _add_history(db, record, site, now)
        removed_index = sweep_index(connection, now)
        result = {'at': now, 'seconds': round(time.monotonic() - started, 3),
                  'removed': removed,
                  'principal_entries_removed': removed_index}
        record.last_sweep = result
        return result
    return run_in_transaction(db, sweep)


def _add_history(db, record, site, now):
    history = record.history
    if history and now - history[-1][0] < HISTORY_INTERVAL:
        return
    sessions = sum(container.count()
                   for container in set(site.containers().values())
                   if IInspectableContainer.providedBy(container))
    record.history = tuple(history[-(HISTORY_POINTS - 1):]) + (
        (now, sessions, db.getSize()),)


def publish_figures(db, figures, now=None):
    """Write ``figures`` (``procstats``) to this process's own record,
    and drop records of processes gone quiet for an hour."""
    now = clock.now() if now is None else now

    def publish(connection):
        root = connection.root()
        records = root.get(PROCESSES_KEY)
        if records is None:
            records = root[PROCESSES_KEY] = OOBTree()
        record = records.get(figures['process'])
        if record is None:
            records[figures['process']] = ProcessRecord(figures, now)
        else:
            record.figures, record.published_at = figures, now
        for name, other in list(records.items()):
            if now - other.published_at > STALE_PROCESS_SECONDS:
                del records[name]
    run_in_transaction(db, publish)


@implementer(ISessionMaintenance)
class Maintenance:
    """The maintenance schedule of one database in this process."""

    def __init__(self, db, pack_interval=DEFAULT_PACK_INTERVAL,
                 sweep_interval=DEFAULT_SWEEP_INTERVAL,
                 publish_interval=DEFAULT_PUBLISH_INTERVAL,
                 counters=process_counters):
        self._db = weakref.ref(db)
        self.pack_interval = check_pack_interval(pack_interval)
        self.sweep_interval = sweep_interval
        self.publish_interval = publish_interval
        self.counters = counters
        self._published = (None, None)  # (counters version, when)
        self._thread = None
        self._stop = threading.Event()
        self._failing = False

    @property
    def db(self):
        return self._db()

    def tick(self, now=None):
        """One round of maintenance at ``now`` (default: the session
        clock); returns {'sweep': ..., 'pack': ..., 'published': bool}."""
        db = self.db
        if db is None:
            return None
        now = clock.now() if now is None else now
        done = {'sweep': sweep_all(db, now, self.sweep_interval),
                'pack': scheduled_pack(db, self.pack_interval, now),
                'published': False}
        version, when = self._published
        if self.counters.version != version and (
                when is None or now - when >= self.publish_interval):
            version = self.counters.version
            publish_figures(db, self.counters.figures(), now)
            self._published = (version, now)
            done['published'] = True
        return done

    def start(self, every=TICK_SECONDS):
        """Tick every ``every`` seconds in a daemon thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, args=(every,), daemon=True,
                name='zodbsession-maintenance')
            self._thread.start()
        return self

    def stop(self, timeout=10):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def _run(self, every):
        # A failed tick is told at the next one, once the database is
        # seen still open: a tick that fails because the host is closing
        # the database meanwhile (its storage already gone, the close not
        # yet done) is no failure to warn of.
        failed = None
        while not self._stop.wait(every):
            db = self.db
            if db is None or database_closed(db):
                return      # gone or closed: nothing left to keep
            del db      # a tick takes its own reference
            if failed is not None and not self._failing:
                # A storage outage: said once per outage, with the
                # traceback of its first failure.
                log.warning('session maintenance failed; retrying every'
                            ' %s s\n%s', every, failed)
                self._failing = True
            failed = None
            try:
                self.tick()
                self._failing = False
            except Exception as error:
                # As text, for this record and the warning: the error
                # itself would keep the functions it passed through, and
                # through them the database, which could then never be
                # let go.
                failed = ''.join(
                    traceback.format_exception(error)).rstrip()
                log.debug('session maintenance tick failed\n%s', failed)


_running = weakref.WeakKeyDictionary()
_running_lock = threading.Lock()


def start_maintenance(db, pack_interval=DEFAULT_PACK_INTERVAL):
    """The maintenance of ``db`` in this process, started once however
    many hosts serve it (the shortest ``pack_interval`` asked for wins;
    0 from every host: no packing)."""
    pack_interval = check_pack_interval(pack_interval)
    with _running_lock:
        maintenance = _running.get(db)
        if maintenance is None:
            maintenance = _running[db] = Maintenance(db, pack_interval)
            maintenance.start()
        elif pack_interval and (not maintenance.pack_interval or
                                pack_interval < maintenance.pack_interval):
            maintenance.pack_interval = pack_interval
    return maintenance


def maintenance_of(db):
    """The maintenance started for ``db`` in this process, or None."""
    return _running.get(db)
