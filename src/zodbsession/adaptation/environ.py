"""Cookies of WSGI and WebOb/Pyramid requests, for the core.

Both kinds of request carry a WSGI environ. The response's cookies and
headers wait in the request's context (``zodbsession.pending``) until
whoever builds the response applies them: the host, a Pyramid response
callback, or ``PendingResponse.apply`` called by hand.
"""
import re

from zope.interface import implementer

from zodbsession.context import context_of
from zodbsession.interfaces import ISession
from zodbsession.interfaces import ISessionCookies
from zodbsession.pending import is_plain_cookie_value
from zodbsession.pending import PendingResponse  # noqa: F401 (old home)
from zodbsession.pending import cookie_attributes
from zodbsession.pending import set_cookie_header  # noqa: F401 (old home)
from zodbsession.remembered import Remembered
from zodbsession.session import Session
from zodbsession.session import session_of

_COOKIE_SEPARATORS = re.compile('[;,]')
# What a request without a Cookie header (or an empty one) holds; shared,
# as every result of cookie_texts is.
_NO_COOKIES = {}
_COOKIE_SPACE = ' \t'
# A cookie value as the old (RFC 2109) grammar browsers and WebOb accept
# reads it, matched once at the start of one value (linear time): a
# double-quoted string, an Expires date, or a run of legal characters
# and backslash escapes.
_COOKIE_VALUE = re.compile(
    rb'"(?:\\"|.)*?"'
    rb'|\w{3},\s[\w\d-]{9,11}\s[\d:]{8}\sGMT'
    rb"|(?:[\w~!@#$%^&*()+=\-`.?|:/{}<>']|\\(?:[0-3][0-7][0-7]|.))*")
# Backslash escapes in a cookie value: an octal byte, or a character.
_COOKIE_ESCAPE = re.compile(rb'\\([0-3][0-7][0-7]|.)')


# Cookie headers read lately, each with what its cookies' values read as:
# a returning client sends the same header with request after request.
# Only headers of at most REMEMBERED_HEADER_LENGTH characters enter; full
# (REMEMBERED_HEADERS of them, or REMEMBERED_HEADER_CHARACTERS in all), it
# is emptied and starts again. The count is that of the client ids the
# signer remembers, so that a site's active clients fit in both (headers
# of our client id cookie alone, some 110 characters, do). The characters
# bound the memory, about 10 MB at most (the headers, their texts and the
# dicts), whatever the headers hold: a header counts COOKIE_CHARACTERS
# more than its text, and so does each of its cookies, whose name and
# value are objects of their own (a header of many tiny cookies holds
# some 20 times its length).
REMEMBERED_HEADERS = 16384
REMEMBERED_HEADER_LENGTH = 8192
REMEMBERED_HEADER_CHARACTERS = 4 * 1024 * 1024
COOKIE_CHARACTERS = 64
_read_headers = Remembered(REMEMBERED_HEADERS, REMEMBERED_HEADER_CHARACTERS)


def cookie_value(header, name):
    """The value of cookie ``name`` in a raw Cookie header (the last one
    if repeated), or None. Never raises; linear in the header's length.

    WebOb's parser is not used on the whole header: its regular expression
    takes time quadratic in the length of any run of cookie characters
    without an '=' (one 64 KB header costs a worker about a minute), and
    the header comes from the client.
    """
    return cookie_texts(header).get(name)


def cookie_texts(header):
    """{name: value as text, or None if invalid} of a raw Cookie header,
    the last of repeated names. Shared between requests: never change
    it."""
    if not header:
        return _NO_COOKIES      # (a new client's: nothing to split)
    # (Exactly str: a subclass could equal a remembered header.)
    remembered = type(header) is str
    texts = _read_headers.get(header) if remembered else None
    if texts is None:
        texts = {name: _cookie_text(raw)
                 for name, raw in _raw_cookies(header).items()}
        if remembered and len(header) <= REMEMBERED_HEADER_LENGTH:
            _read_headers.remember(header, texts, len(header)
                                   + COOKIE_CHARACTERS * (len(texts) + 1))
    return texts


def _raw_cookies(header):
    """{name: raw value} of a Cookie header, the last of repeated names."""
    found = {}
    if isinstance(header, str):
        # Most headers have no ',' (it separates cookies in old-style
        # headers only): a plain split then does the regular expression's
        # work.
        pieces = (_COOKIE_SEPARATORS.split(header) if ',' in header
                  else header.split(';'))
        for piece in pieces:
            key, equals, value = piece.partition('=')
            if equals:
                found[key.strip(_COOKIE_SPACE)] = value.strip(_COOKIE_SPACE)
    return found


def _cookie_text(found):
    """A raw cookie value as text (None stays None); None if invalid."""
    if found is None:
        return None
    if is_plain_cookie_value(found):
        return found
    try:
        # The value as WebOb reads it (its grammar, matched once at the
        # start of one value: linear), unquoted, as text.
        raw = _COOKIE_VALUE.match(found.encode('latin-1')).group(0)
        return _unquote(raw).decode('utf-8')
    except UnicodeError:
        return None


