"""The contract of zodbsession.

The names and behaviour of zope.session 6.0's interfaces are kept, so code
written against zope.session works unchanged; what zodbsession adds is
declared here too, before any implementation.
"""
import re

from zope import schema
from zope.interface import Attribute
from zope.interface import Interface
from zope.interface.common.mapping import IMapping
from zope.interface.common.mapping import IReadMapping
from zope.interface.common.mapping import IWriteMapping


class IClientIdManager(Interface):
    """Manages client identifiers."""

    def getClientId(request):
        """Return the client id for ``request`` as a string.

        When the request carries no valid id, a new one is generated and
        sent back to the client.
        """


class ISessionClientIdManager(IClientIdManager):
    """A client id manager that can also say whether a request brought an
    id, without issuing one, and issue, replace and forget ids.

    zodbsession's Session asks a manager that provides this (ours do)
    for what lets a read create nothing and lets ``invalidate()``,
    ``regenerate()`` and ``delete()`` work; a manager that provides only
    IClientIdManager (a zope.session user's own) still works: every
    request then gets an id, as in zope.session.
    """

    def getRequestId(request):
        """The request's valid client id (one set on its response during
        this request included), or None. Never issues one."""

    def getIncomingId(request):
        """The valid client id the client sent, ignoring any set during
        this request, or None."""

    def issuedAt(client_id):
        """Epoch seconds when ``client_id`` was issued, or None if that
        is unknown (an id not ours, or badly signed)."""

    def generateUniqueId():
        """A new client id (not yet sent to anyone)."""

    def setRequestId(request, client_id):
        """Send ``client_id`` to the client with the request's response."""

    def deleteRequestId(request):
        """Make the client forget its id, with the request's response."""

    def renewRequestId(request, client_id):
        """The client's session is in use: renew what its id needs
        renewed (a cookie with a finite lifetime is sent again)."""


class IClientId(Interface):
    """A unique id representing a session's client."""

    def __str__():
        """As a unique ASCII string."""


# What our cookies may be named: word characters only, so the name needs
# no quoting in any header.
_is_cookie_name = re.compile(r"^[A-Za-z0-9_]+$").search
# What a browser takes as a cookie's Path and Domain attributes: a path
# from '/' without ';' or control characters, a host name (a leading dot
# allowed). Anything else was sent escaped, and the browser kept the
# cookie for no page: every request a new session, no error anywhere.
_is_cookie_path = re.compile(r"^(/[^;\x00-\x1f\x7f]*)?$").search
_is_cookie_domain = re.compile(
    r"^(\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?)?$").search


def _cookie_name_field(holds):
    """The setting of a cookie's name (the client id's, a cookie
    container's): one rule for both."""
    return schema.ASCIILine(
        title="Cookie Name",
        description=(
            f"Name of the cookie that holds {holds}. ASCII letters,"
            " digits and '_' only."),
        required=True,
        min_length=1,
        max_length=30,
        constraint=_is_cookie_name,
    )


class ICookieClientIdManager(ISessionClientIdManager):
    """A client id manager that keeps the id in a signed cookie.

    Ids carry at least 256 bits from ``secrets`` and an HMAC-SHA256
    signature. A cookie that is missing, malformed, tampered with, signed
    with an unknown secret or too long is treated as absent: the client
    gets a fresh id, never an error.
    """

    namespace = _cookie_name_field('the client id')

    cookieLifetime = schema.Int(
        title="Cookie Lifetime",
        description=(
            "Seconds until the browser forgets the cookie. None: when the"
            " browser closes. 0: never."),
        min=0,
        required=False,
        default=None,
        missing_value=None,
    )

    thirdparty = schema.Bool(
        title="Third party cookie",
        description=(
            "The id cookie is issued by something else (a front-end"
            " server): never send one, only read it."),
        required=False,
        default=False,
    )

    domain = schema.TextLine(
        title="Effective domain",
        description=(
            "The cookie's Domain attribute, a host name, e.g."
            " '.example.org'."),
        required=False,
        constraint=_is_cookie_domain,
    )

    path = schema.TextLine(
        title="Cookie path",
        description=(
            "The cookie's Path attribute: '/' and what follows, without"
            " ';' or control characters. None: the application's root"
            " path as the request reports it."),
        required=False,
        default=None,
        constraint=_is_cookie_path,
    )

    secure = schema.Bool(
        title="Request Secure communication",
        description="Send the cookie over HTTPS only.",
        required=False,
        default=False,
    )

    postOnly = schema.Bool(
        title="Only set cookie on POST requests",
        required=False,
        default=False,
    )

    httpOnly = schema.Bool(
        title="The cookie cannot be accessed through client side scripts",
        required=False,
        default=True,
    )

    sameSite = schema.Choice(
        title="SameSite",
        description=(
            "The cookie's SameSite attribute; 'None' requires 'secure'."),
        values=('Lax', 'Strict', 'None'),
        required=False,
        default='Lax',
    )

    def setRequestId(request, client_id, lifetime=None):
        """Send ``client_id`` to the client in the cookie; ``lifetime``
        (seconds) overrides ``cookieLifetime`` for this cookie."""


