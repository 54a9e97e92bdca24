"""Opening the session database from a URI (zodburi).

``file://`` (the default, ``var/sessions.fs`` under the current
directory), ``memory://``, ``zeo://host:port`` and RelStorage's
``postgres://user@host:port/dbname`` all work; a failure becomes one
``DatabaseOpenError`` line naming the URI and the cause.
"""
import errno
import os
import threading
import urllib.parse

import ZODB
import ZODB.utils
import zodburi
from ZODB.FileStorage.FileStorage import FileStorageQuotaError
from ZODB.FileStorage.FileStorage import packed_version as FILESTORAGE_MAGIC
from ZODB.POSException import ConflictError
from ZODB.POSException import POSKeyError

from zodbsession.hosting.coldstart import retry_races

DEFAULT_URI = 'file://var/sessions.fs'

# Seconds to wait for a storage server that does not answer, unless the
# URI says (ZEO's wait_timeout, PostgreSQL's connect_timeout). Left to
# themselves, ZEO clients wait 30 seconds, and PostgreSQL's forever.
DEFAULT_SERVER_TIMEOUT = 10
DEFAULT_ZEO_WAIT_TIMEOUT = DEFAULT_SERVER_TIMEOUT


class DatabaseOpenError(Exception):
    """The session database could not be opened; the message says why."""


class DatabaseNotFound(DatabaseOpenError):
    """``open_database(create=False)`` found no database to open."""


def redact(uri):
    """The URI without its password, fit for messages and logs."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(':' + parts.password + '@', ':***@', 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _scheme(uri):
    return uri.split(':', 1)[0].lower()


def _file_path(uri):
    """The file name of a ``file://`` URI (relative to the current
    directory unless it starts with a slash), as zodburi reads it:
    everything up to the query, '#' and '%' included."""
    rest = uri.split('://', 1)[1] if '://' in uri else ''
    return os.path.normpath(rest.split('?', 1)[0])


def _check_file(uri, filename, create):
    """Refuse, before anything is created, a ``file://`` path FileStorage
    would fail on only after making its lock and temporary files beside
    it: a directory, or a file that is not a FileStorage's."""
    if os.path.isdir(filename):
        raise DatabaseOpenError(
            f'cannot open session database {redact(uri)}: {filename} is a'
            ' directory; name a FileStorage file (for instance'
            f' {os.path.join(filename, "sessions.fs")})')
    if os.path.isfile(filename):
        with open(filename, 'rb') as file:
            magic = file.read(len(FILESTORAGE_MAGIC))
        if magic and magic != FILESTORAGE_MAGIC:
            raise DatabaseOpenError(
                f'cannot open session database {redact(uri)}: {filename} is'
                ' not a FileStorage file')
    elif not create:
        raise DatabaseNotFound(
            f'cannot open session database {redact(uri)}: there is no file'
            f' {filename}')
    blobs = _query(uri).get('blobstorage_dir')
    if not create and blobs and not os.path.isdir(blobs):
        # (BlobStorage would make it, and so an empty blob store.)
        raise DatabaseNotFound(
            f'cannot open session database {redact(uri)}: there is no blob'
            f' directory {blobs}')


