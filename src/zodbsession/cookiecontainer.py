"""CookieSessionDataContainer: a package's session data in the browser.

Registered under a package id like any container, it keeps that package's
data in a signed (optionally encrypted) cookie instead of the database:
no storage write per request. The cookie is set only when the request's
transaction commits, and only when the data changed or its timeout must
be refreshed (once per ``resolution``, or half the timeout if that is
shorter); an abort leaves the browser's cookie as it was. The data is
bound to the client id, so it follows ``regenerate()`` and dies with
``invalidate()``.
"""
import copy
import functools
import hashlib
import json
import operator

import persistent
from zope.interface import implementer

from zodbsession import clock
from zodbsession import expiry
from zodbsession.cookiecodec import CookieCodec
from zodbsession.cookiecodec import normalize_encryption_keys
from zodbsession.clientid import set_session_cookie
from zodbsession.clientid import generate_secret
from zodbsession.interfaces import ICookieClientIdManager
from zodbsession.interfaces import ICookieSessionDataContainer
from zodbsession.interfaces import IPendingSessions
from zodbsession.jsondata import JSONSessionData
from zodbsession.jsondata import utf8_encodable
from zodbsession.context import context_of
from zodbsession.pending import SessionCookieAttributes
from zodbsession.remembered import Remembered
from zodbsession.signing import SecretsSetting
from zodbsession.validated import Setting
from zodbsession.validated import check

BROWSER_COOKIE_LIMIT = 4096
# Cookie values read lately, remembered with what reading them found, so
# that a client's next requests with the same cookie skip checking its
# signature and decoding it, as client ids do: per container, at most this
# many (of at most ``max_size`` characters each: 8 MB by default). Only
# values that passed enter; full, it is emptied and starts again.
REMEMBERED_COOKIES = 2048
# JSON values a request can change without assigning them.
_CHANGEABLE_IN_PLACE = (list, dict)
COOKIE_ATTRIBUTES = ('path', 'domain', 'secure', 'httpOnly', 'sameSite')


class SessionTooLarge(ValueError):
    """The encoded session does not fit in a cookie."""


@functools.lru_cache(maxsize=4096)
def _client_digest(client_id):
    # What binds a cookie session to its client id; remembered, as the
    # same clients come back request after request.
    return hashlib.blake2b(client_id.encode('utf-8'),
                           digest_size=9).hexdigest()


@functools.lru_cache(maxsize=64)
def _codec_and_reads(secrets, encryption_keys, cookie_name, max_size):
    """The process's one codec for these settings, and the cookie values
    read with it lately: shared by every copy of a container (a site's
    snapshot is taken again every few seconds, and copies its cookie
    containers), so that what was verified once is remembered for as
    long as the settings stay."""
    return CookieCodec(secrets, encryption_keys, cookie_name,
                       max_length=max_size), Remembered(REMEMBERED_COOKIES)


# One spelling of JSON data (equal data, equal text), so a change is seen
# by comparing texts. One encoder for every request.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(',', ':'),
                              ensure_ascii=False, allow_nan=False)
_canonical = _CANONICAL.encode


def _document_head(issued, created, digest):
    """The document's JSON up to its packages' text: the packages come
    last, so the text read back yields them without encoding them again.
    (``issued`` and ``created`` are ints, ``digest`` is hex.)"""
    return '{"t":%d,"o":%d,"c":"%s","d":' % (issued, created, digest)


