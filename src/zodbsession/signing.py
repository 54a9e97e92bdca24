"""HMAC-SHA256 signatures with key rotation.

Values leave the server as ``payload.signature`` (URL-safe base64 for the
signature). The first secret signs; every listed secret is accepted, so a
site rotates keys by putting the new one first and dropping the old one
once its values have expired.
"""
import binascii
import functools
import hashlib
import hmac

from zodbsession.remembered import Remembered

# A value longer than this is rejected before any HMAC is computed, so a
# hostile client cannot make us hash megabytes.
DEFAULT_MAX_LENGTH = 4096

MIN_SECRET_LENGTH = 16


# binascii directly: base64's URL-safe functions are three Python calls
# around it, and every cookie request signs or checks two or three values.
_TO_URLSAFE = bytes.maketrans(b'+/', b'-_')
_FROM_URLSAFE = bytes.maketrans(b'-_', b'+/')


def b64encode(data):
    return binascii.b2a_base64(data, newline=False).translate(
        _TO_URLSAFE).rstrip(b'=').decode('ascii')


def b64decode(text, canonical=True):
    """Decode unpadded URL-safe base64; raise ValueError on bad input.

    ``canonical`` false skips the check that ``text`` is the one spelling
    of its bytes: for text a valid signature covers (it is what we wrote).
    """
    try:
        if isinstance(text, str):
            text = text.encode('ascii')
        # '+' and '/' must not pass for '-' and '_': refuse them before
        # translating.
        if b'+' in text or b'/' in text:
            raise ValueError('not URL-safe base64')
        data = binascii.a2b_base64(
            text.translate(_FROM_URLSAFE) + b'=' * (-len(text) % 4),
            strict_mode=True)
    except (ValueError, UnicodeError) as exc:  # binascii.Error included
        raise ValueError('not URL-safe base64') from exc
    # a2b_base64 takes non-zero spare bits; accept only the one
    # canonical spelling, so a signed value has a single form.
    if canonical and b64encode(data).encode('ascii') != text:
        raise ValueError('not canonical URL-safe base64')
    return data


def normalize_secrets(secrets, setting='secret'):
    """Return secrets as a tuple of bytes, the signing one first.

    Accepts one secret or a sequence of them, as ``str`` or ``bytes``.
    """
    if isinstance(secrets, (str, bytes)):
        secrets = [secrets]
    result = []
    for secret in secrets:
        if isinstance(secret, str):
            secret = secret.encode('utf-8')
        if not isinstance(secret, bytes):
            raise TypeError(
                f'{setting}: secrets must be str or bytes, got'
                f' {type(secret).__name__}')
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f'{setting}: a secret must be at least {MIN_SECRET_LENGTH}'
                f' bytes long (got one of {len(secret)}); generate one with'
                ' secrets.token_urlsafe(32)')
        result.append(secret)
    if not result:
        raise ValueError(f'{setting}: at least one secret is required')
    return tuple(result)


class SecretsSetting:
    """A component's ``secret`` setting: one secret or a list of them (the
    first signs, every one is accepted), validated when set and kept as
    given, in a tuple. Setting it drops the component's volatile
    ``forget`` attribute: what it built from the old secrets."""

    def __init__(self, forget):
        self.forget = forget

    def __get__(self, component, owner=None):
        if component is None:
            return self
        return component._secrets

    def __set__(self, component, value):
        normalize_secrets(value, 'secret')       # validates now
        component._secrets = tuple(value) if isinstance(
            value, (list, tuple)) else (value,)
        setattr(component, self.forget, None)


# RFC 2104's inner and outer pads, as translation tables.
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))
_SHA256_BLOCK = 64


class KeyedSha256:
    """HMAC-SHA256 (RFC 2104) under one key, its two padded key blocks
    hashed once: each value then costs two hash copies and updates, all
    in hashlib. (The hmac module computes the same in more Python calls
    per value; its values are compared with these in the tests.)"""

    __slots__ = ('_inner', '_outer')

    def __init__(self, key):
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b'\0')
        self._inner = hashlib.sha256(key.translate(_INNER_PAD))
        self._outer = hashlib.sha256(key.translate(_OUTER_PAD))

    def digest(self, data):
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def __repr__(self):
        # Never show key material.
        return '<KeyedSha256>'


class Signer:
    """Signs and verifies text values.

    ``salt`` separates uses of the same secrets (client ids, cookie
    sessions), so a signature made for one is worthless for the other.

    ``remember``: how many values that passed to remember, so that the
    same value is not checked again (0: none). For values a client sends
    unchanged with request after request (client ids): only values that
    passed enter, a value is found only if equal in full, and the memory
    belongs to this signer, so new secrets start with none. Full, it is
    emptied and starts again.
    """

    def __init__(self, secrets, salt, max_length=DEFAULT_MAX_LENGTH,
                 remember=0):
        # One keyed HMAC per secret: the key schedule is computed once, not
        # on every request.
        self._macs = tuple(
            KeyedSha256(hashlib.sha256(salt.encode('utf-8') + b'\0'
                                       + secret).digest())
            for secret in normalize_secrets(secrets))
        self.max_length = max_length
        self._remember = remember
        self._passed = Remembered(remember)   # value -> payload

    def __repr__(self):
        # Never show key material.
        return f'<Signer with {len(self._macs)} key(s)>'

    def sign(self, payload):
        """Return ``payload.signature``; payload must be ASCII text."""
        return payload + '.' + b64encode(
            self._macs[0].digest(payload.encode('ascii')))

    def unsign(self, value):
        """Return the payload of a validly signed value, else None.

        Never raises on hostile input.
        """
        if not isinstance(value, str) or len(value) > self.max_length:
            return None
        # (Exactly str: a subclass could make any value equal a remembered
        # one.)
        payload = self._passed.get(value) if type(value) is str else None
        if payload is not None:
            return payload
        payload, sep, signature = value.rpartition('.')
        if not sep or not value.isascii():
            return None
        data = payload.encode('ascii')
        # Comparing the signature's text with the canonical encoding of
        # each expected MAC accepts exactly one spelling and decodes
        # nothing. Check every key, so timing does not tell which one
        # matched.
        valid = False
        for keyed_mac in self._macs:
            valid |= hmac.compare_digest(
                signature, b64encode(keyed_mac.digest(data)))
        if not valid:
            return None
        if self._remember:
            self._passed.remember(value, payload)
        return payload


@functools.lru_cache(maxsize=64)
def shared_signer(secrets, salt, max_length=DEFAULT_MAX_LENGTH, remember=0):
    """The process's one Signer for these settings (``secrets``: a tuple),
    so that what it remembers outlives the copies of the component that
    uses it: a site's snapshot is taken again every few seconds, and its
    client id manager with it. Other secrets get a Signer of their own,
    which remembers nothing yet."""
    return Signer(secrets, salt, max_length, remember)
