"""The cookies and headers a request's response must carry.

They wait here until whoever builds the response applies them (the
middleware, a Pyramid response callback, ``PendingResponse.apply``), and
follow the request's transactions: what was set in a transaction that did
not commit is dropped. One mechanism for every host.
"""
import re
import string
import time

import webob.cookies

from zodbsession import following
from zodbsession.remembered import Remembered

# Values WebOb's grammar reads back unchanged (signed ids, base64 text):
# they need neither its regular expression nor unquoting.
PLAIN_COOKIE_VALUE = re.compile(r'[A-Za-z0-9_.\-]*\Z')
_PLAIN_CHARACTERS = (string.ascii_letters + string.digits + '_.-').encode()


def is_plain_cookie_value(text):
    """Whether ``text`` is made of PLAIN_COOKIE_VALUE's characters only.
    (Deleting them leaves nothing: a loop in C, twice as fast as the
    regular expression on a session cookie's few hundred characters.)"""
    return text.isascii() and not text.encode('ascii').translate(
        None, _PLAIN_CHARACTERS)


# What keeps caches from storing a response that sets a session cookie:
# replayed to somebody else, it would hand them this client's session.
NO_CACHE_HEADERS = (
    ('Cache-Control', 'no-cache="Set-Cookie,Set-Cookie2"'),
    ('Pragma', 'no-cache'),
    ('Expires', 'Mon, 26 Jul 1997 05:00:00 GMT'),
)


class PendingResponse:
    """Cookies and headers to add to the response of one request."""

    def __init__(self):
        self.cookies = {}   # name -> (value or None to delete, attributes)
        self.headers = {}   # header name -> value
        self._kept = ({}, {})
        self._followed = None

    def add_cookie(self, name, entry, committed=False):
        """Add a cookie: ``entry`` is (value or None to delete it,
        attributes); ``committed``: it belongs to a committed transaction,
        and a later ``discard()`` keeps it."""
        self.cookies[name] = entry
        if committed:
            self._kept[0][name] = entry

    def add_header(self, name, value, committed=False):
        self.headers[name] = value
        if committed:
            self._kept[1][name] = value

    def add_session_cookie(self, name, entry, committed=False):
        """``add_cookie`` of a cookie that carries a session, with the
        NO_CACHE_HEADERS: a cached response setting it would hand the
        session to whoever is served the copy."""
        self.add_cookie(name, entry, committed)
        self.forbid_caching(committed)

    def forbid_caching(self, committed=False):
        """Add the NO_CACHE_HEADERS."""
        self.headers.update(NO_CACHE_HEADERS)
        if committed:
            self._kept[1].update(NO_CACHE_HEADERS)

    def follow(self, transaction_manager):
        """Keep or discard what is pending as ``transaction_manager``'s
        transactions commit or abort, from the current one on."""
        if self._followed is None:
            following.follow(transaction_manager, self)
            self._followed = transaction_manager

    @property
    def following(self):
        """Whether it follows a transaction manager."""
        return self._followed is not None

    def stop_following(self):
        manager, self._followed = self._followed, None
        if manager is not None:
            following.unfollow(manager, self)

    def keep(self):
        """What is pending now belongs to a committed transaction: a later
        ``discard()`` keeps it."""
        self._kept = (dict(self.cookies), dict(self.headers))

    def discard(self):
        """Drop what was added since the last ``keep()`` (its transaction
        did not commit)."""
        self.cookies, self.headers = (dict(self._kept[0]),
                                      dict(self._kept[1]))

    def afterCompletion(self, txn):
        # As a follower of the request's transactions (following.follow).
        if txn.status == 'Committed':
            self.keep()
        else:
            self.discard()

    def __bool__(self):
        return bool(self.cookies or self.headers)

    def header_list(self):
        """[(name, value)] to append to the response headers."""
        result = []
        for name, (value, attributes) in self.cookies.items():
            result.append(('Set-Cookie', set_cookie_header(
                name, value, attributes)))
        result.extend(self.headers.items())
        return result

    def apply(self, response):
        """Apply to a WebOb response."""
        for name, value in self.header_list():
            if name == 'Set-Cookie':
                response.headerlist.append((name, value))
            else:
                response.headers[name] = value


