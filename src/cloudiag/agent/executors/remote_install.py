"""The system-VM zipapp on a VM over SSH: installed by its hash, and the command that runs it.

The zipapp lives at ``<remote dir>/cloudiag-sysvm-<hash>.pyz`` (``/var/lib/cloudiag`` on a
real VM), the hash being its content stamp (``cloudiag.sysvm.build``). When the file is
absent (or of another size) it is uploaded over SFTP under a temporary name, then renamed
into place, so a VM never holds half a build under the real name. The warm session's
``ready`` line says which build really runs: another one means the file was replaced
behind our back, and it is uploaded again once.

No shell line is built from strings: the remote commands are fixed templates whose only
variable parts are the interpreter (a plain word, checked here again) and the hex hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shlex
from pathlib import Path

import asyncssh

from cloudiag.agent.executors.session import SESSION_MAX_JOBS

__all__ = [
    "NO_PYTHON_STATUSES",
    "REMOTE_DIR",
    "InstallError",
    "install",
    "probe_command",
    "remote_path",
    "serve_command",
]

REMOTE_DIR = "/var/lib/cloudiag"
_STAMP_RE = re.compile(r"[0-9a-f]{8,64}")
# As SshAccess.python: a command name or an absolute path of plain words, no option.
_PYTHON_RE = re.compile(r"/?[A-Za-z0-9_.+][A-Za-z0-9_.+-]*(/[A-Za-z0-9_.+-]+)*")
_DIR_RE = re.compile(r"(/[A-Za-z0-9_.+-]+)+")
#: What a shell's exec says when the interpreter is missing (127) or cannot run (126).
NO_PYTHON_STATUSES = frozenset({126, 127})


class InstallError(Exception):
    """The zipapp could not be put on the VM; str() is the job's errortext."""


def remote_path(stamp: str, remote_dir: str = REMOTE_DIR) -> str:
    """Where the build with this stamp lives on a VM (ValueError for a malformed stamp)."""
    if not _STAMP_RE.fullmatch(stamp):
        raise ValueError(f"not a build stamp: {stamp!r}")
    if not _DIR_RE.fullmatch(remote_dir) or "/../" in f"{remote_dir}/":
        raise ValueError(f"not a plain absolute folder: {remote_dir!r}")
    return f"{remote_dir}/cloudiag-sysvm-{stamp}.pyz"


def _interpreter(python: str) -> str:
    if not _PYTHON_RE.fullmatch(python):
        raise ValueError(f"not an interpreter name: {python!r}")
    return python


def serve_command(python: str, stamp: str, remote_dir: str = REMOTE_DIR) -> str:
    """The remote command of a warm session: ``<python> -I -S <zipapp> serve --max-jobs N``."""
    zipapp = remote_path(stamp, remote_dir)
    max_jobs = str(SESSION_MAX_JOBS)
    return shlex.join([_interpreter(python), "-I", "-S", zipapp, "serve", "--max-jobs", max_jobs])


#: Exits 0 where the interpreter can run the zipapp (Python 3.6 or later).
_PROBE = "import sys; sys.exit(0 if sys.version_info >= (3, 6) else 3)"


def probe_command(python: str) -> str:
    """The remote command that tells whether ``python`` can run the zipapp (exit status 0)."""
    return shlex.join([_interpreter(python), "-I", "-S", "-c", _PROBE])


async def install(
    conn: asyncssh.SSHClientConnection,
    zipapp: Path,
    stamp: str,
    *,
    vm_name: str,
    remote_dir: str = REMOTE_DIR,
    replace: bool = False,
) -> bool:
    """Make sure the VM holds this build; True if it was uploaded now.

    ``replace`` uploads it even when a file of that name is there (it ran as another build).
    """
    target = remote_path(stamp, remote_dir)
    size = (await asyncio.to_thread(zipapp.stat)).st_size
    try:
        async with conn.start_sftp_client() as sftp:
            if not replace and await _present(sftp, target, size):
                return False
            await sftp.makedirs(remote_dir, exist_ok=True)
            partial = f"{target}.{secrets.token_hex(4)}.partial"
            try:
                await sftp.put(str(zipapp), partial)
                await sftp.chmod(partial, 0o644)
                # posix-rename replaces an existing target atomically (OpenSSH's extension).
                await sftp.posix_rename(partial, target)
            except BaseException:
                await _remove_quietly(sftp, partial)
                raise
    except (asyncssh.Error, OSError) as exc:
        reason = getattr(exc, "reason", "") or str(exc)
        raise InstallError(
            f"cannot install the cloudiag zipapp on {vm_name} at {target}: {reason}"
        ) from None
    return True


async def _present(sftp: asyncssh.SFTPClient, target: str, size: int) -> bool:
    try:
        attrs = await sftp.stat(target)
    except asyncssh.SFTPNoSuchFile:
        return False
    return attrs.size == size


async def _remove_quietly(sftp: asyncssh.SFTPClient, path: str) -> None:
    with contextlib.suppress(asyncssh.Error, OSError):
        await sftp.remove(path)
