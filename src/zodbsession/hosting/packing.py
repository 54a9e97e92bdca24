"""Packing the session storage: what ``zodbsession pack`` and the
background maintenance (``zodbsession.maintenance``) both run.

Every session write adds a record revision to the storage; sweeping
unlinks expired sessions; packing reclaims both. By storage:

- FileStorage: packed in place, without keeping the ``.old`` copy
  FileStorage otherwise leaves (as large as the original); pass
  ``keep_old=True`` to keep it.
- ZEO: the server packs its storage (``db.pack()`` asks it to).
- RelStorage: history-free (``keep-history false``) is recommended for
  sessions: a pack then only drops unreachable records (swept sessions);
  a history-preserving one also drops old revisions.
"""
import time

from ZODB.FileStorage import FileStorage

from zodbsession import clock
from zodbsession.records import MAINTENANCE_KEY
from zodbsession.records import MaintenanceRecord
from zodbsession.hosting.sitechanges import run_in_transaction

# Seconds between packs by default: one day keeps a busy FileStorage
# within a day's writes of its live size.
DEFAULT_PACK_INTERVAL = 24 * 3600


def check_pack_interval(value):
    """``value`` as seconds >= 0 (0: never pack), or a ValueError naming
    the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            not 0 <= value < float('inf')):
        raise ValueError(f'pack_interval must be a number of seconds >= 0'
                         f' (0: no scheduled packing), got {value!r}')
    return value


def maintenance_record(connection):
    """The database's MaintenanceRecord, created on first use."""
    root = connection.root()
    record = root.get(MAINTENANCE_KEY)
    if record is None:
        record = root[MAINTENANCE_KEY] = MaintenanceRecord()
    return record


def read_maintenance(db):
    """(last_sweep, last_pack) as plain dicts (or None), read only."""
    with db.transaction() as connection:
        record = connection.root().get(MAINTENANCE_KEY)
        if record is None:
            return None, None
        return (dict(record.last_sweep) if record.last_sweep else None,
                dict(record.last_pack) if record.last_pack else None)


def pack_storage(db, keep_old=False, days=0):
    """Pack ``db``'s storage, dropping revisions older than ``days`` days
    (0: all but the current); returns (bytes before, bytes after).

    A FileStorage keeps no ``.old`` copy unless ``keep_old``.
    """
    storage = db.storage
    if isinstance(storage, FileStorage):
        # A constructor option of FileStorage's, kept as a public
        # attribute that its pack reads.
        storage.pack_keep_old = bool(keep_old)
    before = db.getSize()
    db.pack(days=days)
    return before, db.getSize()


def claim_pack(db, interval, now=None, force=False):
    """Whether this process is to pack now: the last claim is older than
    ``interval`` seconds. The claim is committed before anything is
    packed: of two processes claiming at once, one commit conflicts, is
    retried, sees the other's claim, and does not pack."""
    now = clock.now() if now is None else now

    def claim(connection):
        record = maintenance_record(connection)
        last = record.pack_claimed_at
        if not force and last is not None and now - last < interval:
            return False
        record.pack_claimed_at = now
        return True
    return bool(interval or force) and run_in_transaction(db, claim)


def scheduled_pack(db, interval, now=None, force=False):
    """Pack if ``interval`` (seconds) has passed since the database's
    last pack (or at once if ``force``), recording it; returns the
    record, or None (not due)."""
    now = clock.now() if now is None else now
    if not claim_pack(db, interval, now, force):
        return None
    started = time.monotonic()
    before, after = pack_storage(db)
    result = {'at': now, 'seconds': round(time.monotonic() - started, 3),
              'size_before': before, 'size_after': after}

    def note(connection):
        maintenance_record(connection).last_pack = result
    run_in_transaction(db, note)
    return result
