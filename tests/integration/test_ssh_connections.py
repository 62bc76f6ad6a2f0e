"""SSH connections against a real sshd: kept and shared, host keys by each policy, clear
errors for a wrong key or nobody listening, and the socket made in a lab namespace."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cloudiag.agent.executors.host_keys import HostKeys
from cloudiag.agent.executors.ssh_connections import SshConnections, SshError
from cloudiag.bus.messages import SshAccess
from tests.ssh_server import SSHD, SshServer, running

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="sshd and namespaces need root"),
    pytest.mark.skipif(not os.path.exists(SSHD), reason="openssh-server is not installed"),
]


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    with running(tmp_path / "sshd") as server:
        yield server


@pytest.fixture
async def connections(tmp_path: Path) -> AsyncIterator[SshConnections]:
    conns = SshConnections(HostKeys(tmp_path / "state"), connect_timeout=5.0)
    try:
        yield conns
    finally:
        await conns.close()


def access(server: SshServer, **changes: object) -> SshAccess:
    base = SshAccess(address="127.0.0.1", port=server.port, key_file=str(server.client_key))
    return base.model_copy(update=changes)


async def test_jobs_share_one_kept_connection(sshd: SshServer, connections: SshConnections) -> None:
    acc = access(sshd)
    first, second = await asyncio.gather(
        connections.get(acc, "r-1-VM"), connections.get(acc, "r-1-VM")
    )
    assert first is second and connections.opened == 1
    results = await asyncio.gather(*(first.run("echo kept", check=False) for _ in range(5)))
    assert [r.stdout for r in results] == ["kept\n"] * 5
    assert await connections.get(acc, "r-1-VM") is first and connections.opened == 1


async def test_a_lost_connection_is_replaced_at_the_next_use(
    sshd: SshServer, connections: SshConnections
) -> None:
    acc = access(sshd)
    conn = await connections.get(acc, "r-1-VM")
    sshd.stop()
    await asyncio.wait_for(conn.wait_closed(), 5)
    with pytest.raises(
        SshError, match=r"cannot reach r-1-VM at 127\.0\.0\.1:\d+: connection refused"
    ):
        await connections.get(acc, "r-1-VM")
    sshd.start()
    again = await connections.get(acc, "r-1-VM")
    assert again is not conn and (await again.run("echo back", check=False)).stdout == "back\n"


async def test_the_first_host_key_is_pinned_and_a_changed_one_refused(
    sshd: SshServer, tmp_path: Path
) -> None:
    acc = access(sshd)
    first = SshConnections(HostKeys(tmp_path / "state"))
    await first.get(acc, "r-1-VM")
    await first.close()
    pins = tmp_path / "state" / "ssh" / "known_hosts"
    assert pins.read_text().startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    old = sshd.fingerprint

    sshd.stop()
    sshd.new_host_key()
    sshd.start()
    later = SshConnections(HostKeys(tmp_path / "state"))
    with pytest.raises(SshError) as refused:
        await later.get(acc, "r-1-VM")
    message = str(refused.value)
    for part in ("r-1-VM", "changed", old, sshd.fingerprint, str(pins)):
        assert part in message
    assert later.opened == 0
    # Once the operator removes the line, the new key is pinned.
    pins.write_text("")
    await later.get(acc, "r-1-VM")
    await later.close()


async def test_a_known_hosts_file_and_a_fingerprint(
    sshd: SshServer, connections: SshConnections, tmp_path: Path
) -> None:
    public = sshd.host_key.with_suffix(".pub").read_text().split()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {public[0]} {public[1]}\n")
    conn = await connections.get(access(sshd, known_hosts=str(known)), "r-1-VM")
    assert (await conn.run("echo known", check=False)).stdout == "known\n"

    other = SshServer(tmp_path / "other")  # Another key altogether.
    known.write_text(f"[127.0.0.1]:{sshd.port} {other.host_key.with_suffix('.pub').read_text()}")
    fresh = SshConnections(HostKeys(None))
    with pytest.raises(SshError, match=re.escape(f"changed: it is now {sshd.fingerprint}")):
        await fresh.get(access(sshd, known_hosts=str(known)), "r-1-VM")

    await fresh.get(access(sshd, host_key=sshd.fingerprint), "s-2-VM")
    await fresh.close()
    with pytest.raises(SshError, match=re.escape(f"is {sshd.fingerprint}, not the pinned")):
        await SshConnections(HostKeys(None)).get(access(sshd, host_key=other.fingerprint), "s-2-VM")


async def test_clear_errors_for_what_keeps_a_connection_from_opening(
    sshd: SshServer, connections: SshConnections, tmp_path: Path
) -> None:
    with pytest.raises(SshError) as wrong:
        await connections.get(access(sshd, key_file=str(sshd.other_key)), "r-1-VM")
    assert str(wrong.value).startswith(
        f"cannot log in to r-1-VM at 127.0.0.1:{sshd.port}: authentication refused for root "
        f"with key {sshd.other_key}: "
    )
    with pytest.raises(SshError, match=re.escape("cannot read the key /nowhere/id_rsa.cloud")):
        await connections.get(access(sshd, key_file="/nowhere/id_rsa.cloud"), "r-1-VM")
    with pytest.raises(SshError, match=r"127\.0\.0\.1:\d+: connection refused"):
        await connections.get(access(sshd, port=sshd.port + 1), "r-1-VM")
    with pytest.raises(SshError, match="the network namespace cdx-none does not exist"):
        await connections.get(access(sshd, netns="cdx-none"), "r-1-VM")


@pytest.fixture
def hypervisor() -> Iterator[str]:
    """A namespace of its own with loopback up (the lab's "host" stands in for it)."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 is not installed")
    name = f"cdx{secrets.token_hex(2)}-host"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


async def test_the_socket_is_made_in_the_namespace_and_the_loop_stays_home(
    hypervisor: str, tmp_path: Path, connections: SshConnections
) -> None:
    with running(tmp_path / "vm", netns=hypervisor) as server:
        home = os.readlink("/proc/thread-self/ns/net")
        acc = access(server, netns=hypervisor)
        conn = await connections.get(acc, "r-1-VM")
        # The same address and port here reach nobody: the server is only in the namespace.
        with pytest.raises(SshError, match="connection refused"):
            await SshConnections(HostKeys(None)).get(access(server), "r-1-VM")
        got = await conn.run("readlink /proc/self/ns/net", check=False)
        ns_inode = os.stat(f"/run/netns/{hypervisor}").st_ino
        assert got.stdout == f"net:[{ns_inode}]\n"
        assert os.readlink("/proc/thread-self/ns/net") == home
        assert [t.name for t in threading.enumerate() if t.name.startswith("netns-")] == []