@implementer(ICookieSessionDataContainer)
class CookieSessionDataContainer(expiry.ExpirySettings,
                                 persistent.Persistent):
    """Session data kept client-side, in one cookie per container.

    ``secret``: one or more signing secrets (the first signs; default:
    generated, so store the container in the database to share it).
    ``encryption_key``: one or more 32-byte AES-256-GCM keys (bytes or
    URL-safe base64; the first encrypts), or None to sign only.
    ``lifetime``: seconds after its creation when the session ends,
    however active (0: no limit); the creation time travels in the cookie.
    Cookie attributes default to the client id manager's; ``path``,
    ``domain``, ``secure``, ``httpOnly`` and ``sameSite`` override them.
    """

    # Validated when set (zodbsession.validated), read as plain attributes.
    cookie_name = Setting(ICookieSessionDataContainer['cookie_name'])
    max_size = Setting(ICookieSessionDataContainer['max_size'])

    def __init__(self, secret=None, encryption_key=None,
                 cookie_name='zodbsession_data', timeout=3600, resolution=60,
                 max_size=BROWSER_COOKIE_LIMIT, lifetime=0,
                 **cookie_attributes):
        for name, value in cookie_attributes.items():
            if name not in COOKIE_ATTRIBUTES:
                raise TypeError(
                    f'CookieSessionDataContainer has no setting {name!r};'
                    f' cookie attributes: {", ".join(COOKIE_ATTRIBUTES)}')
            check(ICookieClientIdManager[name], value, context=self)
        self.secret = secret if secret is not None else generate_secret()
        self.encryption_key = encryption_key
        self.cookie_name = cookie_name
        self.timeout = timeout
        self.resolution = resolution
        self.lifetime = lifetime
        self.max_size = max_size
        self.cookie_attributes = dict(cookie_attributes)

    def __repr__(self):
        return (f'<{type(self).__name__} cookie={self.cookie_name!r}'
                f' encrypted={bool(self._encryption_keys)}>')

    secret = SecretsSetting(forget='_v_shared')

    @property
    def encryption_key(self):
        return self._encryption_keys

    @encryption_key.setter
    def encryption_key(self, value):
        self._encryption_keys = normalize_encryption_keys(value)
        self._v_shared = None

    # A site snapshot's copy (zodbsession.hosting.snapshot) never
    # changes: what requests derive from its settings is kept on it then,
    # not derived again on every request.
    _v_frozen = False
    _v_view_settings = None
    _v_attributes_for = None    # (manager, application path, attributes)

    def freeze(self):
        """Say that this object's settings never change again (it is a
        site snapshot's copy): what requests derive from them is kept."""
        self._v_frozen = True

    def view_settings(self):
        """What a request's view works with, read once: (cookie name,
        max size, timeout, lifetime, (codec, remembered reads), seconds
        before an unchanged cookie is sent again)."""
        settings = self._v_view_settings
        if settings is None:
            settings = (self.cookie_name, self.max_size, self.timeout,
                        self.lifetime, self._shared(), _refresh_after(self))
            if self._v_frozen:
                self._v_view_settings = settings
        return settings

    def _shared(self):
        # (codec, remembered reads) of these settings, the process's. (The
        # keys' setters forget it; the cookie's name and size are plain
        # attributes, checked.)
        shared = getattr(self, '_v_shared', None)
        name, size = self.cookie_name, self.max_size
        if shared is None or shared[0] is not name or shared[1] != size:
            shared = self._v_shared = (name, size, _codec_and_reads(
                self._secrets, self._encryption_keys, name, size))
        return shared[2]

    @property
    def codec(self):
        return self._shared()[0]

    @property
    def remembered_reads(self):
        """{cookie value: what reading it found (``_decode``)} of values
        that passed lately (with these keys and this cookie name)."""
        return self._shared()[1]

    def bind(self, request):
        """The ISessionDataContainer of this request's cookie."""
        return context_of(request).view(self, CookieSessionView)

    # Used without a request, there is no cookie to read or write.

    def _no_request(self, *args, **kw):
        raise TypeError(
            'CookieSessionDataContainer keeps data in the request\'s cookie:'
            ' use it through ISession(request)[pkg_id], or bind(request)')

    __getitem__ = __setitem__ = __delitem__ = get = _no_request

    def __contains__(self, client_id):
        self._no_request()

    def sweep(self):
        """Nothing to do: expired cookies are ignored when read."""

    def sweep_expired(self):
        """Nothing to remove: 0."""
        return 0


