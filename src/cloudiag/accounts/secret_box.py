"""API secret keys sealed at rest (AES-256-GCM), under a key kept outside the database.

A copy of the database (a backup, a world-readable file, a PostgreSQL dump) then signs
nothing: the key file is needed too. Each sealed value is bound to its API key, so a sealed
secret copied onto another account's row does not open. Every server of one database must
be given the same key file.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: Marks a sealed value; a clear secret (URL-safe base64) never holds a ':'.
PREFIX = "aesgcm1:"
_KEY_BYTES = 32
_NONCE_BYTES = 12


class SecretBoxError(RuntimeError):
    """A sealed secret does not open with this key (another key file, or tampered)."""


def is_sealed(stored: str) -> bool:
    """Whether a stored secret is sealed (older databases hold clear ones)."""
    return stored.startswith(PREFIX)


class SecretBox:
    """Seals and opens secrets with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise SecretBoxError(f"a secrets key is {_KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self._key = key

    def derive(self, purpose: str) -> bytes:
        """A key of its own for `purpose` (e.g. signing download URLs), the same on every
        server with this key file; it tells nothing of the key that seals secrets."""
        return hmac.new(self._key, f"cloudiag:{purpose}".encode(), hashlib.sha256).digest()

    @classmethod
    def generate(cls) -> SecretBox:
        """A box with a new random key (what a new key file holds)."""
        return cls(secrets.token_bytes(_KEY_BYTES))

    def seal(self, secret: str, *, bound_to: str) -> str:
        """The secret as stored: sealed, and bound to `bound_to` (its API key)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), bound_to.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, stored: str, *, bound_to: str) -> str:
        """The clear secret of a sealed value; SecretBoxError if it does not open."""
        if not is_sealed(stored):
            raise SecretBoxError("the stored secret is not sealed")
        try:
            raw = base64.urlsafe_b64decode(stored.removeprefix(PREFIX))
            clear = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], bound_to.encode())
        except (InvalidTag, ValueError):
            raise SecretBoxError("a stored secret does not open with this secrets key") from None
        return clear.decode()


def load_or_create(path: Path) -> SecretBox:
    """The box of the key in `path`, made (0600) on the first use. Blocking: use a thread."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.urlsafe_b64encode(secrets.token_bytes(_KEY_BYTES)).decode() + "\n")
            fh.flush()
            os.fsync(fd)
    with path.open() as fh:
        os.fchmod(fh.fileno(), 0o600)
        text = fh.read().strip()
    try:
        return SecretBox(base64.urlsafe_b64decode(text))
    except (ValueError, SecretBoxError) as exc:
        raise SecretBoxError(f"{path} holds no secrets key: {exc}") from None