class ISessionDataContainer(IReadMapping, IWriteMapping):
    """Stores data objects for sessions, keyed by client id.

    Usage::

      session_data_container[client_id][pkg_id][key] = value

    Keys are secret, so the container offers no ``keys()`` or ``values()``.
    Expired data is never returned.
    """

    timeout = schema.Int(
        title="Timeout",
        description=(
            "Seconds of inactivity after which a session expires."
            " 0 means never."),
        default=3600,
        required=True,
        min=0,
    )

    resolution = schema.Int(
        title="Timeout resolution (in seconds)",
        description=(
            "The last-access time is written at most once per this many"
            " seconds, so most reads write nothing; sessions may live up"
            " to this much longer than the timeout."),
        default=10 * 60,
        required=True,
        min=0,
    )

    lifetime = schema.Int(
        title="Absolute lifetime",
        description=(
            "Seconds after its creation when a session ends, however"
            " active it is. 0 means no limit."),
        default=0,
        required=False,
        min=0,
    )

    disable_implicit_sweeps = schema.Bool(
        title="Disable implicit sweeps",
        description=(
            "True: expired sessions are removed (and stop being returned)"
            " only when sweep() runs, as in zope.session."),
        default=False,
        required=False,
    )

    def __getitem__(client_id):
        """Return the client's ISessionData, or raise KeyError."""

    def __setitem__(client_id, session_data):
        """Store an ISessionData for the client, touching its access time."""

    def sweep():
        """Remove expired data, at a cost proportional to what expires.

        Returns None, as zope.session's does; ``sweep_expired`` says how
        much it removed.
        """

    def sweep_expired():
        """Remove expired data as ``sweep`` does; return how many units
        were removed (time slices of sessions; 0 for containers that keep
        nothing to remove)."""


class IPendingSessions(ISessionDataContainer):
    """A container that hands out a client's session before storing it.

    A client without a session whose request only reads gets a new,
    empty session that is stored (and its client id cookie sent) only
    when something is first stored in it: reading creates nothing.
    """

    def new_session_data():
        """Return a new, empty ISessionData of this container's kind,
        not stored: store it with ``container[client_id] = data``."""

    def hold(client_id, session_data):
        """Return ``session_data`` for ``client_id`` from ``get`` and
        ``[]`` until the current transaction ends, without storing it
        (``in`` stays false). Storing data for ``client_id`` ends the
        hold."""


class IFreshSessions(IPendingSessions):
    """A container that stores a session under a new id without looking
    for an older one.

    Storing with ``container[client_id] = data`` first removes whatever
    the container holds under ``client_id``; under an id that was just
    issued there is nothing to remove, and looking costs a lookup in
    every live time slice.
    """

    def store_new(client_id, session_data):
        """Store ``session_data`` under ``client_id`` as
        ``container[client_id] = session_data`` does, for an id issued
        (generated, never handed out before) in the current transaction.
        An id that a client brought, or one a client id manager may hand
        out again, must be stored with ``container[client_id] = data``."""