def _unquote(raw):
    """A cookie value without its double quotes and backslash escapes."""
    if len(raw) >= 2 and raw[:1] == raw[-1:] == b'"':
        raw = raw[1:-1]
    return _COOKIE_ESCAPE.sub(_unescape, raw)


def _unescape(match):
    escaped = match.group(1)
    return bytes((int(escaped, 8),)) if len(escaped) == 3 else escaped


@implementer(ISessionCookies)
class EnvironCookies:
    """IRequestCookies for anything with a WSGI ``environ``.

    Registered for WSGIRequest and for WebOb requests (so Pyramid's too).
    """

    def __init__(self, request):
        self.request = request
        self.environ = request.environ
        self._context = None

    @property
    def context(self):
        """The request's context (``zodbsession.context``)."""
        context = self._context
        if context is None:
            context = self._context = context_of(self.request)
        return context

    @context.setter
    def context(self, context):
        # Its host made it.
        self._context = context

    @property
    def method(self):
        return self.environ.get('REQUEST_METHOD', 'GET').upper()

    @property
    def application_path(self):
        return self.environ.get('SCRIPT_NAME') or '/'

    def _pending_response(self, committed):
        context = self._context or self.context
        pending = context.pending
        if context.pending_applied and (committed or pending.following):
            return pending
        if not context.pending_applied:
            # No host applies it (a Pyramid request outside our tween):
            # get the cookies onto whatever response the view returns.
            context.pending_applied = True
            add_callback = getattr(self.request, 'add_response_callback',
                                   None)
            if add_callback is not None:
                add_callback(lambda request, response: pending.apply(response))
        if not committed and context.transaction_manager is not None:
            # Under a host: cookies go out only for transactions that
            # commit (including one that persist() committed before a
            # later one was aborted). Requests that set no cookie, or
            # only committed ones, never pay for following the
            # transaction.
            pending.follow(context.transaction_manager)
        return pending

    def get_cookie(self, name):
        pending = (self._context or self.context).pending_if_any
        if pending is not None and name in pending.cookies:
            return pending.cookies[name][0]
        return self.get_request_cookie(name)

    def get_request_cookie(self, name):
        # The header is split once per request, however many cookies are
        # read from it (the client id's, each cookie container's).
        context = self._context or self.context
        header = self.environ.get('HTTP_COOKIE')
        parsed = context.parsed_cookies
        if parsed is None or parsed[0] is not header:
            parsed = context.parsed_cookies = (header, cookie_texts(header))
        return parsed[1].get(name)

    def set_cookie(self, name, value, max_age=None, path='/', domain=None,
                   secure=False, httponly=True, samesite='Lax',
                   committed=False, expires=None):
        attributes = cookie_attributes(max_age, path, domain, secure,
                                       httponly, samesite)
        self._pending_response(committed).add_cookie(
            name, (value, attributes), committed)

    def set_session_cookie(self, name, value, attributes, committed=False):
        self._pending_response(committed).add_session_cookie(
            name, (value, attributes.pending), committed)

    def _set_session_cookie_by_parts(self, name, value, attributes,
                                     committed=False):
        self.set_cookie(name, value, committed=committed,
                        **attributes.keywords)
        self.forbid_caching(committed)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A site's own adapter made from this one may change how a cookie
        # is set or which headers keep caches away: its session cookies
        # go its way too (set_session_cookie is its set_cookie, then its
        # forbid_caching), unless it says how to set them in one call.
        if cls.set_session_cookie is EnvironCookies.set_session_cookie and (
                cls.set_cookie is not EnvironCookies.set_cookie
                or cls.forbid_caching is not EnvironCookies.forbid_caching):
            cls.set_session_cookie = (
                EnvironCookies._set_session_cookie_by_parts)

    def delete_cookie(self, name, path='/', domain=None):
        self._pending_response(False).cookies[name] = (
            None, dict(path=path, domain=domain))

    def set_header(self, name, value, committed=False):
        self._pending_response(committed).add_header(name, value, committed)

    def forbid_caching(self, committed=False):
        self._pending_response(committed).forbid_caching(committed)


class WSGIRequest(EnvironCookies):
    """The smallest request: a WSGI environ. The middleware uses it.

    It is its own IRequestCookies: the client id is read on most
    requests, and this spares an adapter lookup each time. For the same
    reason it answers ``ISession(request)`` itself (``__conform__``) once
    its host made its context: with that context's Session, the one the
    registered adapter (``session_of``) gives; the lookup it spares is
    some 3 % of a signed-cookie request's cost (bench/simulated.py).
    """

    def __init__(self, environ):
        self.environ = environ
        self._context = None

    @property
    def request(self):
        # Itself (a property: an attribute would be a reference cycle).
        return self

    def __conform__(self, interface):
        # ``ISession(request)`` of a request its host prepared: what the
        # registered adapter answers, without the adapter lookup.
        context = self._context
        if interface is ISession and context is not None:
            session = context.session
            # (session_of's answer, with two calls less.)
            return session if type(session) is Session else session_of(self)
        return None
