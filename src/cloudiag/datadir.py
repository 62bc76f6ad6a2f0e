"""The data directory: only its owner may read it, and one running stack holds it at a time.

It holds the SQLite database (API secret keys, password hashes), credentials.json, the
private NATS store and its token: all of it is the owner's only (directory 0700, files 0600).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = "lock"
CREDENTIALS_FILE = "credentials.json"
#: The SQLite file of the default database (Settings.resolved_database_url).
SQLITE_FILE = "cloudiag.db"
#: Files and folders cloudiag makes in a data directory (server-id: jobs/server_identity.py; nats
#: and nats.conf: bus/embedded.py).
OWN_FILES = (
    SQLITE_FILE,
    f"{SQLITE_FILE}-wal",
    f"{SQLITE_FILE}-shm",
    CREDENTIALS_FILE,
    LOCK_FILE,
    "secrets.key",
    "server-id",
    "nats.conf",
    "nats",
)
#: What the owner alone may do with the files made here (umask of the commands that do).
PRIVATE_UMASK = 0o077


class DataDirInUse(RuntimeError):
    """Another running cloudiag holds the data directory."""


@dataclass
class DataDirLock:
    """The lock of a data directory, held while a stack runs on it."""

    path: Path
    _fd: int | None

    def release(self) -> None:
        """Let another stack use the directory (this one has stopped)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def prepare(data_dir: Path, *, sqlite: bool) -> None:
    """Make the directory (0700) and take group and other access away from what it holds.

    Blocking file work: call it in a thread. SQLite gives its -wal and -shm files the mode of
    the database file, so a private cloudiag.db, made here (`sqlite`: the default database
    is used) before SQLite opens it, keeps them private as well.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir.chmod(0o700)
    db = data_dir / SQLITE_FILE
    if sqlite and not db.exists():
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT, 0o600))
    # Only what cloudiag keeps here: the directory may be shared with other files.
    for name in OWN_FILES:
        with contextlib.suppress(FileNotFoundError):
            path = data_dir / name
            path.chmod(stat.S_IMODE(path.lstat().st_mode) & ~PRIVATE_UMASK)


def lock(data_dir: Path) -> DataDirLock:
    """Hold `data_dir` for this process, or DataDirInUse; before anything else is touched.

    Blocking file work: call it in a thread. The lock goes with the process, so a crash
    never leaves the directory held.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirInUse(
            f"another cloudiag server is running on the data directory {data_dir}; stop it first, "
            "or give this one its own --data-dir"
        ) from None
    return DataDirLock(path, fd)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds a password or a key)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        # The mode of os.open applies to a new file only: an existing one keeps its own.
        os.fchmod(fd, 0o600)
        fh.write(text)
        fh.flush()
        os.fsync(fd)


def read_private(path: Path) -> str:
    """Read a file of secrets, making it readable by its owner only if it was not."""
    with path.open() as fh:
        os.fchmod(fh.fileno(), 0o600)
        return fh.read()


def save_credentials(data_dir: Path, credentials: dict[str, str]) -> Path:
    """Keep the generated admin credentials in DATA_DIR/credentials.json (0600)."""
    path = data_dir / CREDENTIALS_FILE
    write_private(path, json.dumps(credentials, indent=2))
    return path


def saved_credentials(data_dir: Path) -> dict[str, str] | None:
    """The credentials saved by the first start, or None when there are none readable."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(read_private(data_dir / CREDENTIALS_FILE))
        if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
            return data
    return None
