"""CookieCodec: JSON documents in signed, optionally sealed cookie values.

Every hostile value decodes to None; nothing a client sends raises.
"""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zodbsession.cookiecodec import _SALT
from zodbsession.cookiecodec import AES_KEY_BYTES
from zodbsession.cookiecodec import CookieCodec
from zodbsession.cookiecodec import generate_encryption_key
from zodbsession.cookiecodec import normalize_encryption_keys
from zodbsession.signing import Signer
from zodbsession.signing import b64decode
from zodbsession.signing import b64encode

SECRET = 'codec-test-secret-0123456789'
OTHER_SECRET = 'another-codec-secret-9876543210'
KEY = generate_encryption_key()
OTHER_KEY = generate_encryption_key()
DOCUMENT = {'t': 1_700_000_000, 'c': 'abc', 'd': {'demo.prefs': {
    'theme': 'dark', 'sizes': [1, 2.5, None, True], 'name': 'Zoë'}}}


def signed(payload, secret=SECRET):
    """A value with a valid signature around an arbitrary payload."""
    return Signer(secret, _SALT).sign(payload)


def flip(text, index):
    """``text`` with one base64 character changed."""
    replacement = 'B' if text[index] != 'B' else 'C'
    return text[:index] + replacement + text[index + 1:]


@pytest.fixture(params=['signed', 'encrypted'])
def codec(request):
    keys = normalize_encryption_keys(KEY) if request.param == 'encrypted' \
        else ()
    return CookieCodec(SECRET, keys, 'zodbsession_data')


def test_round_trip(codec):
    value = codec.encode(DOCUMENT)
    assert value.isascii()
    assert codec.decode(value) == DOCUMENT


def test_signed_only_value_carries_readable_json():
    value = CookieCodec(SECRET).encode(DOCUMENT)
    payload = value.rpartition('.')[0]
    assert payload[0] == 'p'
    assert json.loads(b64decode(payload[1:])) == DOCUMENT


def test_encrypted_value_hides_the_data():
    codec = CookieCodec(SECRET, normalize_encryption_keys(KEY))
    value = codec.encode(DOCUMENT)
    assert value[0] == 'e'
    raw = b64decode(value.rpartition('.')[0][1:])
    assert b'dark' not in raw and b'demo.prefs' not in raw
    # A fresh nonce each time: equal documents give different values.
    assert codec.encode(DOCUMENT) != value
    assert codec.encrypted and not CookieCodec(SECRET).encrypted


def test_repr_shows_no_key_material():
    codec = CookieCodec(SECRET, normalize_encryption_keys([KEY, OTHER_KEY]))
    assert repr(codec) == '<CookieCodec encrypted=True keys=2>'
    assert SECRET not in repr(codec) and KEY not in repr(codec)


def test_non_json_document_is_refused_when_encoding():
    with pytest.raises(ValueError):
        CookieCodec(SECRET).encode({'x': float('nan')})
    with pytest.raises(TypeError):
        CookieCodec(SECRET).encode({'x': object()})


# -- every bad value means None -------------------------------------------

