"""Which host key a system VM may present: a pinned fingerprint, a known_hosts file, or TOFU.

The policy of one VM's access, strongest first:

- ``host_key="SHA256:…"``: only the key with that fingerprint;
- ``known_hosts=FILE``: the keys (and host CAs, revocations) that file gives for the VM's
  ``[address]:port``, matched by asyncssh as OpenSSH matches them (hashed names too);
- neither: trust on first use. The first key seen is pinned in the agent's
  ``<state dir>/ssh/known_hosts`` (OpenSSH's format, ``[address]:port`` keys, dir 0700,
  file 0600, rewritten atomically) and only that key is accepted afterwards. Without a
  state dir the pins last as long as the agent process.

A refused key is never replaced on our own: the error names the VM, both fingerprints and
the file to edit, and the operator decides.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from cloudiag.bus.messages import SshAccess

__all__ = ["HostKeyCheck", "HostKeys", "known_hosts_name"]

#: What asyncssh takes as ``known_hosts=``: trusted host keys, trusted CA keys, revoked keys.
KnownHostsArg = tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[asyncssh.SSHKey]]


def known_hosts_name(address: str, port: int) -> str:
    """The host's name in a known_hosts file, as OpenSSH writes it."""
    return address if port == 22 else f"[{address}]:{port}"


def fingerprint(key: asyncssh.SSHKey) -> str:
    """The key's SHA256 fingerprint as ``ssh-keygen -l`` prints it."""
    return str(key.get_fingerprint("sha256"))


@dataclass
class HostKeyCheck:
    """The host key policy of one connection attempt.

    asyncssh trusts ``known_hosts`` first; a key outside it is handed to ``validate``,
    which decides (TOFU accepts the first one) and leaves the reason of a refusal in
    ``refusal``. ``confirm`` is awaited once the connection is up, to pin a new key.
    """

    vm_name: str
    #: The VM's name in a known_hosts file: ``[address]:port``.
    name: str
    known_hosts: KnownHostsArg
    #: A pinned fingerprint, or None.
    expected: str | None = None
    #: The TOFU store, or None when another policy applies.
    store: TofuStore | None = None
    #: The known_hosts file the keys come from ("" for memory or a fingerprint).
    file: str = ""
    refusal: str = ""
    accepted: asyncssh.SSHKey | None = field(default=None, repr=False)

    def validate(self, key: asyncssh.SSHKey) -> bool:
        """Whether ``key``, which is not among the trusted keys, may be accepted."""
        seen = fingerprint(key)
        if self.expected is not None:
            if seen == self.expected:
                return True
            self.refusal = (
                f"the host key of {self.vm_name} ({self.name}) is {seen}, not the pinned "
                f"{self.expected}: if the VM was rebuilt, set host_key in its inventory "
                "entry to the new fingerprint"
            )
            return False
        known = self.known_hosts[0]
        if self.store is not None and not known:
            self.accepted = key
            return True
        if not known:
            self.refusal = (
                f"the host key of {self.vm_name} ({self.name}) is {seen}, and {self.file} "
                f"has no key for {self.name}: add its line to that file"
            )
            return False
        pinned = ", ".join(fingerprint(k) for k in known)
        where = self.file or "the agent's memory (no state dir)"
        fix = (
            f"remove the line of {self.name} from {self.file}"
            if self.file
            else "restart the agent to forget the old key"
        )
        self.refusal = (
            f"the host key of {self.vm_name} ({self.name}) changed: it is now {seen}, "
            f"{where} has {pinned}. If the VM was rebuilt, {fix}; otherwise someone may "
            "be in between, and the agent will not connect"
        )
        return False

    async def confirm(self) -> None:
        """Pin the key accepted on first use (nothing for the other policies)."""
        if self.store is not None and self.accepted is not None:
            await self.store.pin(self.name, self.accepted)
            self.accepted = None


class TofuStore:
    """The pinned host keys: a known_hosts file of our own, or memory without a state dir."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._memory: dict[str, asyncssh.SSHKey] = {}
        # One writer at a time: a pin rewrites the whole file.
        self._lock = asyncio.Lock()

    async def pinned(self, address: str, port: int) -> list[asyncssh.SSHKey]:
        """The keys pinned for ``[address]:port``."""
        name = known_hosts_name(address, port)
        if self.path is None:
            key = self._memory.get(name)
            return [key] if key is not None else []
        return await asyncio.to_thread(_keys_in_file, self.path, address, port)

    async def pin(self, name: str, key: asyncssh.SSHKey) -> None:
        """Add ``name key`` to the pins (a name already pinned is left as it is)."""
        async with self._lock:
            if self.path is None:
                self._memory.setdefault(name, key)
                return
            await asyncio.to_thread(_append_pin, self.path, name, key)


def _keys_in_file(path: Path, address: str, port: int) -> list[asyncssh.SSHKey]:
    if not path.exists():
        return []
    trusted, _, _ = _match(path, address, port)
    return trusted


def _match(path: Path, address: str, port: int) -> KnownHostsArg:
    """What a known_hosts file says of ``[address]:port`` (ValueError if it is unreadable)."""
    try:
        found = asyncssh.match_known_hosts(str(path), address, address, port)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the known_hosts file {path}: {exc}") from None
    # The address is both the host name and the address: a line may match twice.
    return _unique(found[0]), _unique(found[1]), _unique(found[2])


def _unique(keys: Sequence[asyncssh.SSHKey]) -> list[asyncssh.SSHKey]:
    return list(dict.fromkeys(keys))


def _append_pin(path: Path, name: str, key: asyncssh.SSHKey) -> None:
    """Rewrite the pins with one more line, atomically, private to the agent."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    old = path.read_bytes() if path.exists() else b""
    lines = old.splitlines(keepends=True)
    if any(line.split(b" ", 1)[0] == name.encode() for line in lines):
        return
    if old and not old.endswith(b"\n"):
        old += b"\n"
    line = f"{name} {key.export_public_key('openssh').decode().strip()}\n"
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=".known_hosts.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(old + line.encode())
            out.flush()
            os.fsync(out.fileno())
        os.chmod(partial, 0o600)
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise


class HostKeys:
    """The host key policies of an agent, with its TOFU pins."""

    def __init__(self, state_dir: Path | None) -> None:
        self.store = TofuStore(state_dir / "ssh" / "known_hosts" if state_dir else None)

    async def check(self, access: SshAccess, vm_name: str) -> HostKeyCheck:
        """The policy for a connection to this VM; ValueError if its known_hosts is unreadable."""
        name = known_hosts_name(access.address, access.port)
        if access.host_key is not None:
            return HostKeyCheck(vm_name, name, ([], [], []), expected=access.host_key)
        if access.known_hosts is not None:
            found = await asyncio.to_thread(
                _match, Path(access.known_hosts), access.address, access.port
            )
            return HostKeyCheck(vm_name, name, found, file=access.known_hosts)
        pinned = await self.store.pinned(access.address, access.port)
        file = str(self.store.path) if self.store.path else ""
        return HostKeyCheck(vm_name, name, (pinned, [], []), store=self.store, file=file)
