"""Secrets at rest: AES-GCM with a key derived from ``MAILGATE_SECRET``.

Encrypted values are strings ``$mg1$<base64url(nonce | ciphertext | tag)>`` so they can sit in any
JSON or msgpack field. Without ``MAILGATE_SECRET`` a random key is generated once and kept in
``<data>/secret.key`` (with a warning: several machines sharing one Redis need the same secret).
API tokens are not encrypted but hashed (:func:`hash_token`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailgate.errors import ConfigError, StoreError

PREFIX = "$mg1$"
NONCE_BYTES = 12
KEY_FILE = "secret.key"
HKDF_INFO = b"mailgate secrets at rest v1"

log = structlog.get_logger("mailgate.crypto")


def derive_key(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(
        secret.encode()
    )


def load_or_create_secret(secret: str | None, data_dir: Path) -> str:
    """The configured secret, or one generated and kept in the data directory."""
    if secret:
        return secret
    path = data_dir / KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    generated = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(generated + "\n")
    log.warning(
        "MAILGATE_SECRET is not set: generated an encryption key",
        path=str(path),
        hint="set MAILGATE_SECRET, the same on every process sharing this Redis",
    )
    return generated


class SecretBox:
    """Encrypts and decrypts short secrets (passwords, tokens, client secrets)."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ConfigError("an encryption secret is required")
        self._aead = AESGCM(derive_key(secret))

    def encrypt(self, plaintext: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), None)
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def decrypt(self, value: str) -> str:
        if not is_encrypted(value):
            return value
        body = value[len(PREFIX) :]
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        try:
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None).decode()
        except (InvalidTag, ValueError) as exc:
            raise StoreError(
                "cannot decrypt a stored secret: was MAILGATE_SECRET changed?"
            ) from exc


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX)


def hash_token(token: str) -> str:
    """The token id: SHA-256 hex of the token. Only this is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A new API token: 32 random bytes as 64 hex characters."""
    return secrets.token_hex(32)
