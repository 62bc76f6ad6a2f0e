"""Password hashing (argon2id) and generation of passwords, API keys and session keys.

Hashing and verifying are deliberately slow and memory-hard (RFC 9106's second recommended
argon2id profile: 64 MiB, 3 passes, 4 lanes, roughly 50-100 ms of CPU). In async code use the
``*_async`` variants: they run in a small dedicated thread pool, so the event loop never
blocks and a burst of logins can use at most ``_MAX_WORKERS`` x 64 MiB at once.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import string
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error
from argon2.profiles import RFC_9106_LOW_MEMORY

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "generate_api_key",
    "generate_password",
    "generate_secret_key",
    "generate_session_key",
    "hash_password",
    "hash_password_async",
    "needs_rehash",
    "verify_password",
    "verify_password_async",
]

MIN_PASSWORD_LENGTH: Final = 12
# 64 random bytes in URL-safe base64 without padding: 86 characters, the length of
# CloudStack's own API and secret keys. Only "A-Za-z0-9-_", which every client and
# CloudStack's URLEncoder leave unencoded, so keys never disturb request signing.
_KEY_BYTES: Final = 64
_SESSION_KEY_BYTES: Final = 32  # 256 bits; CloudStack uses 160
_PASSWORD_ALPHABET: Final = string.ascii_letters + string.digits + "-_"

_hasher: Final = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)

# Bounded on purpose: each hash holds 64 MiB while it runs.
_MAX_WORKERS: Final = max(1, min(4, os.cpu_count() or 1))
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
# Verified against when there is no stored hash, so "no such user" costs as much as
# "wrong password" and response times do not reveal which user names exist.
_dummy_hash: str | None = None


def hash_password(password: str) -> str:
    """Return the argon2id hash of ``password`` (PHC string with its own random salt).

    Raises ``ValueError`` if ``password`` cannot be encoded as UTF-8 (a lone surrogate).
    """
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; never raises.

    A mismatch, a malformed hash or an unencodable password all give ``False``. With
    ``stored_hash=None`` (unknown user) a dummy hash is verified anyway and ``False``
    returned, which takes as long as a real check.
    """
    if stored_hash is None:
        _verify(_get_dummy_hash(), password)
        return False
    return _verify(stored_hash, password)


def needs_rehash(stored_hash: str) -> bool:
    """Whether ``stored_hash`` was made with other parameters than the current ones.

    Call it after a successful ``verify_password`` and store a fresh ``hash_password`` if so.
    A hash that cannot be parsed needs one too.
    """
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except (Argon2Error, ValueError, TypeError):
        return True


async def hash_password_async(password: str) -> str:
    """``hash_password`` run in the hashing thread pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_get_executor(), hash_password, password)


async def verify_password_async(stored_hash: str | None, password: str) -> bool:
    """``verify_password`` run in the hashing thread pool; never raises either."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_get_executor(), verify_password, stored_hash, password)


def generate_password(length: int = 20) -> str:
    """Return a random password of ``length`` URL-safe characters (``A-Za-z0-9-_``).

    Each character carries 6 bits; ``length`` below ``MIN_PASSWORD_LENGTH`` raises
    ``ValueError``.
    """
    if length < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password length must be at least {MIN_PASSWORD_LENGTH}")
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


def generate_api_key() -> str:
    """Return a new API key: 86 URL-safe characters (512 random bits), like CloudStack's."""
    return secrets.token_urlsafe(_KEY_BYTES)


def generate_secret_key() -> str:
    """Return a new secret key: 86 URL-safe characters (512 random bits), like CloudStack's."""
    return secrets.token_urlsafe(_KEY_BYTES)


def generate_session_key() -> str:
    """Return a new session key: 43 URL-safe characters (256 random bits)."""
    return secrets.token_urlsafe(_SESSION_KEY_BYTES)


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    # Argon2Error: mismatch or corrupt hash; ValueError: InvalidHashError, and
    # UnicodeEncodeError for a non-ASCII hash or an unencodable password; TypeError: not str.
    except (Argon2Error, ValueError, TypeError):
        return False


def _get_dummy_hash() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        # Racing threads may each compute one; any of them is as good.
        _dummy_hash = _hasher.hash(secrets.token_urlsafe(16))
    return _dummy_hash


def _get_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=_MAX_WORKERS, thread_name_prefix="cloudiag-argon2"
            )
        return _executor
