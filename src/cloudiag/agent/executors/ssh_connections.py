"""One kept asyncssh connection per system VM: opened on first use, reused, replaced when lost.

A connection is keyed by (address, port, user, netns) and shared by every job of that VM
(each job or session is a channel on it). Keepalives find a dead peer within
``keepalive_interval * keepalive_count_max`` seconds; a lost connection is dropped and the
next use opens a new one. Concurrent first uses wait for the same attempt.

The TCP socket is opened in ``access.netns`` when it is set, as a KVM host reaches its VMs
through its cloud0 bridge, without adding any route or address to the agent's own
namespace: a socket belongs to the namespace it was created in, so a short-lived thread
enters the namespace (setns(2)), creates the socket, and goes back; the connect then runs on
the event loop like any other, and the connected socket is handed to asyncssh.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import logging
import os
import socket
import threading
import weakref
from typing import Any

import asyncssh

from cloudiag.agent.executors.host_keys import HostKeyCheck, HostKeys
from cloudiag.bus.messages import SshAccess

log = logging.getLogger(__name__)

__all__ = ["SshConnections", "SshError", "connection_key", "lost_reason", "socket_in_netns"]

NETNS_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000

#: (address, port, user, netns): one connection each.
Key = tuple[str, int, str, str | None]


class SshError(Exception):
    """The VM cannot be reached or logged in to over SSH; str() is the job's errortext."""


def connection_key(access: SshAccess) -> Key:
    """The connection a VM's access shares with every job of that VM."""
    return (access.address, access.port, access.user, access.netns)


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _socket_in(netns: str, family: int) -> socket.socket:
    """Create a TCP socket in ``netns``; only the calling thread changes namespace."""
    with open(os.path.join(NETNS_DIR, netns), "rb") as target:
        with open("/proc/thread-self/ns/net", "rb") as own:
            _setns(target.fileno())
            try:
                return socket.socket(family, socket.SOCK_STREAM)
            finally:
                # Back to where the thread came from; if that failed, the thread would
                # stay in the lab's namespace: it ends right after (see socket_in_netns).
                _setns(own.fileno())


async def socket_in_netns(netns: str, family: int) -> socket.socket:
    """A new TCP socket of ``netns``, made by a thread of its own (never the loop's thread).

    The thread is not one of a pool, so a thread left in the wrong namespace by a failed
    switch back cannot run anything else: it ends once the socket is made.
    """
    loop = asyncio.get_running_loop()
    made: asyncio.Future[socket.socket] = loop.create_future()

    def deliver(result: socket.socket | BaseException) -> None:
        if made.cancelled():
            if isinstance(result, socket.socket):
                result.close()
        elif isinstance(result, BaseException):
            made.set_exception(result)
        else:
            made.set_result(result)

    def work() -> None:
        result: socket.socket | BaseException
        try:
            result = _socket_in(netns, family)
        except BaseException as exc:  # Handed to the awaiting task.
            result = exc
        loop.call_soon_threadsafe(deliver, result)

    threading.Thread(target=work, name=f"netns-socket-{netns}", daemon=True).start()
    return await made


class _Client(asyncssh.SSHClient):
    """Host key checks by our policy; remembers why the connection ended."""

    def __init__(self, check: HostKeyCheck) -> None:
        self.check = check
        self.lost: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        return self.check.validate(key)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = str(exc) if exc else "closed"


#: Each connection's client: asyncssh drops a connection's owner once it is lost, and
#: the client is what knows why.
_clients: weakref.WeakKeyDictionary[asyncssh.SSHClientConnection, _Client] = (
    weakref.WeakKeyDictionary()
)


def lost_reason(conn: asyncssh.SSHClientConnection) -> str | None:
    """Why this connection was lost, or None while it is up."""
    client = _clients.get(conn)
    return client.lost if client is not None else None


class _Kept:
    """A kept connection and its client (which knows whether it was lost)."""

    def __init__(self, conn: asyncssh.SSHClientConnection, client: _Client) -> None:
        self.conn = conn
        self.client = client

    @property
    def alive(self) -> bool:
        return self.client.lost is None