@implementer(IPendingSessions)
class CookieSessionView:
    """One request's view of a cookie container; it takes part in the
    request's transaction through the context's one data manager."""

    # What a view starts with; a request that reads a cookie sets little
    # more.
    _loaded = False
    # What the browser holds, if valid: (issued, created, digest) ...
    _document = None
    # ... its packages as canonical JSON text (for change detection and
    # fresh copies) ...
    _packages_text = None
    # ... whether they hold values that can change in place, and if not,
    # those packages decoded (shared: only copies are handed out).
    _changeable = False
    _flat_packages = None
    _data = None            # JSONSessionData in use, if any
    _read_data = None       # ... the one last made from the cookie
    _client_id = None
    _removed = False
    _held = None            # (client id, pending JSONSessionData)
    _value = None           # cookie value to send after commit
    _sent = None            # ... and (document, packages text, changeable)

    def __init__(self, container, context):
        self.container = container
        self.context = context
        self.request = context.request
        self.transaction_manager = context.transaction_manager_for(container)
        # The settings the request works with, read once (each read of a
        # persistent object's attribute costs more than a plain one's): a
        # request sees one configuration, as it sees one snapshot of the
        # site; a change made meanwhile applies from the next request.
        (self._cookie_name, self._max_size, self._timeout, self._lifetime,
         (self._codec, self._reads),
         self._refresh_after) = container.view_settings()

    @property
    def timeout(self):
        return self.container.timeout

    @property
    def disable_implicit_sweeps(self):
        return self.container.disable_implicit_sweeps

    @property
    def resolution(self):
        return self.container.resolution

    @property
    def lifetime(self):
        return self.container.lifetime

    def sweep(self):
        pass

    def sweep_expired(self):
        return 0

    # -- reading the cookie -------------------------------------------

    def _read(self):
        """What the browser holds, if valid and live: (issued, created,
        digest); the packages' text and what goes with it are set too."""
        if not self._loaded:
            self._loaded = True
            value = self.context.cookies.get_cookie(self._cookie_name)
            if value and len(value) <= self._max_size:
                reads = self._reads
                # (Exactly str: a subclass could equal a remembered value.)
                read = reads.get(value) if type(value) is str else None
                if read is None:
                    read = self._decode(self._codec, value)
                    if read is not None and type(value) is str:
                        reads.remember(value, read)
                if read is not None:
                    now = clock.now()
                    issued, created = read[0], read[1]
                    timeout, lifetime = self._timeout, self._lifetime
                    # (expiry.outlived, written out.)
                    if not (lifetime and created and created + lifetime < now
                            or timeout and now - issued > timeout):
                        self._document = read[:3]
                        self._packages_text = read[3]
                        self._changeable = read[4]
                        self._flat_packages = read[5]
        return self._document

    @staticmethod
    def _decode(codec, value):
        """(issued, created, digest, packages text, changeable, the
        packages if none is changeable) of a valid cookie value, or
        None."""
        document, text = codec.decode_text(value)
        if document is None:
            return None
        # Exact types: JSON gives nothing else, and true is not a time.
        issued = document.get('t')
        created = document.get('o', 0)
        digest = document.get('c')
        packages = document.pop('d', None)
        if (type(issued) is not int or type(created) is not int
                or type(packages) is not dict or type(digest) is not str
                or len(document) != 3):     # (t, o, c; nothing else)
            return None
        for items in packages.values():
            if type(items) is not dict:
                return None
        if ('\\ud' in text or '\\uD' in text) and not utf8_encodable(
                _canonical(packages)):
            # An escaped lone surrogate: data no commit could send again.
            # (Only text that holds the escape's letters is checked.)
            return None
        changeable = _holds_changeable(packages)
        packages_text = _packages_text(issued, created, digest, text,
                                       packages)
        if changeable:
            # Made again from this text on each use: it must be the
            # packages alone (a key twice in the document, or one after
            # them, leaves more).
            try:
                json.loads(packages_text)
            except ValueError:
                return None
        # Packages of flat values only are kept decoded: SessionData takes
        # copies of their dicts, and the values themselves cannot change.
        return (issued, created, digest, packages_text, changeable,
                None if changeable else packages)

    def _join(self):
        self.context.join(self, self.transaction_manager)

    def get(self, client_id, default=None):
        if self._removed:
            return default
        client_id = str(client_id)
        data = self._data
        if data is not None and self._client_id == client_id:
            return data
        document = self._read()
        if document is None or document[2] != _client_digest(client_id):
            held = self._held
            return held[1] if held and held[0] == client_id else default
        self._client_id = client_id
        # The session's own objects: in-place changes to them are found at
        # commit by comparing with the canonical text read from the
        # cookie; after an abort, a fresh copy is made from that text.
        # Fresh objects from the text, each time the session is handed
        # out (after an abort, or a commit that sent new data, too), when
        # some can change in place.
        packages = self._flat_packages
        if packages is None:
            packages = json.loads(self._packages_text)
        data = self._data = self._read_data = JSONSessionData.from_plain(
            packages, document[0], document[1])
        if self._changeable or (int(clock.now()) - document[0]
                                > self._refresh_after):
            # The commit has to look at this data although nothing may
            # change it: it holds values that can change in place (then
            # the commit compares), or the cookie is due to be sent again
            # (by now: the session may be made again later in the
            # request, after a deletion or an abort).
            self._join()
        else:
            # A request that only reads flat values, within the cookie's
            # resolution, sends nothing: it joins no transaction (and runs
            # no commit) unless it changes something.
            data.store_on_change(self._joined_on_change)
        return data

    def _joined_on_change(self, data):
        self.context.join(self, self.transaction_manager)

    def __getitem__(self, client_id):
        data = self.get(client_id)
        if data is None:
            raise KeyError(client_id)
        return data

    def __contains__(self, client_id):
        data = self.get(client_id)
        # Held data is not stored.
        return data is not None and not (
            self._held is not None and data is self._held[1])

    def __setitem__(self, client_id, session_data):
        self._join()
        if not isinstance(session_data, JSONSessionData):
            plain = session_data.to_plain()
            for pkg_id, items in plain.items():
                for key, value in items.items():
                    JSONSessionData()._check_value(pkg_id, key, value)
            session_data = JSONSessionData.from_plain(
                plain, created=session_data.getCreated())
        session_data.setLastAccessTime(clock.now())
        self._data = session_data
        self._client_id = str(client_id)
        self._removed = False
        self._held = None

    def new_session_data(self):
        return JSONSessionData()

    def hold(self, client_id, session_data):
        self._join()        # the hold ends with the transaction
        self._held = (str(client_id), session_data)

    def __delitem__(self, client_id):
        if self.get(client_id) is None:
            raise KeyError(client_id)
        self._join()        # the cookie is deleted if this commits
        self._data = None
        self._removed = True

    def release(self):
        # The request is over (RequestContext.release): its session data
        # goes with it (a later get makes it again from what was sent).
        if self._data is not None:
            self._data.release()
            self._data = None
        self._read_data = None

    # -- its part in the transaction (zodbsession.context) -------------

    def savepoint(self):
        """What the view holds now, to go back to (``rollback``): the
        session data handed out keeps its identity and gets its values of
        now back."""
        data = self._data
        values = None
        if data is not None:
            values = (copy.deepcopy(data.to_plain()),
                      data.getLastAccessTime())
        held = self._held
        if held is not None:
            # A pending session: stored, perhaps, before the rollback.
            held = (held, copy.deepcopy(held[1].to_plain()),
                    held[1].getLastAccessTime())
        state = (data, values, self._client_id, self._removed, held)
        return _ViewSavepoint(self, state)

    def abort(self, txn):
        self._reset()

    def tpc_vote(self, txn):
        # Everything that can fail fails here, before any storage
        # finishes and before any header exists.
        self._value = None
        data = self._data
        if self._removed or data is None:
            return
        plain, changeable = data.checked_packages()
        packages_text = _canonical(plain)
        now = int(clock.now())
        previous = self._document
        digest = _client_digest(self._client_id)
        if (previous is not None and previous[2] == digest
                and self._packages_text == packages_text
                and now - previous[0] <= self._refresh_after):
            return      # the browser holds this, and it is fresh enough
        created = int(data.getCreated())
        value = self._codec.encode_text(
            _document_head(now, created, digest) + packages_text + '}')
        name = self._cookie_name
        size = len(name) + 1 + len(value)
        if size > self._max_size:
            raise SessionTooLarge(
                f'cookie session container {name!r}: the encoded session'
                f' is {size} bytes, over the {self._max_size}-byte'
                ' cookie limit; store less in it, or register a'
                ' server-side container for the package')
        self._value = value
        self._sent = ((now, created, digest), packages_text, changeable)

    def tpc_finish(self, txn):
        try:
            cookies = self.context.cookies
            attributes = self._cookie_attributes(cookies)
            name = self._cookie_name
            if self._removed:
                if self._read() is not None:
                    cookies.delete_cookie(name, path=attributes['path'],
                                          domain=attributes['domain'])
            elif self._value is not None:
                # The transaction has committed: nothing may take the
                # cookie back (and the response need not follow later
                # transactions for it).
                set_session_cookie(cookies, name, self._value, attributes,
                                   committed=True)
                # What the browser now holds (the live values stay the
                # session's).
                (self._document, self._packages_text,
                 self._changeable) = self._sent
                self._flat_packages = None
        finally:
            self._value = self._sent = None
            self._held = None
            if self._data is not None:
                # The session goes on in the request's next transaction
                # (after persist()): its next change takes part in that,
                # and so does a value read there that can change in place
                # (``session[pkg]['tabs'].append(2)``), as a database
                # session's does.
                self._data.store_on_change(self._joined_on_change)
                self._data.on_mutable_read(self._joined_on_change)

    def tpc_abort(self, txn):
        self._reset()

    def _reset(self):
        # Forget this transaction's changes; the cookie is re-read. The
        # session read from it stays the one handed out, with the cookie's
        # values back in place: the application may hold it (a savepoint
        # rolled back to before the view took part ends here too), and
        # its next change must count.
        data = self._data
        self._data = None
        if data is not None and data is self._read_data and (
                self._document is not None):
            packages = self._flat_packages
            if packages is None:
                packages = json.loads(self._packages_text)
            data.set_plain(packages, self._document[0])
            data.store_on_change(self._joined_on_change)
            data.on_mutable_read(self._joined_on_change)
            self._data = data
        self._removed = False
        self._held = None
        self._value = self._sent = None

    def _cookie_attributes(self, cookies):
        manager = self.context.query_client_id_manager()
        container = self.container
        frozen = container._v_frozen
        if frozen:
            # A snapshot's container, and most likely its manager: both
            # unchanging, the attributes are those made last time for the
            # same manager and path.
            kept = container._v_attributes_for
            if (kept is not None and kept[0] is manager
                    and kept[1] == cookies.application_path):
                return kept[2]
        attributes = self._changing_cookie_attributes(cookies, manager)
        if frozen and getattr(manager, '_v_frozen', manager is None):
            container._v_attributes_for = (
                manager, cookies.application_path, attributes)
        return attributes

    def _changing_cookie_attributes(self, cookies, manager):
        inherited = None
        if ICookieClientIdManager.providedBy(manager):
            inherited = _manager_attributes(manager)
        container = self.container
        # What the attributes are made of; they are made again only when
        # it changes (settings rarely do). (Nothing here keeps the manager
        # alive: with a manager per connection, that would keep its
        # connection.)
        sources = (inherited, container.cookie_attributes,
                   cookies.application_path, self._timeout)
        made = getattr(container, '_v_cookie_attributes', None)
        if made is None or made[0] != sources:
            # A copy of the container's own attributes: compared with the
            # live dict next time, it sees a change made in place.
            _inherited, own, application_path, timeout = sources
            made = container._v_cookie_attributes = (
                (inherited, dict(own), application_path, timeout),
                self._make_cookie_attributes(*sources))
        return made[1]

    @staticmethod
    def _make_cookie_attributes(inherited, own, application_path, timeout):
        settings = dict(zip(COOKIE_ATTRIBUTES, inherited or ()))
        settings.update(own)
        same_site = settings.get('sameSite', 'Lax')
        return SessionCookieAttributes(
            path=settings.get('path') or application_path or '/',
            domain=settings.get('domain') or None,
            secure=bool(settings.get('secure')) or same_site == 'None',
            httponly=settings.get('httpOnly', True),
            samesite=same_site,
            max_age=timeout or None)


