from __future__ import annotations

import base64
import hashlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.core.crypto import PersonalDataCipher, mask_national_id, mask_phone

KEY = "crypto-test-key-0123456789-abcdefghijklmnopqrstuvwxyz"
OTHER_KEY = "crypto-test-key-9876543210-zyxwvutsrqponmlkjihgfedcba"

cipher = PersonalDataCipher(KEY)
other_cipher = PersonalDataCipher(OTHER_KEY)

keys = st.text(min_size=1, max_size=80)
national_ids = st.text(alphabet=string.digits, min_size=17, max_size=17).flatmap(
    lambda first17: st.sampled_from(string.digits + "X").map(lambda check: first17 + check)
)
phones = st.text(alphabet=string.digits, min_size=9, max_size=9).flatmap(
    lambda rest: st.sampled_from("3456789").map(lambda second: "1" + second + rest)
)


@given(value=st.text())
def test_decrypt_returns_what_was_encrypted(value: str) -> None:
    # given
    token = cipher.encrypt(value)
    # when
    plain = cipher.decrypt(token)
    # then
    assert plain == value


@given(value=st.text())
def test_ciphertext_differs_on_every_call(value: str) -> None:
    # when
    first, second = cipher.encrypt(value), cipher.encrypt(value)
    # then
    assert first != second
    assert cipher.decrypt(first) == cipher.decrypt(second) == value


@given(value=st.text())
def test_lookup_hash_is_deterministic_for_one_key(value: str) -> None:
    # when
    digest = cipher.lookup_hash(value)
    # then
    assert digest == cipher.lookup_hash(value)
    assert digest == PersonalDataCipher(KEY).lookup_hash(value)
    assert len(digest) == 64
    assert set(digest) <= set("0123456789abcdef")


@given(value=st.text(), key_a=keys, key_b=keys)
def test_lookup_hash_depends_on_the_key(value: str, key_a: str, key_b: str) -> None:
    # given
    a, b = PersonalDataCipher(key_a), PersonalDataCipher(key_b)
    # when
    digest_a, digest_b = a.lookup_hash(value), b.lookup_hash(value)
    # then
    assert (digest_a == digest_b) is (key_a == key_b)
    # keyed: not the plain digest of the value that anyone could compute
    assert digest_a != hashlib.sha256(value.encode()).hexdigest()


@given(a=st.text(), b=st.text())
def test_lookup_hashes_of_different_values_differ(a: str, b: str) -> None:
    assert (cipher.lookup_hash(a) == cipher.lookup_hash(b)) is (a == b)


@given(value=st.text())
def test_decrypting_with_another_key_raises_value_error(value: str) -> None:
    # given
    token = cipher.encrypt(value)
    # when / then
    with pytest.raises(ValueError, match=r"^personal data could not be decrypted with this key$"):
        other_cipher.decrypt(token)


@given(value=st.text(), position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_a_tampered_token_is_refused(value: str, position: int, bit: int) -> None:
    # given: one bit of the token's bytes flipped
    raw = bytearray(base64.urlsafe_b64decode(cipher.encrypt(value)))
    raw[position % len(raw)] ^= 1 << bit
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode()
    # when / then
    with pytest.raises(ValueError, match="could not be decrypted"):
        cipher.decrypt(tampered)


def test_a_token_that_is_not_fernet_is_refused() -> None:
    with pytest.raises(ValueError, match="could not be decrypted"):
        cipher.decrypt("110105194912310029")


@given(value=national_ids)
def test_national_id_mask_keeps_exactly_the_first_four_and_last_four(value: str) -> None:
    # when
    masked = mask_national_id(value)
    # then
    assert masked == value[:4] + "**********" + value[-4:]
    assert len(masked) == 18


def test_national_id_mask_example() -> None:
    assert mask_national_id("11010519491231002X") == "1101**********002X"


@given(value=phones)
def test_phone_mask_keeps_exactly_the_first_three_and_last_four(value: str) -> None:
    # when
    masked = mask_phone(value)
    # then
    assert masked == value[:3] + "****" + value[-4:]
    assert len(masked) == 11


def test_phone_mask_example() -> None:
    assert mask_phone("13812345678") == "138****5678"


@given(value=st.text(max_size=8))
def test_values_too_short_to_mask_partly_are_masked_whole(value: str) -> None:
    assert mask_national_id(value) == "*" * len(value)


@given(value=st.text(max_size=7))
def test_phones_too_short_to_mask_partly_are_masked_whole(value: str) -> None:
    assert mask_phone(value) == "*" * len(value)
