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