_manager_attributes = operator.attrgetter(*COOKIE_ATTRIBUTES)


def _refresh_after(container):
    """Seconds after which an unchanged cookie is sent again: the
    container's resolution, but at most half its timeout. (The browser
    and the server count the timeout from the cookie's last sending: with
    a resolution as long as the timeout, a client active every few
    seconds lost its session.)"""
    timeout, resolution = container.timeout, container.resolution
    return min(resolution, timeout // 2) if timeout else resolution


class _ViewSavepoint:
    """A savepoint of a cookie view (see ``CookieSessionView.savepoint``);
    it can be rolled back to more than once."""

    def __init__(self, view, state):
        self.view = view
        self.state = state

    def rollback(self):
        view = self.view
        stored = view._data
        data, values, view._client_id, view._removed, held = self.state
        view._data = data
        if data is not None:
            packages, last_access = values
            data.set_plain(copy.deepcopy(packages), last_access)
        view._held = None
        if held is not None:
            (client_id, pending), packages, last_access = held
            view._held = (client_id, pending)
            if pending is stored and pending is not data:
                # Stored since: pending again, with its values of then,
                # and stored by its next change (the Session that held
                # it let go of it when it was stored).
                pending.set_plain(copy.deepcopy(packages), last_access)
                pending.store_on_change(
                    lambda pending: view.__setitem__(client_id, pending))


def _holds_changeable(packages):
    """Whether JSON packages hold a value that can change in place."""
    for items in packages.values():
        for value in items.values():
            if type(value) in _CHANGEABLE_IN_PLACE:
                return True
    return False


def _packages_text(issued, created, digest, text, packages):
    """The canonical text of a valid cookie's packages: as written, when
    the cookie has the layout tpc_vote writes (then no encoding is
    needed), else encoded again."""
    head = _document_head(issued, created, digest)
    if text.startswith(head) and text.endswith('}'):
        return text[len(head):-1]
    return _canonical(packages)