def cookie_attributes(max_age=None, path='/', domain=None, secure=False,
                      httponly=True, samesite='Lax', expires=None):
    """A cookie's attributes as pending cookies keep them (what WebOb's
    ``make_cookie`` takes), from ``IRequestCookies.set_cookie``'s
    arguments. (WebOb writes Expires itself, ``max_age`` from now; a
    given ``expires`` differs only for clients that ignore Max-Age.)"""
    return dict(max_age=max_age, path=path, domain=domain, secure=secure,
                httponly=httponly,
                samesite=samesite.lower() if samesite else None)


class SessionCookieAttributes:
    """The attributes of a session cookie, prepared once for as long as
    its settings stay: ``keywords``, what ``IRequestCookies.set_cookie``
    takes, and ``pending``, what a PendingResponse keeps (see
    ``zodbsession.clientid.set_session_cookie``)."""

    __slots__ = ('keywords', 'pending')

    def __init__(self, **keywords):
        self.keywords = keywords
        self.pending = PreparedAttributes(cookie_attributes(**keywords))

    def __getitem__(self, name):
        return self.keywords[name]


class PreparedAttributes(dict):
    """A session cookie's attributes as pending cookies keep them, made
    once for every request (never changed): the attributes part of the
    Set-Cookie header WebOb writes for them is kept with them, for the
    second it was written in (its expiry date moves once a second)."""

    __slots__ = ('_text',)

    def __init__(self, attributes):
        super().__init__(attributes)
        self._text = (None, None)

    def _read_only(self, *args, **kwargs):
        raise TypeError('prepared cookie attributes are shared by every'
                        ' request and never changed: prepare new ones')

    __setitem__ = __delitem__ = __ior__ = _read_only
    update = pop = popitem = clear = setdefault = _read_only

    def header_text(self, second):
        written, text = self._text
        if written != second:
            text = _attributes_text(self)
            self._text = (second, text)
        return text


# The attributes part of Set-Cookie headers WebOb wrote during the current
# second, by other attributes: (second, {attributes: text}).
_attribute_texts = (None, {})


def set_cookie_header(name, value, attributes):
    """The Set-Cookie header WebOb's ``make_cookie`` writes (value None:
    an expired cookie that deletes it).

    WebOb's serialization takes longer than the rest of a cookie-session
    request; a session cookie's attributes rarely change, so the text
    WebOb wrote for them (its expiry date moves once a second) is kept
    and used with every plain name and value.
    """
    if not (name and value and _is_plain_name(name)
            and is_plain_cookie_value(value)):
        return webob.cookies.make_cookie(name, value, **attributes)
    second = int(time.time())
    if type(attributes) is PreparedAttributes:
        return name + '=' + value + attributes.header_text(second)
    global _attribute_texts
    cached_second, texts = _attribute_texts
    if cached_second != second:
        texts = {}
        _attribute_texts = (second, texts)
    # set_cookie always lists the attributes in one order: no sorting.
    key = tuple(attributes.items())
    text = texts.get(key)
    if text is None:
        text = texts[key] = _attributes_text(attributes)
    return name + '=' + value + text


# Whether each cookie name seen is plain (names are settings: a few).
_plain_names = Remembered(256)


def _is_plain_name(name):
    plain = _plain_names.get(name)
    if plain is None:
        plain = is_plain_cookie_value(name)
        if type(name) is str:
            _plain_names.remember(name, plain)
    return plain


def _attributes_text(attributes):
    """The part of the Set-Cookie header WebOb writes now after the
    name and value, for ``attributes``."""
    return webob.cookies.make_cookie('n', 'v', **attributes)[len('n=v'):]
