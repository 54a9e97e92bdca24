"""Log out everywhere: the sessions of one principal, listed and revoked.

At login the application files the client's session under the user
(``remember_principal``, after ``regenerate()``); later it can list that
user's live sessions (``sessions_of``) and end all of them but, if it
likes, the current one (``revoke_sessions``): their data goes from every
container in the database, so the other browsers of that user start with
an empty session on their next request, in any process (ZEO, RelStorage).

The index lives in the database root (``zodbsession.records``):
principal id -> that principal's client ids. Listing and revoking read
and write only that principal's entry and sessions, never the others.
An entry is checked when it is older than the longest session lifetime
of the site's containers: if its session still lives it is filed again,
else it goes; the maintenance sweep does this, at a cost of what
expires.

Limits, by container:

- Database containers (the default): revoked in every process, as soon
  as the process learns of the commit (RelStorage: at its next
  transaction; ZEO: when the server's invalidation arrives, a few
  milliseconds later, or at once with ZEO's ``server_sync``).
- RAM containers: a process's memory; revoked in the process that
  revokes, not in others (a RAM container serves one process anyway).
- Cookie containers: the data travels in the browsers, and a cookie
  container reads it without consulting the database (that is what makes
  it cost no storage), so another browser's cookie is not revoked: its
  data stays readable by that browser until the cookie expires (the
  current browser's is deleted when it is not kept). Revoking it would
  need the cookie read to check, say, a per-principal generation kept in
  the database (cached per process); that is not built yet. So keep what
  grants access (the logged-in user) in a database container, where
  revocation ends it, and in cookies only data that is harmless to keep
  (preferences, a cart).
"""
import hashlib

from ZODB.POSException import ReadConflictError
from zope.interface import implementer

from zodbsession import clock
from zodbsession import expiry
from zodbsession.environkeys import CONTEXT_KEY
from zodbsession.interfaces import IInspectableContainer
from zodbsession.interfaces import IRequestBoundContainer
from zodbsession.interfaces import ISession
from zodbsession.interfaces import ISessionDataContainer
from zodbsession.interfaces import ISessionInfo
from zodbsession.context import context_of
from zodbsession.records import PRINCIPALS_KEY
from zodbsession.records import PrincipalIndex
from zodbsession.records import PrincipalSessions
from zodbsession.site import ROOT_KEY

# Entries are filed in slices of this many seconds of their filing time.
INDEX_SLICE_SECONDS = 3600
# How long an entry stays unchecked when some container never expires.
NO_TIMEOUT_CHECK_AGE = 30 * 24 * 3600


@implementer(ISessionInfo)
class SessionInfo:
    """One live session of a principal (see ISessionInfo)."""

    def __init__(self, session_id, created, last_access, containers,
                 current):
        self.session_id = session_id
        self.created = created
        self.last_access = last_access
        self.containers = containers
        self.current = current

    def __repr__(self):
        return (f'<SessionInfo {self.session_id} created={self.created}'
                f' last_access={self.last_access}'
                f' containers={self.containers!r}'
                f'{" current" if self.current else ""}>')


def _check_principal(principal_id):
    if not isinstance(principal_id, str) or not principal_id:
        raise TypeError(f'principal_id must be a non-empty str, got'
                        f' {principal_id!r}')
    return principal_id


def _connection(request, reads=True):
    environ = getattr(request, 'environ', None)
    context = environ.get(CONTEXT_KEY) if isinstance(environ, dict) else None
    site = None if context is None else context.site
    if site is None:
        raise TypeError(
            'zodbsession.principals needs a request that zodbsession hosts'
            " (SessionMiddleware, or config.include('zodbsession.pyramid'))")
    connection = site.open()
    if reads and not site.up_to_date:
        # Opened for a client that sent no id, without waiting for other
        # processes' commits (see zodbsession.hosting.snapshot); the
        # index is theirs too, and a revocation must see every session
        # filed before it: the request runs again, up to date.
        raise ReadConflictError(
            'the principal index was read by a request whose connection'
            ' did not wait for other processes\' commits; retry')
    return connection


def _index(connection, create=False):
    root = connection.root()
    index = root.get(PRINCIPALS_KEY)
    if index is None and create:
        index = root[PRINCIPALS_KEY] = PrincipalIndex()
    return index


def _reference(client_id):
    return hashlib.blake2b(f'session-info:{client_id}'.encode('utf-8'),
                           digest_size=8).hexdigest()


def _named_containers(request):
    """[(names, bound container)] of the request's site, each once."""
    context = context_of(request)
    registry = context.registry
    grouped = {}
    for name, _unbound in registry.getUtilitiesFor(ISessionDataContainer):
        container = context.container(name)
        names, _ = grouped.setdefault(id(container), ([], container))
        names.append(name)
    return [(tuple(sorted(names)), container)
            for names, container in grouped.values()]


