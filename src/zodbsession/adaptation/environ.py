"""Cookies of WSGI and WebOb/Pyramid requests, for the core.

Both kinds of request carry a WSGI environ; the answer's cookies and
headers wait in the environ (``PendingResponse``) until whoever builds the
response applies them: the middleware, a Pyramid response callback, or
``PendingResponse.apply`` called by hand.
"""
import re
import time

import webob.cookies
from zope.interface import implementer

from zodbsession.environkeys import PENDING_KEY
from zodbsession.environkeys import TRANSACTION_MANAGER_KEY
from zodbsession.interfaces import IRequestCookies

_COOKIE_SEPARATORS = re.compile('[;,]')
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
# Values WebOb's grammar reads back unchanged (signed ids, base64 text):
# they need neither its regular expression nor unquoting.
_PLAIN_COOKIE_VALUE = re.compile(r'[A-Za-z0-9_.\-]*\Z')

# (Cookie header, {name: raw value}) of the request.
_PARSED_COOKIES_KEY = 'zodbsession.request_cookies'


class PendingResponse:
    """Cookies and headers to add to the response of one request."""

    def __init__(self):
        self.cookies = {}   # name -> (value or None to delete, attributes)
        self.headers = {}   # header name -> value
        self._kept = ({}, {})
        self._followed = None

    def add(self, kind, name, entry, committed=False):
        """Add a cookie (kind ``'cookies'``) or header (``'headers'``);
        ``committed``: it belongs to a committed transaction, and a later
        ``discard()`` keeps it."""
        getattr(self, kind)[name] = entry
        if committed:
            self._kept[kind == 'headers'][name] = entry

    def follow(self, transaction_manager):
        """Keep or discard what is pending as ``transaction_manager``'s
        transactions commit or abort, from the current one on."""
        if self._followed is None:
            transaction_manager.registerSynch(self)
            self._followed = transaction_manager

    def stop_following(self):
        manager, self._followed = self._followed, None
        if manager is not None:
            manager.unregisterSynch(self)

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
        # As a transaction synchronizer: follow the request's transactions.
        if txn.status == 'Committed':
            self.keep()
        else:
            self.discard()

    def beforeCompletion(self, txn):
        pass

    def newTransaction(self, txn):
        pass

    @classmethod
    def of(cls, environ):
        pending = environ.get(PENDING_KEY)
        if pending is None:
            pending = environ[PENDING_KEY] = cls()
        return pending

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


# The attributes part of Set-Cookie headers WebOb wrote during the current
# second, by attributes: (second, {attributes: text}).
_attribute_texts = (None, {})


def set_cookie_header(name, value, attributes):
    """The Set-Cookie header WebOb's ``make_cookie`` writes (value None:
    an expired cookie that deletes it).

    WebOb's serialization takes longer than the rest of a cookie-session
    request; a session cookie's attributes rarely change, so the text
    WebOb wrote for them (its expiry date moves once a second) is kept
    and used with every plain name and value.
    """
    if not (name and value and _PLAIN_COOKIE_VALUE.match(name)
            and _PLAIN_COOKIE_VALUE.match(value)):
        return webob.cookies.make_cookie(name, value, **attributes)
    global _attribute_texts
    second = int(time.time())
    cached_second, texts = _attribute_texts
    if cached_second != second:
        texts = {}
        _attribute_texts = (second, texts)
    # set_cookie always lists the attributes in one order: no sorting.
    key = tuple(attributes.items())
    text = texts.get(key)
    if text is None:
        text = texts[key] = webob.cookies.make_cookie(
            'n', 'v', **attributes)[len('n=v'):]
    return name + '=' + value + text


def cookie_value(header, name):
    """The value of cookie ``name`` in a raw Cookie header (the last one
    if repeated), or None. Never raises; linear in the header's length.

    WebOb's parser is not used on the whole header: its regular expression
    takes time quadratic in the length of any run of cookie characters
    without an '=' (one 64 KB header costs a worker about a minute), and
    the header comes from the client.
    """
    return _cookie_text(_raw_cookies(header).get(name))


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
    if _PLAIN_COOKIE_VALUE.match(found):
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


@implementer(IRequestCookies)
class EnvironCookies:
    """IRequestCookies for anything with a WSGI ``environ``.

    Registered for WSGIRequest and for WebOb requests (so Pyramid's too).
    """

    def __init__(self, request):
        self.request = request
        self.environ = request.environ

    @property
    def method(self):
        return self.environ.get('REQUEST_METHOD', 'GET').upper()

    @property
    def application_path(self):
        return self.environ.get('SCRIPT_NAME') or '/'

    @property
    def _pending(self):
        return self._pending_response(committed=False)

    def _pending_response(self, committed):
        pending = self.environ.get(PENDING_KEY)
        if pending is None:
            pending = PendingResponse.of(self.environ)
            # Pyramid: get the cookies onto whatever response the view
            # returns.
            add_callback = getattr(self.request, 'add_response_callback',
                                   None)
            if add_callback is not None:
                add_callback(lambda request, response: pending.apply(response))
        if not committed and pending._followed is None:
            # Under the middleware: cookies go out only for transactions
            # that commit (including one that persist() committed before
            # a later one was aborted). Requests that set no cookie, or
            # only committed ones, never pay for following the
            # transaction.
            manager = self.environ.get(TRANSACTION_MANAGER_KEY)
            if manager is not None:
                pending.follow(manager)
        return pending

    def get_cookie(self, name):
        pending = self.environ.get(PENDING_KEY)
        if pending is not None and name in pending.cookies:
            return pending.cookies[name][0]
        return self.get_request_cookie(name)

    def get_request_cookie(self, name):
        # The header is split once per request, however many cookies are
        # read from it (the client id's, each cookie container's).
        header = self.environ.get('HTTP_COOKIE')
        parsed = self.environ.get(_PARSED_COOKIES_KEY)
        if parsed is None or parsed[0] is not header:
            parsed = self.environ[_PARSED_COOKIES_KEY] = (
                header, _raw_cookies(header))
        return _cookie_text(parsed[1].get(name))

    def set_cookie(self, name, value, max_age=None, path='/', domain=None,
                   secure=False, httponly=True, samesite='Lax',
                   committed=False, expires=None):
        # WebOb writes Expires itself, max_age from now; a given
        # ``expires`` differs only for clients that ignore Max-Age.
        attributes = dict(max_age=max_age, path=path, domain=domain,
                          secure=secure, httponly=httponly,
                          samesite=samesite.lower() if samesite else None)
        self._pending_response(committed).add(
            'cookies', name, (value, attributes), committed)

    def delete_cookie(self, name, path='/', domain=None):
        self._pending.cookies[name] = (None, dict(path=path, domain=domain))

    def set_header(self, name, value, committed=False):
        self._pending_response(committed).add(
            'headers', name, value, committed)


class WSGIRequest(EnvironCookies):
    """The smallest request: a WSGI environ. The middleware uses it.

    It is its own IRequestCookies: the client id is read on most
    requests, and this spares an adapter lookup each time.
    """

    def __init__(self, environ):
        self.request = self
        self.environ = environ
