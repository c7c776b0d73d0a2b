"""Personal data at rest: authenticated encryption, keyed lookup hashes, masking."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"linli-personal-data", info=purpose).derive(secret.encode())


class PersonalDataCipher:
    """Encrypts personal fields (Fernet: AES-128-CBC + HMAC) and hashes them for lookup.

    Both keys are derived from the secret key with HKDF, each for its own purpose, so the
    lookup hash reveals nothing about the encryption key.
    """

    def __init__(self, secret_key: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret_key, b"encrypt")))
        self._hash_key = _derive(secret_key, b"lookup-hash")

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("personal data could not be decrypted with this key") from exc

    def lookup_hash(self, value: str) -> str:
        """A keyed hash (HMAC-SHA256) for equality lookup without storing the plain value."""
        return hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()


def mask_national_id(value: str) -> str:
    """Show the first 4 and last 4 characters: 1101**********1234."""
    return value[:4] + "*" * (len(value) - 8) + value[-4:] if len(value) > 8 else "*" * len(value)


def mask_phone(value: str) -> str:
    """Show the first 3 and last 4 digits: 138****1234."""
    return value[:3] + "*" * (len(value) - 7) + value[-4:] if len(value) > 7 else "*" * len(value)


def new_token() -> str:
    """A random bearer token (256 bits)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Tokens are stored as SHA-256 digests; a leaked table does not leak sessions."""
    return hashlib.sha256(token.encode()).hexdigest()


class InvalidSignedToken(ValueError):
    """The token was not signed with this key and purpose (forged, altered or malformed)."""


class ExpiredSignedToken(ValueError):
    """The token is genuine but its time is up."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(secret_key: str, *, purpose: str, payload: str, expires_at: int) -> str:
    """An opaque, signed, expiring token: base64url(payload|expiry).base64url(HMAC-SHA256).

    The HMAC key is derived from the secret key for `purpose`, so a token made for one purpose
    never verifies for another. `expires_at` is a Unix time in seconds.
    """
    body = f"{payload}|{expires_at}".encode()
    mac = hmac.new(_derive(secret_key, b"signed-token:" + purpose.encode()), body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def verify_token(secret_key: str, *, purpose: str, token: str, now: int) -> str:
    """The payload of a token made by sign_token; raises InvalidSignedToken or ExpiredSignedToken."""
    try:
        body_text, mac_text = token.strip().split(".")
        body, mac = _unb64(body_text), _unb64(mac_text)
    except (ValueError, UnicodeEncodeError):
        raise InvalidSignedToken("malformed token") from None
    expected = hmac.new(_derive(secret_key, b"signed-token:" + purpose.encode()), body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise InvalidSignedToken("bad signature")
    payload, _, expiry = body.decode().rpartition("|")
    if not expiry.isdigit():
        raise InvalidSignedToken("malformed token")
    if int(expiry) <= now:
        raise ExpiredSignedToken("token expired")
    return payload