def _make_directories(filename):
    """Make the missing directories of ``filename``; returns those made,
    deepest first (``_remove_directories`` takes them back)."""
    missing = []
    directory = os.path.dirname(os.path.abspath(filename))
    while not os.path.exists(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    made = []
    for directory in reversed(missing):
        try:
            os.mkdir(directory)
        except FileExistsError:
            continue        # another process starting at the same moment
        made.insert(0, directory)
    return made


def _remove_directories(made):
    for directory in made:
        try:
            os.rmdir(directory)     # only if still empty
        except OSError:
            return


def _query(uri):
    """{name: value} of the URI's query parameters."""
    query = uri.split('?', 1)[1] if '?' in uri else ''
    return dict(urllib.parse.parse_qsl(query))


def _with_parameter(uri, name, value):
    """``uri`` with the query parameter ``name=value``, unless it has
    ``name`` already."""
    query = uri.split('?', 1)[1] if '?' in uri else ''
    if name in _query(uri):
        return uri
    separator = '&' if query else '?'
    return f'{uri}{separator}{name}={value}'


_TIMEOUT_PARAMETERS = {'zeo': 'wait_timeout', 'postgres': 'connect_timeout'}


def _prepare(uri, create, read_only, server_timeout):
    scheme = _scheme(uri)
    if scheme == 'file':
        _check_file(uri, _file_path(uri), create)
    timeout = _TIMEOUT_PARAMETERS.get(scheme)
    if timeout is not None:
        uri = _with_parameter(uri, timeout, server_timeout)
    if read_only and scheme != 'memory':
        # (A new memory storage holds nothing to protect, and zodburi
        # takes no read_only for it.)
        uri = _with_parameter(uri, 'read_only', 1)
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


class _NoRoot(Exception):
    """The storage holds no root object: nothing was ever stored in it."""


def open_database(uri=None, create=True, read_only=False,
                  server_timeout=DEFAULT_SERVER_TIMEOUT):
    """Open a ZODB.DB from a zodburi URI (default: ``DEFAULT_URI``).

    Several processes may open a new, empty database at the same moment
    (a cluster's cold start): the races to create RelStorage's tables and
    ZODB's root object are retried (``coldstart.retry_races``).

    With ``create=False`` the database must exist already: a ``file://``
    path that is not a file, or a storage that holds nothing (a new ZEO
    server, an empty PostgreSQL database), is a DatabaseNotFound error,
    and no file, directory or record is created. ``read_only`` opens the
    storage read-only. ``server_timeout``: seconds to wait for a ZEO or
    PostgreSQL server, unless the URI sets ``wait_timeout`` (ZEO) or
    ``connect_timeout`` (PostgreSQL).
    """
    uri = uri or DEFAULT_URI
    made = []
    try:
        storage_factory, db_kw = zodburi.resolve_uri(
            _prepare(uri, create, read_only, server_timeout))
        if create and _scheme(uri) == 'file':
            # Only once the URI is understood: a typo in it makes nothing.
            made = _make_directories(_file_path(uri))
        try:
            return retry_races(
                lambda: _new_db(storage_factory, db_kw, create),
                f'opening {redact(uri)}')
        except BaseException:
            _remove_directories(made)
            raise
    except DatabaseOpenError:
        raise
    except _NoRoot:
        raise DatabaseNotFound(
            f'cannot open session database {redact(uri)}: it is empty'
            f' (nothing was ever stored in it)') from None
    except Exception as exc:
        raise DatabaseOpenError(
            f'cannot open session database {redact(uri)}: {_cause(exc)}'
        ) from exc


def _new_db(storage_factory, db_kw, create):
    """One try at a storage and a DB on it.

    ``ZODB.DB()`` creates the root object of an empty storage, and
    fails with a ConflictError when another process did so first. The
    half-made DB then holds the storage and connections; it adds itself
    to the ``databases`` mapping before that step, so it can be closed.
    """
    storage = storage_factory()
    if not create:
        try:
            ZODB.utils.load_current(storage, ZODB.utils.z64)
        except POSKeyError:
            storage.close()
            raise _NoRoot() from None
        except BaseException:
            storage.close()
            raise
    databases = {}
    try:
        return ZODB.DB(storage, databases=databases, **db_kw)
    except BaseException:
        half_made = databases.get(db_kw.get('database_name', 'unnamed'))
        if half_made is not None:
            half_made.close()
        else:
            storage.close()
        raise


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
    """Whether ``exc`` (or its cause) says the storage is unreachable, or
    can take no writes (a full disk, a used-up quota).

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
        if _storage_full(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


# A storage that takes no writes until its operator acts: its disk is
# full or read-only, its quota is used up. Its clients can only wait, as
# for a server that went away (and a read still works).
_FULL_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, 'EDQUOT', None),
                      errno.EROFS) if code is not None)


def _storage_full(exc):
    return isinstance(exc, FileStorageQuotaError) or (
        isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS)


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
    again; one whose server is down stays the one (it reconnects when the
    server is back); ``memory://`` is never shared.
    """
    uri = uri or DEFAULT_URI
    if uri.lower().startswith('memory:'):
        # An in-process database of its own: nothing to share, and its
        # site's settings are only this host's.
        return open_database(uri)
    with _shared_lock:
        db = _shared.get(uri)
        # (Closed, not failing: during an outage of its server the
        # database stays the process's, and reconnects by itself.)
        if db is None or database_closed(db):
            db = _shared[uri] = open_database(uri)
        return db


def database_closed(db):
    """Whether ``db`` was closed.

    An open DB is named in its own ``databases`` mapping (ZODB's public
    multi-database API) under its ``database_name``; ``DB.close()``, once
    its storage is closed, gives the DB a new, empty mapping of its own
    (the mapping the other databases of a multi-database share keeps
    it). ZODB has no public attribute that says so more directly. Unlike
    a failing ``db.open()``, this tells a closed database from one whose
    storage is unavailable for a while (a PostgreSQL restart under
    RelStorage).
    """
    return db.databases.get(db.database_name) is not db


def invalidation_barrier(db):
    """A callable that returns once this process knows of every
    transaction other processes committed before the call; None when
    ``db``'s storage needs none.

    A ZEO server sends other clients' commits to this process
    asynchronously; one round trip to it (``ping``) orders them, so a
    request that starts after another process's request ended sees its
    commit. FileStorage serves one process; RelStorage polls the
    database itself.
    """
    try:
        from ZEO.ClientStorage import ClientStorage
    except ImportError:
        return None
    storage = db.storage
    return storage.ping if isinstance(storage, ClientStorage) else None
