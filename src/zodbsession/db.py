"""Opening the session database from a URI (zodburi).

``file://`` (the default, ``var/sessions.fs`` under the current
directory), ``memory://``, ``zeo://host:port`` and RelStorage's
``postgres://user@host:port/dbname`` all work; a failure becomes one
``DatabaseOpenError`` line naming the URI and the cause.
"""
import os
import threading
import urllib.parse

import ZODB
import zodburi
from ZODB.POSException import ConflictError

DEFAULT_URI = 'file://var/sessions.fs'

# ZEO clients otherwise wait (and retry) for 30 seconds before failing.
DEFAULT_ZEO_WAIT_TIMEOUT = 10


class DatabaseOpenError(Exception):
    """The session database could not be opened; the message says why."""


def redact(uri):
    """The URI without its password, fit for messages and logs."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(':' + parts.password + '@', ':***@', 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _prepare(uri):
    scheme = uri.split(':', 1)[0].lower()
    if scheme == 'file':
        path = urllib.parse.urlsplit(uri)
        filename = (path.netloc + path.path) if path.netloc else path.path
        directory = os.path.dirname(filename)
        if directory:
            os.makedirs(directory, exist_ok=True)
    elif scheme == 'zeo' and 'wait_timeout' not in uri:
        separator = '&' if '?' in uri else '?'
        uri = f'{uri}{separator}wait_timeout={DEFAULT_ZEO_WAIT_TIMEOUT}'
    return uri


def _cause(exc):
    text = str(exc).strip().splitlines()
    text = text[0] if text else ''
    name = type(exc).__name__
    if 'LockError' in name:
        return 'the file is locked by another process'
    if 'ClientDisconnected' in name:
        return 'no ZEO server answered'
    return f'{name}: {text}' if text else name


def open_database(uri=None):
    """Open a ZODB.DB from a zodburi URI (default: ``DEFAULT_URI``)."""
    uri = uri or DEFAULT_URI
    try:
        storage_factory, db_kw = zodburi.resolve_uri(_prepare(uri))
        storage = storage_factory()
    except Exception as exc:
        raise DatabaseOpenError(
            f'cannot open session database {redact(uri)}: {_cause(exc)}'
        ) from exc
    try:
        return ZODB.DB(storage, **db_kw)
    except Exception as exc:
        storage.close()
        raise DatabaseOpenError(
            f'cannot open session database {redact(uri)}: {_cause(exc)}'
        ) from exc


def _unavailable_types():
    """Exception types meaning "the storage server cannot be reached"."""
    types = [ConnectionError]
    try:
        from ZEO.Exceptions import ClientDisconnected
        types.append(ClientDisconnected)
    except ImportError:
        pass
    try:
        import psycopg2
        types.extend([psycopg2.OperationalError, psycopg2.InterfaceError])
    except ImportError:
        pass
    try:
        from relstorage.adapters.interfaces import ReplicaClosedException
        from relstorage.adapters.interfaces import \
            UnableToAcquireCommitLockError
        # The commit lock timing out means a server too busy to serve the
        # request now: a 503 too (RelStorage does not mark it transient).
        types.extend([ReplicaClosedException, UnableToAcquireCommitLockError])
    except ImportError:
        pass
    return tuple(types)


_UNAVAILABLE = None


def is_storage_unavailable(exc):
    """Whether ``exc`` (or its cause) says the storage is unreachable.

    Such a request deserves a 503 and a later retry by the client, not a
    traceback.
    """
    global _UNAVAILABLE
    if _UNAVAILABLE is None:
        _UNAVAILABLE = _unavailable_types()
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ConflictError):
            # RelStorage raises its lock timeouts and deadlocks as
            # conflicts from a psycopg2 OperationalError: a retry, not
            # an outage.
            return False
        if isinstance(exc, _UNAVAILABLE) and _lost_connection(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


# SQLSTATEs of PostgreSQL errors that mean the server went away: class 08
# (connection exception) and the server shutting down, crashing or still
# starting up. Other OperationalErrors (lock timeouts, serialization
# failures, cancelled statements) come from a server that is up.
_PG_GONE_PREFIX = '08'
_PG_GONE = frozenset(['57P01', '57P02', '57P03'])


def _lost_connection(exc):
    code = getattr(exc, 'pgcode', None)
    return (code is None or code.startswith(_PG_GONE_PREFIX)
            or code in _PG_GONE)


# Databases opened by ``shared_database``: {uri: ZODB.DB}.
_shared = {}
_shared_lock = threading.Lock()


def shared_database(uri=None):
    """The process's open database for ``uri``, opened on first use.

    Hosts that open a database from their configuration use this, so
    that two of them naming one file in one process (two wrapped
    applications, an application factory called again in tests) share
    it, where a second FileStorage on the file would find it locked (they
    share its site's settings too). A database that was closed is opened
    again; ``memory://`` is never shared.
    """
    uri = uri or DEFAULT_URI
    if uri.lower().startswith('memory:'):
        # An in-process database of its own: nothing to share, and its
        # site's settings are only this host's.
        return open_database(uri)
    with _shared_lock:
        db = _shared.get(uri)
        if db is None or not _is_open(db):
            db = _shared[uri] = open_database(uri)
        return db


def _is_open(db):
    try:
        db.open().close()
    except Exception:
        # A closed DB fails in many ways (AttributeError, ValueError);
        # any of them means: open it again.
        return False
    return True
