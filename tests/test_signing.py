import hashlib
import hmac

import pytest

from zodbsession import signing
from zodbsession.signing import Signer

SECRET = 'a-secret-long-enough-for-tests'
OTHER = 'another-secret-long-enough-too'


def test_sign_then_unsign_gives_the_payload():
    signer = Signer(SECRET, 'salt')
    assert signer.unsign(signer.sign('payload')) == 'payload'


def test_signature_is_hmac_sha256_of_the_payload_with_a_salted_key():
    signed = Signer(SECRET, 'salt').sign('payload')
    payload, signature = signed.rsplit('.', 1)
    key = hashlib.sha256(b'salt\0' + SECRET.encode()).digest()
    expected = hmac.new(key, b'payload', hashlib.sha256).digest()
    assert payload == 'payload'
    assert signing.b64decode(signature) == expected


@pytest.mark.parametrize('key_length', [0, 1, 32, 63, 64, 65, 200])
@pytest.mark.parametrize('message', [b'', b'payload', b'x' * 1000])
def test_our_keyed_sha256_is_the_hmac_modules_hmac_sha256(key_length,
                                                           message):
    # The signer keeps its own small HMAC (hashlib, pads hashed once);
    # it must give exactly what the standard library's does, for keys
    # shorter than, as long as and longer than SHA-256's block.
    key = bytes(range(256))[:key_length] if key_length <= 256 else b''
    mac = signing.KeyedSha256(key)
    assert mac.digest(message) == hmac.new(
        key, message, hashlib.sha256).digest()
    # Used again, it starts from its key each time.
    assert mac.digest(message) == mac.digest(message)
    assert 'KeyedSha256' in repr(mac) and repr(key) not in repr(mac)


def test_salt_separates_uses_of_one_secret():
    signed = Signer(SECRET, 'one').sign('payload')
    assert Signer(SECRET, 'two').unsign(signed) is None


def test_rotation_signs_with_first_and_accepts_all():
    old = Signer(OTHER, 'salt')
    rotated = Signer([SECRET, OTHER], 'salt')
    assert rotated.unsign(old.sign('x')) == 'x'
    assert rotated.sign('x') == Signer(SECRET, 'salt').sign('x')
    assert old.unsign(rotated.sign('x')) is None


@pytest.mark.parametrize('value', [
    None, 42, b'payload.sig', '', '.', 'payload', 'payload.',
    'payload.!!!!', 'payload.' + 'A' * 10, 'päyload.abc',
])
def test_hostile_values_are_rejected_without_exception(value):
    assert Signer(SECRET, 'salt').unsign(value) is None


def test_flipping_any_character_invalidates():
    signer = Signer(SECRET, 'salt')
    signed = signer.sign('payload')
    for index, char in enumerate(signed):
        if char == '.':
            continue
        replacement = 'B' if char != 'B' else 'C'
        tampered = signed[:index] + replacement + signed[index + 1:]
        assert signer.unsign(tampered) is None, index


def test_too_long_values_are_rejected_before_hashing():
    signer = Signer(SECRET, 'salt', max_length=20)
    long_payload = 'x' * 30
    assert Signer(SECRET, 'salt').unsign(
        Signer(SECRET, 'salt').sign(long_payload)) == long_payload
    assert signer.unsign(signer.sign(long_payload)) is None


def test_short_secret_is_rejected_with_advice():
    with pytest.raises(ValueError, match='at least 16 bytes') as info:
        Signer('short', 'salt')
    assert 'token_urlsafe' in str(info.value)


def test_no_secret_and_wrong_type_are_rejected():
    with pytest.raises(ValueError, match='at least one secret'):
        Signer([], 'salt')
    with pytest.raises(TypeError, match='int'):
        Signer([12345678901234567890], 'salt')


def test_bytes_and_text_secrets_are_the_same_key():
    signed = Signer(SECRET, 'salt').sign('x')
    assert Signer(SECRET.encode(), 'salt').unsign(signed) == 'x'


def test_repr_shows_no_key_material():
    signer = Signer([SECRET, OTHER], 'salt')
    text = repr(signer)
    assert SECRET not in text and OTHER not in text
    assert '2 key' in text