def _bad_values(codec):
    good = codec.encode(DOCUMENT)
    payload, _, signature = good.rpartition('.')
    return {
        'empty': '',
        'tampered payload': flip(payload, len(payload) // 2) + '.' + signature,
        'tampered mode': ('x' + payload[1:]) + '.' + signature,
        'tampered signature': payload + '.' + flip(signature, 5),
        'signature missing': payload,
        'truncated by one': good[:-1],
        'truncated by half': good[:len(good) // 2],
        'non-ASCII garbage': 'p\xe9\xff\u2603.' + signature,
        'too long': good + 'A' * 5000,
        'not a string': None,
    }


@pytest.mark.parametrize('kind', list(_bad_values(CookieCodec(SECRET))))
def test_bad_values_decode_to_none(codec, kind):
    assert codec.decode(_bad_values(codec)[kind]) is None


def test_value_signed_with_another_secret(codec):
    stranger = CookieCodec(OTHER_SECRET, codec._ciphers and
                           normalize_encryption_keys(KEY) or (),
                           'zodbsession_data')
    assert codec.decode(stranger.encode(DOCUMENT)) is None


def test_value_sealed_with_another_key():
    ours = CookieCodec(SECRET, normalize_encryption_keys(KEY))
    theirs = CookieCodec(SECRET, normalize_encryption_keys(OTHER_KEY))
    assert ours.decode(theirs.encode(DOCUMENT)) is None


def test_sealed_value_is_bound_to_its_cookie_name():
    keys = normalize_encryption_keys(KEY)
    prefs = CookieCodec(SECRET, keys, 'prefs_data')
    cart = CookieCodec(SECRET, keys, 'cart_data')
    assert cart.decode(prefs.encode(DOCUMENT)) is None


def test_encrypting_codec_refuses_clear_text_values():
    clear = CookieCodec(SECRET).encode(DOCUMENT)
    assert CookieCodec(SECRET, normalize_encryption_keys(KEY)).decode(
        clear) is None


def test_signing_only_codec_cannot_open_sealed_values():
    sealed = CookieCodec(SECRET, normalize_encryption_keys(KEY)).encode(
        DOCUMENT)
    assert CookieCodec(SECRET).decode(sealed) is None


@pytest.mark.parametrize('payload', [
    'p' + b64encode(b'{not json'),
    'p' + b64encode(b'[1, 2, 3]'),
    'p' + b64encode(b'"a string"'),
    'p' + b64encode(b'\xff\xfe not utf-8'),
    'p' + b64encode(b'[' * 100_000),
    'p' + 'not base64!',
    'p',
    'q' + b64encode(b'{}'),
    'e' + b64encode(b'short'),
    'e' + b64encode(b'\0' * 40),
], ids=['not json', 'json list', 'json string', 'not utf-8',
        'nested too deep', 'bad base64', 'empty body', 'unknown mode',
        'short nonce', 'garbage ciphertext'])
def test_validly_signed_nonsense_decodes_to_none(payload):
    value = signed(payload)
    assert CookieCodec(SECRET).decode(value) is None
    assert CookieCodec(SECRET, normalize_encryption_keys(KEY)).decode(
        value) is None


@given(st.text(max_size=300))
def test_decode_never_raises_on_arbitrary_text(text):
    assert CookieCodec(SECRET).decode(text) is None


@given(st.binary(max_size=300))
def test_decode_never_raises_on_signed_arbitrary_payloads(raw):
    codec = CookieCodec(SECRET, normalize_encryption_keys(KEY))
    for mode in 'pe':
        result = codec.decode(signed(mode + b64encode(raw)))
        assert result is None or isinstance(result, dict)


# -- key rotation -------------------------------------------------------------

def test_secret_rotation_reads_old_and_signs_with_new():
    old = CookieCodec(OTHER_SECRET)
    rotated = CookieCodec([SECRET, OTHER_SECRET])
    assert rotated.decode(old.encode(DOCUMENT)) == DOCUMENT
    fresh = rotated.encode(DOCUMENT)
    assert CookieCodec(SECRET).decode(fresh) == DOCUMENT
    assert CookieCodec(OTHER_SECRET).decode(fresh) is None


def test_encryption_key_rotation_opens_old_and_seals_with_new():
    old = CookieCodec(SECRET, normalize_encryption_keys(OTHER_KEY))
    rotated = CookieCodec(SECRET, normalize_encryption_keys([KEY, OTHER_KEY]))
    assert rotated.decode(old.encode(DOCUMENT)) == DOCUMENT
    fresh = rotated.encode(DOCUMENT)
    assert CookieCodec(SECRET, normalize_encryption_keys(KEY)).decode(
        fresh) == DOCUMENT
    assert old.decode(fresh) is None


# -- key validation ---------------------------------------------------------

def test_generated_keys_are_32_random_bytes():
    assert len(b64decode(KEY)) == AES_KEY_BYTES
    assert KEY != OTHER_KEY


def test_keys_as_bytes_or_base64_text():
    raw = b64decode(KEY)
    assert normalize_encryption_keys(raw) == (raw,)
    assert normalize_encryption_keys(KEY) == (raw,)
    assert normalize_encryption_keys(f'  {KEY}\n') == (raw,)
    assert normalize_encryption_keys([KEY, raw]) == (raw, raw)
    assert normalize_encryption_keys(None) == ()


@pytest.mark.parametrize('key', [
    b'\0' * 16, b'\0' * 31, b'\0' * 33, '', 'not base64 at all!',
    b64encode(b'\0' * 16), 32, [KEY, b'short'],
], ids=['16 bytes', '31 bytes', '33 bytes', 'empty text', 'not base64',
        'base64 of 16 bytes', 'an int', 'one bad key in a list'])
def test_bad_encryption_keys_are_rejected_with_advice(key):
    with pytest.raises(ValueError, match=r'32 bytes.*generate_encryption_key'):
        normalize_encryption_keys(key)


def test_short_secret_is_rejected():
    with pytest.raises(ValueError, match='at least 16 bytes'):
        CookieCodec('too-short')