class IRequestBoundContainer(ISessionDataContainer):
    """A container whose data travels with the request (a cookie).

    The Session adapter asks it for a view bound to the current request;
    the view is the ISessionDataContainer that is used.
    """

    def bind(request):
        """Return an ISessionDataContainer for this request's data."""


class ICookieSessionDataContainer(IRequestBoundContainer):
    """A container that keeps each client's data in a signed (optionally
    encrypted) cookie of its own: the settings it validates.

    Its cookie attributes (``path``, ``domain``, ``secure``, ``httpOnly``,
    ``sameSite``) are those of ICookieClientIdManager, and default to the
    client id manager's.
    """

    cookie_name = _cookie_name_field('the data')

    max_size = schema.Int(
        title="Cookie size limit",
        description=(
            "The most bytes the cookie (its name, '=' and value) may take;"
            " a commit whose session does not fit fails. Browsers keep"
            " cookies of up to 4096."),
        min=256,
        max=65536,
        required=True,
        default=4096,
    )


class ISession(Interface):
    """Retrieves the ISessionPkgData of the current client for a package.

    For example::

        data = ISession(request)['shop.cart']
        data['items'] = ['apple']
    """

    def __getitem__(pkg_id):
        """Return the package's ISessionPkgData, creating it if needed.

        Nothing is stored, and no client id issued, until a value is
        stored in it: a request that only reads creates nothing. Within
        a transaction, every lookup of the package returns this object.
        """

    def get(pkg_id, default=None):
        """Return the package's ISessionPkgData, or ``default``.

        Never creates anything: no client id, no session data.
        """


class ISessionLifecycle(ISession):
    """An ISession with the session-wide operations that zope.session
    lacks and peers offer.

    (It extends ISession so that the Session adapter provides a single
    interface: ``provideAdapter(Session)``, as zope.session's users
    write it, registers it for ISession lookups.)
    """

    client_id = Attribute(
        "The client's id; reading it issues one to a client that has none.")

    def invalidate():
        """Remove the client's data from every registered container and
        issue a new client id (session fixation defence)."""

    def regenerate():
        """Keep the client's data under a new client id (call after
        login)."""

    def delete():
        """Remove the client's data everywhere and expire its cookie."""

    def persist():
        """Commit the current transaction now."""


class ISessionData(IMapping):
    """The data of one client: ISessionPkgData by package id."""

    def getLastAccessTime():
        """Return the approximate epoch time this data was last used."""

    def setLastAccessTime(value):
        """Set the last-access time (used by containers).

        Concurrent settings merge as their maximum.
        """

    def package(pkg_id):
        """Return the package's ISessionPkgData, stored only once a value
        is stored in it.

        The same object for the same package until the transaction
        ends; ``[pkg_id]`` and ``get(pkg_id)`` return it too, though
        ``pkg_id in data`` is false while it holds nothing stored.
        """

    def store_on_change(store):
        """Call ``store(self)`` once, before the first change of this
        (not yet stored) data: a new session is stored only when
        something is stored in it."""

    def keep_in_place_changes():
        """Mark changed every value read in this transaction and changed
        in place since (``data['cart'].append(item)``), so that it is
        stored. Values compare by value (built-in types) or by pickle;
        persistent objects are stored by themselves. Called when the
        transaction commits."""

    lastAccessTime = schema.Int(
        title="Last Access Time",
        description=(
            "Approximate epoch time this ISessionData was last retrieved"
            " from its ISessionDataContainer"),
        default=0,
        required=True,
    )


class ISessionDataCreated(ISessionData):
    """Session data that knows when its session began (ours does; a
    container's ``lifetime`` needs it)."""

    def getCreated():
        """Epoch seconds when the session began (0 if unknown)."""


class ISessionPkgData(IMapping):
    """One package's data of one client.

    Values are stored with the transaction, and must be picklable;
    committing an unpicklable value fails with an error naming the key.
    """


