"""Client ids: random, signed, carried in a cookie."""
import logging
import secrets as _secrets

import persistent
from zope.component import adapter
from zope.interface import Interface
from zope.interface import implementer

from zodbsession import clock
from zodbsession import placement
from zodbsession.interfaces import IClientId
from zodbsession.interfaces import IClientIdManager
from zodbsession.interfaces import ICookieClientIdManager
from zodbsession.interfaces import ISession
from zodbsession.interfaces import IResponseCaching
from zodbsession.interfaces import ISessionCookies
from zodbsession.interfaces import ISessionLifecycle
from zodbsession.pending import NO_CACHE_HEADERS
from zodbsession.pending import SessionCookieAttributes
from zodbsession.context import cookies_of
from zodbsession.context import utility_for
from zodbsession.signing import SecretsSetting
from zodbsession.signing import b64encode
from zodbsession.signing import shared_signer
from zodbsession.validated import Setting

ID_BYTES = 32           # 256 bits of entropy per client id
ID_MAX_LENGTH = 128     # a signed id is about 97 characters; reject longer
# Client ids verified lately, remembered so a client's next requests skip
# the HMAC (zodbsession.signing.Signer): at most about 3 MB.
REMEMBERED_IDS = 16384
DEFAULT_NAMESPACE = 'zodbsession'
_SALT = 'zodbsession.clientid'
# cookieLifetime 0 means "never expire": ten years is as close as
# browsers allow (several cap cookie lifetimes below that anyway). The
# Expires attribute says what zope.session's does, for clients that do
# not know Max-Age; those that do (every current browser) use Max-Age, so
# the fixed date is no time bomb.
_FOREVER = 10 * 365 * 24 * 3600
_FOREVER_EXPIRES = 'Tue, 19 Jan 2038 00:00:00 GMT'

logger = logging.getLogger(__name__)
_DEFAULTED_FIELDS = ('cookieLifetime', 'thirdparty', 'domain', 'path',
                     'secure', 'postOnly', 'httpOnly', 'sameSite')


class MissingClientIdException(Exception):
    """No client id, and this manager may not issue one here: the
    request brought no valid id and the manager is ``thirdparty``, or
    ``postOnly`` and the request is not a POST. (Raised without a
    message, as zope.session raises it.)"""


@implementer(IClientId)
@adapter(Interface)
class ClientId(str):
    """``IClientId(request)``: the client id from the IClientIdManager,
    issued (with its cookie) if the client has none.

    Asked through the request's session when it has one, so that the id
    is issued once per request and the sessions it has not stored yet
    are found under it.
    """

    def __new__(cls, request):
        session = ISession(request, None)
        if ISessionLifecycle.providedBy(session):
            return str.__new__(cls, session.client_id)
        manager = utility_for(request, IClientIdManager)
        return str.__new__(cls, manager.getClientId(request))


def generate_secret():
    return _secrets.token_urlsafe(32)


def forbid_caching(cookies, committed=False):
    """Keep caches from storing a response that sets a session cookie:
    replayed to somebody else, it would hand them this client's session.
    """
    if IResponseCaching.providedBy(cookies):
        cookies.forbid_caching(committed)
        return
    for name, value in NO_CACHE_HEADERS:
        cookies.set_header(name, value, committed=committed)


# Classes that implement ISessionCookies (the adapters we ship): asked
# once per class, not once per cookie.
_SESSION_COOKIE_CLASSES = set()


def set_session_cookie(cookies, name, value, attributes, committed=False):
    """Set a cookie that carries a session (``attributes``: prepared, a
    SessionCookieAttributes) and keep caches from storing the response."""
    cls = type(cookies)
    if cls not in _SESSION_COOKIE_CLASSES:
        if ISessionCookies.implementedBy(cls):
            _SESSION_COOKIE_CLASSES.add(cls)
        elif not ISessionCookies.providedBy(cookies):
            cookies.set_cookie(name, value, committed=committed,
                               **attributes.keywords)
            forbid_caching(cookies, committed)
            return
    cookies.set_session_cookie(name, value, attributes, committed)


