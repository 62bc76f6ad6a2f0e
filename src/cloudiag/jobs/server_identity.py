"""The identity of a management server: the owner recorded on every job it runs.

A uuid made on the first start and kept in the data directory (`server-id`), so it survives
restarts, a new port or a new address; hostname:port did not, and collided between hosts
of the same name. The server_id setting (CLOUDIAG_SERVER_ID) sets it instead (e.g. a
container without a persistent data directory). While a server runs it holds a lock on the
file: a second server started on the same data directory would take over the first one's
jobs at its start (recovery fails them), so it is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

SERVER_ID_FILE = "server-id"
SERVER_ID_ENV = "CLOUDIAG_SERVER_ID"
#: What async_jobs.server_id holds: 64 characters at most, nothing a log line could mangle.
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class ServerIdError(RuntimeError):
    """The server id cannot be had: invalid, or the data directory is in use."""


@dataclass
class ServerIdentity:
    """A server id, and the lock that keeps it this process's while the server runs."""

    id: str
    #: Where the id comes from (the file, or the environment variable), for the start-up log.
    source: str
    _fd: int | None = None

    def release(self) -> None:
        """Let another process use this data directory's id (the server has stopped)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def claim_server_id(data_dir: Path, configured: str | None = None) -> ServerIdentity:
    """This server's id: `configured` (the setting), else `data_dir/server-id` (made once).

    Blocking file work: call it in a thread. Raises ServerIdError when the id is invalid or
    another running server holds the file.
    """
    if configured:
        if not _VALID.fullmatch(configured):
            raise ServerIdError(f"{SERVER_ID_ENV} must be 1-64 characters of A-Z a-z 0-9 . _ : -")
        return ServerIdentity(configured, SERVER_ID_ENV)
    path = data_dir / SERVER_ID_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServerIdError(
                f"another cloudiag server is running on the data directory {data_dir}; give "
                f"each server its own --data-dir (or its own {SERVER_ID_ENV})"
            ) from None
        text = os.read(fd, 4096).decode("utf-8", errors="replace").strip()
        if not text:
            text = str(uuid.uuid4())
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{text}\n".encode(), 0)
            os.fsync(fd)
        elif not _VALID.fullmatch(text):
            raise ServerIdError(f"{path} holds no valid server id; remove it and a new one is made")
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    return ServerIdentity(text, str(path), fd)
