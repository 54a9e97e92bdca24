"""CSRF tokens kept in the session (package id ``demo.csrf``)."""
import hmac
import secrets

PKG_ID = 'demo.csrf'
FIELD = 'csrf_token'


def token(session):
    """The client's token, created on first use (forms need one)."""
    data = session[PKG_ID]
    value = data.get('token')
    if value is None:
        value = data['token'] = secrets.token_urlsafe(32)
    return value


def renew(session):
    """Replace the token (after login: a token seen before is stale)."""
    session[PKG_ID]['token'] = secrets.token_urlsafe(32)


def is_valid(session, submitted):
    """Whether ``submitted`` is the client's token; creates nothing."""
    data = session.get(PKG_ID)
    expected = data.get('token') if data is not None else None
    if not expected or not submitted:
        return False
    return hmac.compare_digest(expected.encode('utf-8'),
                               submitted.encode('utf-8'))