@implementer(ICookieClientIdManager)
class CookieClientIdManager(persistent.Persistent):
    """Issues client ids in a signed cookie.

    ``secret`` is one secret or a list of them: the first signs new ids,
    every one is accepted, so keys can be rotated without logging anyone
    out. With no secret, a random one is generated (store the manager in
    the database so that every process shares it).
    """

    __parent__ = __name__ = None

    namespace = Setting(ICookieClientIdManager['namespace'])
    cookieLifetime = Setting(ICookieClientIdManager['cookieLifetime'])
    thirdparty = Setting(ICookieClientIdManager['thirdparty'])
    domain = Setting(ICookieClientIdManager['domain'])
    path = Setting(ICookieClientIdManager['path'])
    secure = Setting(ICookieClientIdManager['secure'])
    postOnly = Setting(ICookieClientIdManager['postOnly'])
    httpOnly = Setting(ICookieClientIdManager['httpOnly'])
    sameSite = Setting(ICookieClientIdManager['sameSite'])

    def __init__(self, namespace=None, secret=None, **settings):
        self.namespace = namespace or DEFAULT_NAMESPACE
        self.secret = secret if secret is not None else generate_secret()
        # Every setting is given a value (a Setting has no default of its
        # own to fall back on).
        for name in _DEFAULTED_FIELDS:
            self.__dict__[name] = ICookieClientIdManager[name].default
        for name, value in settings.items():
            if name not in ICookieClientIdManager:
                raise TypeError(
                    f'CookieClientIdManager has no setting {name!r}; known'
                    f' settings: {", ".join(sorted(ICookieClientIdManager))}')
            setattr(self, name, value)

    def __repr__(self):
        return f'<{type(self).__name__} namespace={self.namespace!r}>'

    secret = SecretsSetting(forget='_v_signer')

    # A site snapshot's copy never changes (see ``freeze``).
    _v_frozen = False

    def freeze(self):
        """Say that this manager's settings never change again (it is a
        site snapshot's copy): the containers whose cookies take their
        attributes from it keep what they made of them."""
        self._v_frozen = True

    @property
    def _signer(self):
        signer = getattr(self, '_v_signer', None)
        if signer is None:
            signer = self._v_signer = shared_signer(
                self._secrets, _SALT, ID_MAX_LENGTH, remember=REMEMBERED_IDS)
        return signer

    # -- IClientIdManager -----------------------------------------------

    def getClientId(self, request):
        client_id = self.getRequestId(request)
        if client_id is None:
            if self.thirdparty or (
                    self.postOnly
                    and cookies_of(request).method != 'POST'):
                raise MissingClientIdException
            client_id = self.generateUniqueId()
            self.setRequestId(request, client_id)
        else:
            self.renewRequestId(request, client_id)
        return client_id

    def renewRequestId(self, request, client_id):
        """Sliding expiry of the cookie itself, when it has a lifetime."""
        _namespace, thirdparty, _signer, lifetime = self._request_settings()
        if not thirdparty and lifetime:
            self.setRequestId(request, client_id)

    # -- the cookie ---------------------------------------------------------

    def generateUniqueId(self):
        """A new signed id: this thread's placement character (see
        zodbsession.placement), 256 random bits, the time it was issued,
        and their HMAC-SHA256."""
        # (token_urlsafe's text, without its three Python calls around
        # the encoding.)
        payload = (f'{placement.home_character()}'
                   f'{b64encode(_secrets.token_bytes(ID_BYTES))}'
                   f'.{int(clock.now()):x}')
        return self._signer.sign(payload)

    def issuedAt(self, client_id):
        """Epoch seconds when we issued ``client_id``; None if unknown."""
        payload = self._signer.unsign(str(client_id))
        if payload is None:
            return None
        _random, dot, issued = payload.rpartition('.')
        try:
            return int(issued, 16) if dot else None
        except ValueError:
            return None

    def verify(self, client_id):
        """Whether ``client_id`` was signed with one of our secrets."""
        return self._signer.unsign(client_id) is not None

    _v_request_settings = None

    def _request_settings(self):
        # (namespace, thirdparty, signer, cookieLifetime): what reading
        # and renewing a request's id take, kept when frozen.
        settings = self._v_request_settings
        if settings is None:
            settings = (self.namespace, self.thirdparty, self._signer,
                        self.cookieLifetime)
            if self._v_frozen:
                self._v_request_settings = settings
        return settings

    def getRequestId(self, request):
        """The request's valid client id, or None. Never raises."""
        namespace, thirdparty, signer, _lifetime = self._request_settings()
        value = cookies_of(request).get_cookie(namespace)
        if value is None:
            return None
        if thirdparty:
            return value
        return value if signer.unsign(value) is not None else None

    def getIncomingId(self, request):
        """The valid client id the client sent, ignoring any set on the
        response during this request; None if there is none."""
        if self.thirdparty:
            return None
        value = cookies_of(request).get_request_cookie(self.namespace)
        return value if value is not None and self.verify(value) else None

    def setRequestId(self, request, client_id, lifetime=None):
        """Send ``client_id`` in the cookie; ``lifetime`` (seconds) is
        this cookie's instead of ``cookieLifetime`` (a host's per-session
        choice: Flask's permanent sessions)."""
        if self.thirdparty:
            # Somebody asked for a cookie that somebody else issues.
            logger.warning(
                'CookieClientIdManager %r is thirdparty: it sets no'
                ' cookie, ignoring setRequestId', self.namespace)
            return
        cookies = cookies_of(request)
        max_age, expires = (self.cookieLifetime if lifetime is None
                            else lifetime), None
        if max_age == 0:
            max_age, expires = _FOREVER, _FOREVER_EXPIRES
        set_session_cookie(cookies, self.namespace, client_id,
                           self._cookie_attributes(
                               self.path or cookies.application_path or '/',
                               max_age, expires))

    def _cookie_attributes(self, path, max_age, expires):
        # The cookie's attributes, made again only when they change (as
        # settings rarely do; a new client's request sets the cookie).
        made = getattr(self, '_v_cookie_attributes', None)
        settings = (path, self.domain, self.secure, self.httpOnly,
                    self.sameSite, max_age, expires)
        if made is None or made[0] != settings:
            made = self._v_cookie_attributes = (
                settings, SessionCookieAttributes(
                    path=path, domain=self.domain or None,
                    secure=self.secure or self.sameSite == 'None',
                    httponly=self.httpOnly, samesite=self.sameSite,
                    max_age=max_age, expires=expires))
        return made[1]

    def deleteRequestId(self, request):
        """Make the client forget its id (and so its session)."""
        if self.thirdparty:
            return
        cookies = cookies_of(request)
        cookies.delete_cookie(
            self.namespace, path=self.path or cookies.application_path or '/',
            domain=self.domain or None)
