"""Tokens of the admin and metrics apps: checked in constant time.

A browser signs in once with the token (a form); it then carries a
cookie holding an HMAC of the token, never the token, ``HttpOnly`` and
``SameSite=Strict``. Forms that change something carry a CSRF field,
another HMAC of the token that a page of another site cannot know.
Scripts send ``Authorization: Bearer TOKEN`` instead, and need no CSRF
field (a browser never adds that header by itself).
"""
import hashlib
import hmac

MIN_TOKEN_LENGTH = 16
COOKIE_NAME = 'zodbsession_admin'


class TokenError(ValueError):
    """The app was given no usable token."""


def check_token(token, app_name, required):
    """``token`` as bytes (None if not ``required`` and not given)."""
    if token is None and not required:
        return None
    if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
        raise TokenError(
            f'{app_name} needs token= a secret string of at least'
            f' {MIN_TOKEN_LENGTH} characters (there is no default token;'
            f' for instance python -c "import secrets;'
            f' print(secrets.token_urlsafe())"), got'
            f' {"nothing" if token is None else type(token).__name__}')
    return token.encode('utf-8')


def _mac(token, purpose):
    return hmac.new(token, purpose, hashlib.sha256).hexdigest()


def cookie_value(token):
    return _mac(token, b'zodbsession.admin.cookie')


def csrf_value(token):
    return _mac(token, b'zodbsession.admin.csrf')


def bearer_matches(environ, token):
    header = environ.get('HTTP_AUTHORIZATION', '')
    scheme, _, given = header.partition(' ')
    return scheme.lower() == 'bearer' and hmac.compare_digest(
        given.strip().encode('utf-8', 'replace'), token)


def cookie_matches(cookies, token):
    given = cookies.get(COOKIE_NAME, '')
    return hmac.compare_digest(given.encode('ascii', 'replace'),
                               cookie_value(token).encode('ascii'))


def token_matches(given, token):
    return hmac.compare_digest(given.encode('utf-8', 'replace'), token)


def csrf_matches(given, token):
    return hmac.compare_digest((given or '').encode('ascii', 'replace'),
                               csrf_value(token).encode('ascii'))
