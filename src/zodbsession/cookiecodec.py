"""Encoding session data into a cookie value: JSON, signed, maybe sealed.

A value is ``<mode><base64>.<hmac>``: mode ``p`` carries the JSON in the
clear (signed only), mode ``e`` carries AES-256-GCM ciphertext (nonce
first; the cookie name is authenticated with it). The HMAC-SHA256
signature covers everything before it, with key rotation as in
``zodbsession.signing``; encryption keys rotate the same way (the first
seals, any opens). Decoding never raises on hostile input.
"""
import json
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from zodbsession.signing import Signer
from zodbsession.signing import b64decode
from zodbsession.signing import b64encode

AES_KEY_BYTES = 32
NONCE_BYTES = 12
_SALT = 'zodbsession.cookie'


def _refuse_constant(name):
    # NaN, Infinity, -Infinity: Python's JSON, not JSON (encode refuses
    # them too).
    raise ValueError(f'{name} is not JSON')


# (One decoder: json.loads would build one per call for the option.)
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def normalize_encryption_keys(keys):
    """A tuple of 32-byte keys from bytes or URL-safe base64 text."""
    if keys is None:
        return ()
    if not isinstance(keys, (list, tuple)):
        keys = [keys]    # one key; anything odd fails below, clearly
    result = []
    for key in keys:
        raw = key
        if isinstance(key, str):
            try:
                raw = b64decode(key.strip())
            except ValueError:
                raw = None
        if not isinstance(raw, bytes) or len(raw) != AES_KEY_BYTES:
            raise ValueError(
                'encryption_key: each key must be 32 bytes (AES-256), as'
                ' bytes or URL-safe base64 text; generate one with'
                ' zodbsession.cookiecodec.generate_encryption_key()')
        result.append(raw)
    return tuple(result)


def generate_encryption_key():
    """A new AES-256 key as URL-safe base64 text."""
    return b64encode(AESGCM.generate_key(bit_length=256))


class CookieCodec:
    """Turns a JSON-able dict into a cookie value and back."""

    def __init__(self, secrets, encryption_keys=(), cookie_name='',
                 max_length=4096):
        self._signer = Signer(secrets, _SALT, max_length)
        self._ciphers = tuple(AESGCM(key) for key in encryption_keys)
        self._associated = cookie_name.encode('utf-8')

    def __repr__(self):
        return (f'<CookieCodec encrypted={bool(self._ciphers)}'
                f' keys={len(self._ciphers)}>')

    @property
    def encrypted(self):
        return bool(self._ciphers)

    def encode(self, document):
        return self.encode_text(json.dumps(
            document, separators=(',', ':'), ensure_ascii=False,
            allow_nan=False))

    def encode_text(self, text):
        """``encode`` for a document already serialized as JSON text."""
        plain = text.encode('utf-8')
        if self._ciphers:
            nonce = os.urandom(NONCE_BYTES)
            sealed = self._ciphers[0].encrypt(nonce, plain, self._associated)
            payload = 'e' + b64encode(nonce + sealed)
        else:
            payload = 'p' + b64encode(plain)
        return self._signer.sign(payload)

    def decode(self, value):
        """The document, or None when the value is not one of ours."""
        return self.decode_text(value)[0]

    def decode_text(self, value):
        """(document, its JSON text), or (None, None) when the value is
        not one of ours."""
        payload = self._signer.unsign(value)
        if not payload:
            return None, None
        mode, body = payload[0], payload[1:]
        try:
            # The signature covers this text: it is as we wrote it.
            raw = b64decode(body, canonical=False)
        except ValueError:
            return None, None
        if mode == 'e':
            raw = self._open(raw)
        elif mode != 'p' or self._ciphers:
            # Once encryption is on, clear-text cookies are not accepted.
            return None, None
        if raw is None:
            return None, None
        try:
            text = raw.decode('utf-8')
            document = _DECODER.decode(text)
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None, None
        return (document, text) if isinstance(document, dict) else (
            None, None)

    def _open(self, raw):
        nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        if len(nonce) != NONCE_BYTES:
            return None
        for cipher in self._ciphers:
            try:
                return cipher.decrypt(nonce, sealed, self._associated)
            except Exception:
                continue
        return None