class SshConnections:
    """The agent's SSH connections, one per VM."""

    def __init__(
        self,
        host_keys: HostKeys,
        *,
        connect_timeout: float = 10.0,
        keepalive_interval: float = 5.0,
        keepalive_count_max: int = 3,
    ) -> None:
        self.host_keys = host_keys
        self.connect_timeout = connect_timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_count_max = keepalive_count_max
        self._kept: dict[Key, _Kept] = {}
        self._opening: dict[Key, asyncio.Task[_Kept]] = {}
        #: Connections opened so far (tests check that jobs share one).
        self.opened = 0

    async def get(self, access: SshAccess, vm_name: str) -> asyncssh.SSHClientConnection:
        """The VM's connection, opened if there is none alive; raises SshError."""
        key = connection_key(access)
        kept = self._kept.get(key)
        if kept is not None and kept.alive:
            return kept.conn
        task = self._opening.get(key)
        if task is None:
            task = asyncio.create_task(self._open(access, vm_name))
            self._opening[key] = task
            task.add_done_callback(lambda t: self._opened(key, t))
        # Shielded: one waiter cancelled (its job stopped) does not abort the others'.
        return (await asyncio.shield(task)).conn

    def _opened(self, key: Key, task: asyncio.Task[_Kept]) -> None:
        self._opening.pop(key, None)
        if not task.cancelled():
            task.exception()  # Retrieved: every waiter may have gone (their jobs stopped).

    def forget(self, access: SshAccess, conn: asyncssh.SSHClientConnection) -> None:
        """Drop ``conn`` (a channel on it failed): the next use opens a new connection."""
        key = connection_key(access)
        kept = self._kept.get(key)
        if kept is not None and kept.conn is conn:
            del self._kept[key]
            conn.close()

    async def _open(self, access: SshAccess, vm_name: str) -> _Kept:
        where = f"{vm_name} at {access.address}:{access.port}"
        try:
            async with asyncio.timeout(self.connect_timeout):
                kept = await self._connect(access, vm_name, where)
        except TimeoutError:
            raise SshError(
                f"cannot reach {where}: no SSH session within {self.connect_timeout:g} s"
            ) from None
        self._kept[connection_key(access)] = kept
        return kept

    async def _connect(self, access: SshAccess, vm_name: str, where: str) -> _Kept:
        try:
            client_key = await asyncio.to_thread(asyncssh.read_private_key, access.key_file)
        except (OSError, asyncssh.KeyImportError) as exc:
            raise SshError(
                f"cannot log in to {where}: cannot read the key {access.key_file}: {exc}"
            ) from None
        try:
            check = await self.host_keys.check(access, vm_name)
        except ValueError as exc:
            raise SshError(f"cannot connect to {where}: {exc}") from None
        sock = await self._tcp(access, where)
        client = _Client(check)
        options: dict[str, Any] = {
            "username": access.user,
            "client_keys": [client_key],
            "known_hosts": check.known_hosts,
            "agent_path": None,
            "preferred_auth": "publickey",
            "keepalive_interval": self.keepalive_interval,
            "keepalive_count_max": self.keepalive_count_max,
            # Nothing from the agent user's ~/.ssh: the inventory says everything.
            "config": [],
            "x509_trusted_certs": None,
        }
        try:
            conn = await asyncssh.connect(sock=sock, client_factory=lambda: client, **options)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise SshError(f"cannot connect to {where}: {check.refusal or exc.reason}") from None
        except asyncssh.PermissionDenied as exc:
            raise SshError(
                f"cannot log in to {where}: authentication refused for {access.user} with "
                f"key {access.key_file}: {exc.reason}"
            ) from None
        except asyncssh.Error as exc:
            raise SshError(f"SSH to {where} failed: {exc.reason}") from None
        except OSError as exc:
            raise SshError(f"cannot reach {where}: {exc.strerror or exc}") from None
        except BaseException:
            sock.close()
            raise
        _clients[conn] = client
        self.opened += 1
        log.info("SSH connection to %s open", where)
        await check.confirm()
        return _Kept(conn, client)

    async def _tcp(self, access: SshAccess, where: str) -> socket.socket:
        """A TCP socket connected to the VM's SSH port, from ``access.netns`` when set."""
        try:
            version = ipaddress.ip_address(access.address).version
            family = socket.AF_INET6 if version == 6 else socket.AF_INET
        except ValueError:
            raise SshError(f"cannot reach {where}: not an IP address") from None
        try:
            if access.netns is None:
                sock = socket.socket(family, socket.SOCK_STREAM)
            else:
                sock = await socket_in_netns(access.netns, family)
        except FileNotFoundError:
            raise SshError(
                f"cannot reach {where}: the network namespace {access.netns} does not exist"
            ) from None
        except OSError as exc:
            raise SshError(
                f"cannot reach {where}: no socket in namespace {access.netns}: "
                f"{exc.strerror or exc}"
            ) from None
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (access.address, access.port))
        except BaseException as exc:
            sock.close()
            if isinstance(exc, ConnectionRefusedError):
                raise SshError(f"cannot reach {where}: connection refused") from None
            if isinstance(exc, OSError):
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise SshError(f"cannot reach {where}: {reason[:1].lower()}{reason[1:]}") from None
            raise
        return sock

    async def close(self) -> None:
        """Close every connection (the agent is stopping)."""
        for task in list(self._opening.values()):
            task.cancel()
        kept, self._kept = list(self._kept.values()), {}
        for entry in kept:
            entry.conn.close()
        for entry in kept:
            with contextlib.suppress(Exception):
                await entry.conn.wait_closed()