def _file(index, principal_id, client_id, now):
    entry = index.principals.get(principal_id)
    if entry is None:
        entry = index.principals[principal_id] = PrincipalSessions()
    if client_id not in entry.sessions:
        entry.sessions = dict(entry.sessions, **{client_id: int(now)})
        end = expiry.slice_end(now, INDEX_SLICE_SECONDS)
        filed = index.filed.get(end)
        if filed is None:
            filed = index.filed[end] = index.new_slice()
        filed.add((principal_id, client_id))


def _unfile(index, principal_id, client_ids):
    entry = index.principals.get(principal_id)
    if entry is None:
        return
    kept = {client_id: filed for client_id, filed in entry.sessions.items()
            if client_id not in client_ids}
    if kept:
        entry.sessions = kept
    else:
        del index.principals[principal_id]


def remember_principal(request, principal_id):
    """File the session of ``request``'s client under ``principal_id``
    (call at login, after ``regenerate()``); issues a client id if the
    client has none. Commits with the request."""
    principal_id = _check_principal(principal_id)
    client_id = ISession(request).client_id
    # (It only files: what another process filed meanwhile conflicts
    # with it or merges, so an index not yet up to date will do.)
    index = _index(_connection(request, reads=False), create=True)
    _file(index, principal_id, client_id, clock.now())


def _current_client_id(request):
    return ISession(request).client_id


def sessions_of(request, principal_id):
    """The live sessions of ``principal_id``, as ISessionInfo objects,
    oldest first. Reads that principal's entry and sessions only, and
    writes nothing."""
    principal_id = _check_principal(principal_id)
    index = _index(_connection(request))
    entry = index.principals.get(principal_id) if index is not None else None
    if entry is None:
        return []
    current = _current_client_id(request)
    containers = _named_containers(request)
    found = []
    for client_id in entry.sessions:
        holding, created, last_access = [], 0, 0
        for names, container in containers:
            data = (container.peek(client_id)
                    if IInspectableContainer.providedBy(container)
                    else container.get(client_id))
            if data is None:
                continue
            holding.extend(names)
            get_created = getattr(data, 'getCreated', None)
            created = max(created, get_created() if get_created else 0)
            last_access = max(last_access, data.getLastAccessTime())
        if holding:
            found.append(SessionInfo(
                _reference(client_id), int(created), int(last_access),
                tuple(sorted(holding)), client_id == current))
    return sorted(found, key=lambda info: (info.created, info.session_id))


def revoke_sessions(request, principal_id, keep_current=False):
    """End every session of ``principal_id`` (but the request's own when
    ``keep_current``): its data goes from every container that can reach
    it (see the module's notes on RAM and cookie containers), and its
    index entry with it. Returns the number of sessions revoked. Takes
    effect when the request's transaction commits."""
    principal_id = _check_principal(principal_id)
    index = _index(_connection(request))
    entry = index.principals.get(principal_id) if index is not None else None
    if entry is None:
        return 0
    current = _current_client_id(request) if keep_current else None
    revoked = [client_id for client_id in entry.sessions
               if client_id != current]
    containers = _named_containers(request)
    for client_id in revoked:
        for _names, container in containers:
            if client_id in container:
                del container[client_id]
    _unfile(index, principal_id, set(revoked))
    return len(revoked)


def indexed_sessions(db, principal_id):
    """How many sessions the index holds for ``principal_id`` (ended
    ones included until the maintenance sweep finds them ended)."""
    with db.transaction() as connection:
        index = _index(connection)
        entry = (index.principals.get(principal_id)
                 if index is not None else None)
        return 0 if entry is None else len(entry.sessions)


def _check_age(site):
    """Seconds after filing when an entry's session may have ended."""
    ages = [expiry.max_age(container.timeout, container.resolution)
            for container in site.containers().values()]
    if not ages or None in ages:
        return NO_TIMEOUT_CHECK_AGE
    return max(ages)


def sweep_index(connection, now):
    """Check the index entries filed longer ago than the longest session
    lifetime: refile those whose session lives on in a database
    container, drop the others. Returns the number dropped."""
    index = _index(connection)
    site = connection.root().get(ROOT_KEY)
    if index is None or site is None:
        return 0
    oldest = int(now) - _check_age(site)
    stored = [container for container in site.containers().values()
              if not IRequestBoundContainer.providedBy(container)]
    dropped = 0
    for end in list(index.filed.keys(max=oldest)):
        for principal_id, client_id in list(index.filed[end]):
            entry = index.principals.get(principal_id)
            if entry is None or client_id not in entry.sessions:
                continue
            if any(client_id in container for container in stored):
                _unfile(index, principal_id, {client_id})
                _file(index, principal_id, client_id, now)
            else:
                _unfile(index, principal_id, {client_id})
                dropped += 1
        del index.filed[end]
    return dropped