class IRequestCookies(Interface):
    """What the core needs of a request: its cookies, and a way to answer.

    One adapter per kind of request (plain WSGI, WebOb/Pyramid,
    zope.publisher) keeps the core free of any web framework.
    """

    method = Attribute("The request's HTTP method, upper case.")

    application_path = Attribute(
        "The path of the application's root, the default cookie Path.")

    def get_cookie(name):
        """The cookie's value, or None.

        A cookie set on the response during this request wins over the
        one the request brought.
        """

    def get_request_cookie(name):
        """The cookie's value as the request brought it, or None."""

    def set_cookie(name, value, max_age=None, path='/', domain=None,
                   secure=False, httponly=True, samesite='Lax',
                   committed=False, expires=None):
        """Set a cookie on the response.

        ``max_age`` None makes a browser-session cookie; otherwise the
        cookie has a Max-Age and, for clients that ignore Max-Age, an
        Expires attribute: ``max_age`` seconds from now, or ``expires``
        (an HTTP date) where the adapter can write it as given. ``committed``
        true: the cookie belongs to a transaction that has committed (it
        is set from a data manager's ``tpc_finish``), so no later abort
        may take it back.
        """

    def delete_cookie(name, path='/', domain=None):
        """Make the client forget a cookie."""

    def set_header(name, value, committed=False):
        """Set (replace) a response header (``committed``: as for
        ``set_cookie``)."""


class IResponseCaching(IRequestCookies):
    """Request cookies whose response can be kept out of caches in one
    call (the adapters zodbsession ships provide it; an IRequestCookies
    without it gets the same headers one by one)."""

    def forbid_caching(committed=False):
        """Keep caches from storing the response, which sets a session
        cookie: the Cache-Control, Pragma and Expires headers of
        ``zodbsession.pending.NO_CACHE_HEADERS`` (``committed``: as for
        ``set_cookie``)."""


class ISessionCookies(IResponseCaching):
    """Request cookies that set a session's cookie in one call (the
    adapters zodbsession ships provide it; other IRequestCookies get
    ``set_cookie`` and then the no-cache headers)."""

    def set_session_cookie(name, value, attributes, committed=False):
        """``set_cookie`` of a cookie that carries a session, then
        ``forbid_caching``: ``attributes`` is a
        ``zodbsession.pending.SessionCookieAttributes``, prepared once
        for many requests (``committed``: as for ``set_cookie``)."""


class IInspectableContainer(ISessionDataContainer):
    """A container whose layout an operator may look at (statistics,
    the principal index), without recording accesses."""

    def count():
        """The number of sessions not yet swept."""

    def peek(client_id):
        """The client's live ISessionData, without recording an access
        (nothing is written), or None."""

    def slice_counts():
        """[(slice end, number of sessions)] of the time slices not yet
        swept, oldest first."""

    def sample_records(limit):
        """Up to ``limit`` of the stored ISessionData records (persistent
        objects, possibly unloaded), newest first."""


class ISessionInfo(Interface):
    """One live session of a principal, as ``zodbsession.principals``
    lists it. Never carries the client id (a listing may be shown)."""

    session_id = schema.ASCIILine(
        title="Session reference",
        description=(
            "An opaque, stable reference to the session (a digest of its"
            " client id), for telling the sessions of a listing apart."))

    created = schema.Int(
        title="Created", description="Epoch time the session began"
        " (0 if unknown).", min=0)

    last_access = schema.Int(
        title="Last access", description="Approximate epoch time of the"
        " session's last use, as its containers record it.", min=0)

    containers = schema.Tuple(
        title="Containers",
        description="The names of the containers holding data of the"
                    " session ('' for the unnamed one).",
        value_type=schema.TextLine())

    current = schema.Bool(
        title="Current", description="The session of the request that"
        " asked.")


class ISessionMaintenance(Interface):
    """The background maintenance of one database in one process
    (``zodbsession.maintenance``)."""

    pack_interval = schema.Float(
        title="Pack interval",
        description=(
            "Seconds between packs of the storage: a pack runs when the"
            " database's last one is older (one process at a time)."
            " 0 turns scheduled packing off."),
        default=86400.0, min=0.0)

    def tick(now=None):
        """Run one round: sweep if due, pack if due, publish this
        process's figures if they changed and are due."""
