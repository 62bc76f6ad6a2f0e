"""nkeys: new user keys, their public halves, and seed files readable by their owner only."""

from __future__ import annotations

import os
from pathlib import Path

import nkeys


class NkeyError(ValueError):
    """A seed that is not a valid nkey user seed."""


def new_seed() -> str:
    """A new nkey user seed (SU…): the secret half; its public key names the user."""
    seed: bytes = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    return seed.decode()


def public_key(seed: str) -> str:
    """The public key (U…) of a user seed; raises NkeyError."""
    try:
        key = nkeys.from_seed(seed.strip().encode())
        public: bytes = key.public_key
    except (nkeys.NkeysError, ValueError, TypeError) as exc:
        raise NkeyError(f"not an nkey seed: {type(exc).__name__}") from None
    if not public.startswith(b"U"):
        raise NkeyError("not an nkey user seed")
    return public.decode()


def write_seed(path: Path, seed: str) -> Path:
    """Write a seed file, mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode applies only to a new file.
    with os.fdopen(fd, "w") as fh:
        fh.write(seed + "\n")
    return path


def load_or_create_seed(path: Path) -> str:
    """The seed in `path`, made first when there is none (the management servers' own)."""
    try:
        seed = path.read_text().strip()
    except FileNotFoundError:
        seed = new_seed()
        write_seed(path, seed)
        return seed
    public_key(seed)  # A damaged file is said now, not as a refused connection later.
    return seed