def test_b64decode_rejects_garbage():
    with pytest.raises(ValueError):
        signing.b64decode('a+b/')
    assert signing.b64decode(signing.b64encode(b'\xff\x00')) == b'\xff\x00'


def test_signature_has_one_spelling():
    # '+'/'/' instead of '-'/'_', or different spare bits in the last
    # character, decode to the same MAC; they must not verify.
    signer = Signer(SECRET, 'salt')
    signed = signer.sign('payload')
    payload, signature = signed.rsplit('.', 1)
    variants = {signature.replace('-', '+').replace('_', '/')}
    last = signature[-1]
    alphabet = ('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
                '0123456789-_')
    # 32 bytes -> 43 characters; the last one carries 2 spare bits.
    base = alphabet.index(last) & ~0b11
    variants |= {signature[:-1] + alphabet[base + bits] for bits in range(4)}
    variants.discard(signature)
    assert variants
    for variant in variants:
        assert signer.unsign(payload + '.' + variant) is None, variant


# -- remembering values that passed ---------------------------------------------

def _forget_keys(signer):
    """Make ``signer`` check with a key nobody signs with: from then on
    only what it remembers can pass."""
    signer._macs = Signer(OTHER, 'elsewhere')._macs


def test_a_remembered_value_passes_without_its_hmac_being_computed():
    signer = Signer(SECRET, 'salt', remember=10)
    seen, unseen = signer.sign('seen'), signer.sign('unseen')
    assert signer.unsign(seen) == 'seen'
    _forget_keys(signer)
    assert signer.unsign(seen) == 'seen'      # remembered
    assert signer.unsign(unseen) is None      # checked, and fails now


def test_values_are_not_remembered_by_default():
    signer = Signer(SECRET, 'salt')
    signed = signer.sign('payload')
    assert signer.unsign(signed) == 'payload'
    _forget_keys(signer)
    assert signer.unsign(signed) is None


def test_a_value_that_failed_is_never_remembered():
    signer = Signer(SECRET, 'salt', remember=10)
    signed = signer.sign('payload')
    forged = signed[:-1] + ('B' if signed[-1] != 'B' else 'C')
    for _ in range(2):
        assert signer.unsign(forged) is None
    assert forged not in signer._passed


def test_remembering_is_bounded():
    signer = Signer(SECRET, 'salt', remember=3)
    for index in range(10):
        assert signer.unsign(signer.sign(f'v{index}')) == f'v{index}'
        assert len(signer._passed) <= 3
    # The newest is among the remembered ones.
    assert signer.sign('v9') in signer._passed


def test_a_str_subclass_equal_to_anything_is_checked_in_full():
    signer = Signer(SECRET, 'salt', remember=10)
    signed = signer.sign('payload')
    assert signer.unsign(signed) == 'payload'

    class EqualToAll(str):
        def __eq__(self, other):
            return True

        def __hash__(self):
            return hash(signed)

    assert signer.unsign(EqualToAll('forged.value')) is None


def test_new_client_id_secrets_forget_what_the_old_ones_passed():
    from zodbsession.clientid import CookieClientIdManager
    manager = CookieClientIdManager(secret=SECRET)
    client_id = manager.generateUniqueId()
    assert manager.verify(client_id)
    manager.secret = OTHER
    assert not manager.verify(client_id)


def test_copies_of_a_manager_remember_the_ids_either_verified(monkeypatch):
    # A site's snapshot copies its client id manager every few seconds:
    # an id verified through one copy is not verified again through the
    # next, as long as the secrets stay.
    import copy

    from zodbsession import CookieClientIdManager

    manager = CookieClientIdManager(secret=SECRET)
    client_id = manager.generateUniqueId()
    checks = []
    compare = hmac.compare_digest

    def counted(a, b):
        checks.append(1)
        return compare(a, b)
    monkeypatch.setattr(signing.hmac, 'compare_digest', counted)
    assert manager.verify(client_id)
    assert len(checks) == 1
    assert copy.deepcopy(manager).verify(client_id)
    assert len(checks) == 1
    # Other secrets remember nothing of these.
    rotated = copy.deepcopy(manager)
    rotated.secret = [OTHER, SECRET]
    assert rotated.verify(client_id)
    assert len(checks) == 3         # checked with both secrets
