"""The lab zone for real: namespaces, connectivity, the servers, idempotence, teardown.

Every lab here has its own prefix ("cdt" + 4 letters from g-z, so it can never be the
"cdt" + hex prefix of the shared `lab` fixture nor a running demo's "cdlab"), and is taken
down at the end even on failure. Only lab addresses are ever contacted.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudiag.cli import lab as command
from cloudiag.lab import certs, manager, system
from cloudiag.lab.models import LabStatus

pytestmark = pytest.mark.lab

SYSTEM_VMS = ("router", "secondarystoragevm", "consoleproxy")
WEB = "198.51.100.10"
DNS = "198.51.100.53"
GATEWAY6 = "2001:db8:0:113::1"
WEB6 = "2001:db8:0:100::10"
DNS6 = "2001:db8:0:100::53"

# Runs inside a namespace: one UDP exchange with the lab's DNS server, bytes made by the test.
_DNS_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(bytes.fromhex(sys.argv[1]), (sys.argv[2], 53))
print(s.recv(4096).hex())
"""

# Runs inside a namespace; no proxy handler, so an http_proxy variable cannot send it away.
_HTTP_CLIENT = """
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=5) as r:
    print(r.status)
    print(r.read().decode())
"""


def unavailable() -> str | None:
    """Why the lab cannot be built here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces)"
    missing = manager.check_requirements()
    return "; ".join(missing) if missing else None


def new_prefix() -> str:
    return "cdt" + "".join(secrets.choice("ghijklmnopqrstuvwxyz") for _ in range(4))


def skip_unless_possible() -> None:
    reason = unavailable()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the lab tests: {reason}")
        pytest.skip(reason)


def in_ns(ns: str, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def lab_namespaces(prefix: str) -> list[str]:
    return [n for n in system.list_namespaces() if n.startswith(f"{prefix}-")]


@pytest.fixture(scope="module")
def lab() -> Iterator[LabStatus]:
    """A whole lab with its own prefix, always taken down."""
    skip_unless_possible()
    prefix = new_prefix()
    try:
        yield manager.up(prefix)
    finally:
        manager.down(prefix)


def ns_of(lab: LabStatus, role: str) -> str:
    return lab.by_role(role).namespace


# --- shape ------------------------------------------------------------------------------


def test_status_json_shape(lab: LabStatus) -> None:
    data = json.loads(json.dumps(lab.to_dict()))
    p = lab.prefix
    assert data["prefix"] == p and data["up"] is True
    assert data["zone"] == {
        "name": "lab-zone",
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cloudiag-lab:{p}:zone")),
    }
    assert data["targets"] == {
        "gateway": "203.0.113.1",
        "web": WEB,
        "web_name": "web.lab.test",
        "dns": DNS,
        "unreachable": "198.51.100.99",
        "uservm": "192.0.2.100",
        "gateway6": GATEWAY6,
        "web6": WEB6,
        "dns6": DNS6,
        "unreachable6": "2001:db8:0:100::99",
        "uservm6": "2001:db8:0:2::100",
    }
    entries = {e["role"]: e for e in data["namespaces"]}
    assert [e["role"] for e in data["namespaces"]] == [
        *SYSTEM_VMS,
        *("uservm", "upstream", "web", "dns", "hypervisor", "switch"),
    ]
    for e in data["namespaces"]:
        assert e["running"] is True, e
        assert e["namespace"] == f"{p}-{e['name']}"
        assert e["uuid"] == str(uuid.uuid5(uuid.NAMESPACE_URL, f"cloudiag-lab:{p}:{e['name']}"))
        assert {
            "namespace",
            "name",
            "role",
            "systemvmtype",
            "uuid",
            "running",
            "interfaces",
        } <= set(e)
        for i in e["interfaces"]:
            assert set(i) >= {"name", "network", "address", "prefixlen", "mac"}
    r = entries["router"]
    assert (r["name"], r["systemvmtype"]) == ("r-1-VM", "domainrouter")
    assert [(i["name"], i["network"], i["address"], i["prefixlen"]) for i in r["interfaces"]] == [
        ("eth0", "guest", "192.0.2.1", 24),
        ("eth1", "control", "169.254.0.10", 16),
        ("eth2", "public", "203.0.113.10", 24),
    ]
    # The IPv6 addresses as the kernel has them (global scope; DAD off, so never tentative).
    assert [i["address6"] for i in r["interfaces"]] == [
        "2001:db8:0:2::1/64",
        None,
        "2001:db8:0:113::10/64",
    ]
    assert [i["address6"] for i in entries["web"]["interfaces"]] == [f"{WEB6}/64"]
    assert (r["controladdress"], r["publicaddress"], r["guestaddress"]) == (
        "169.254.0.10",
        "203.0.113.10",
        "192.0.2.1",
    )
    s = entries["secondarystoragevm"]
    assert (s["name"], s["systemvmtype"], s["publicaddress"]) == (
        "s-2-VM",
        "secondarystoragevm",
        "203.0.113.20",
    )
    assert [i["name"] for i in s["interfaces"]] == ["eth0", "eth1", "eth2"]
    v = entries["consoleproxy"]
    assert (v["name"], v["systemvmtype"], v["publicaddress"], v["controladdress"]) == (
        "v-3-VM",
        "consoleproxy",
        "203.0.113.30",
        "169.254.0.30",
    )
    u = entries["uservm"]
    assert (u["name"], u["systemvmtype"], u["guestaddress"]) == ("i-4-VM", None, "192.0.2.100")
    assert entries["web"]["service"]["running"] is True
    assert [i["name"] for i in entries["switch"]["interfaces"]] == [
        "guest",
        "public",
        "inet",
        "control",
        "mgmt",
    ]
    assert [vm.role for vm in lab.system_vms()] == list(SYSTEM_VMS)
    if system.which("dnsmasq"):
        assert entries["dns"]["service"]["running"] is True
        assert data["warnings"] == []


def test_status_reads_the_kernel(lab: LabStatus) -> None:
    assert manager.status(lab.prefix) == lab
    # The MACs are the kernel's, read back, and the ones the declaration fixes.
    out = json.loads(
        subprocess.run(
            ["ip", "-n", ns_of(lab, "router"), "-j", "link", "show", "eth2"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert lab.by_role("router").interfaces[2].mac == out[0]["address"]
    assert sorted(lab_namespaces(lab.prefix)) == sorted(ns.namespace for ns in lab.namespaces)


# --- connectivity -----------------------------------------------------------------------


@pytest.mark.parametrize("role", SYSTEM_VMS)
def test_ping_traceroute_arping_from_system_vm(lab: LabStatus, role: str) -> None:
    ns = ns_of(lab, role)
    ping = in_ns(ns, "ping", "-c", "1", "-W", "2", WEB)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    trace = in_ns(ns, "traceroute", "-n", "-m", "5", "-w", "1", "-q", "1", WEB)
    assert trace.returncode == 0, trace.stderr
    hops = [line.split()[1] for line in trace.stdout.splitlines()[1:] if line.strip()]
    assert hops == ["203.0.113.1", WEB], trace.stdout
    arping = in_ns(ns, "arping", "-c", "2", "-w", "3", "-I", "eth2", "203.0.113.1")
    assert arping.returncode == 0, arping.stdout + arping.stderr
    assert "Received 2 response" in arping.stdout or "reply from" in arping.stdout.lower()


def test_user_vm_reaches_the_web_through_the_router(lab: LabStatus) -> None:
    ns = ns_of(lab, "uservm")
    ping = in_ns(ns, "ping", "-c", "1", "-W", "2", WEB)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    trace = in_ns(ns, "traceroute", "-n", "-m", "5", "-w", "1", "-q", "1", WEB)
    hops = [line.split()[1] for line in trace.stdout.splitlines()[1:] if line.strip()]
    assert hops == ["192.0.2.1", "203.0.113.1", WEB], trace.stdout


def test_unreachable_target_fails(lab: LabStatus) -> None:
    ping = in_ns(ns_of(lab, "router"), "ping", "-c", "1", "-W", "2", lab.targets["unreachable"])
    assert ping.returncode != 0, ping.stdout
    ping6 = in_ns(
        ns_of(lab, "router"), "ping", "-6", "-c", "1", "-W", "2", lab.targets["unreachable6"]
    )
    assert ping6.returncode != 0, ping6.stdout


def trace_hops(out: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split()[1] for line in out.stdout.splitlines()[1:] if line.strip()]


@pytest.mark.parametrize("role", SYSTEM_VMS)
def test_ipv6_from_system_vm(lab: LabStatus, role: str) -> None:
    ns = ns_of(lab, role)
    ping = in_ns(ns, "ping", "-6", "-c", "1", "-W", "2", lab.targets["web6"])
    assert ping.returncode == 0, ping.stdout + ping.stderr
    trace = in_ns(ns, "traceroute", "-6", "-n", "-m", "5", "-w", "1", "-q", "1", WEB6)
    assert trace.returncode == 0, trace.stderr
    assert trace_hops(trace) == [GATEWAY6, WEB6], trace.stdout


def test_user_vm_reaches_the_web_over_ipv6_through_the_router(lab: LabStatus) -> None:
    ns = ns_of(lab, "uservm")
    trace = in_ns(ns, "traceroute", "-6", "-n", "-m", "5", "-w", "1", "-q", "1", WEB6)
    assert trace_hops(trace) == ["2001:db8:0:2::1", GATEWAY6, WEB6], trace.stdout


def test_ipv6_stays_off_the_control_network_and_has_no_way_out(lab: LabStatus) -> None:
    for role in SYSTEM_VMS:
        control = "eth1" if role == "router" else "eth0"
        out = in_ns(ns_of(lab, role), "ip", "-6", "addr", "show", "dev", control)
        assert out.returncode == 0 and out.stdout.strip() == "", out.stdout
    for role in ("hypervisor", "switch"):
        out = in_ns(ns_of(lab, role), "ip", "-6", "addr", "show")
        assert out.stdout.strip() == "", (role, out.stdout)
    up = in_ns(ns_of(lab, "upstream"), "ip", "-6", "route", "show", "default")
    assert up.returncode == 0 and up.stdout.strip() == ""
    # Addresses outside the lab have no route at all from the upstream router.
    outside = in_ns(ns_of(lab, "upstream"), "ip", "-6", "route", "get", "2001:4860::1")
    assert outside.returncode != 0


def test_tracepath_finds_the_smaller_mtu_of_the_internet_segment(lab: LabStatus) -> None:
    for target in (WEB, WEB6):
        out = in_ns(ns_of(lab, "router"), "tracepath", "-n", "-m", "5", target)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Resume: pmtu 1400 hops 2 back 2" in out.stdout, out.stdout


@pytest.mark.parametrize("role", SYSTEM_VMS)
def test_http_get_from_system_vm(lab: LabStatus, role: str) -> None:
    out = in_ns(ns_of(lab, role), sys.executable, "-I", "-c", _HTTP_CLIENT, f"http://{WEB}/")
    assert out.returncode == 0, out.stderr
    code, body = out.stdout.split("\n", 1)
    assert code == "200"
    assert "cloudiag lab" in body


def dns_query(name: str, qid: int, qtype: int = 1) -> bytes:
    """A standard query, recursion desired, for the A (or ``qtype``) records of ``name``."""
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return header + qname + struct.pack("!HH", qtype, 1)


def _skip_name(buf: bytes, pos: int) -> int:
    while True:
        length = buf[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:  # compression pointer: two bytes, ends the name
            return pos + 2
        pos += length + 1


def dns_answer(buf: bytes, qid: int) -> tuple[int, list[str]]:
    """(rcode, A and AAAA records) of a response."""
    rid, flags, qdcount, ancount, _, _ = struct.unpack("!HHHHHH", buf[:12])
    assert rid == qid and flags & 0x8000, "not a response to our query"
    pos = 12
    for _ in range(qdcount):
        pos = _skip_name(buf, pos) + 4
    addresses = []
    for _ in range(ancount):
        pos = _skip_name(buf, pos)
        rtype, _, _, rdlength = struct.unpack("!HHIH", buf[pos : pos + 10])
        pos += 10
        if rtype == 1:
            addresses.append(".".join(str(b) for b in buf[pos : pos + 4]))
        elif rtype == 28:
            addresses.append(str(ipaddress.IPv6Address(buf[pos : pos + 16])))
        pos += rdlength
    return flags & 0x000F, addresses


def ask(ns: str, name: str, qtype: int = 1, server: str = DNS) -> tuple[int, list[str]]:
    qid = secrets.randbelow(0xFFFF)
    query = dns_query(name, qid, qtype).hex()
    out = in_ns(ns, sys.executable, "-I", "-c", _DNS_CLIENT, query, server)
    assert out.returncode == 0, out.stderr
    return dns_answer(bytes.fromhex(out.stdout.strip()), qid)


def test_dns_lookup_from_system_vm(lab: LabStatus) -> None:
    if not lab.by_role("dns").running:
        pytest.skip("dnsmasq is not installed: the lab has no DNS server")
    ns = ns_of(lab, "secondarystoragevm")
    assert ask(ns, "web.lab.test") == (0, [WEB])
    assert ask(ns, "gw.lab.test") == (0, ["203.0.113.1"])
    rcode, addresses = ask(ns, "nope.lab.test")
    assert (rcode, addresses) == (3, [])  # NXDOMAIN, never forwarded anywhere
    # ip netns exec mounts the lab's resolv.conf: names resolve through the lab's server.
    ping = in_ns(ns, "ping", "-c", "1", "-W", "2", "web.lab.test")
    assert ping.returncode == 0 and WEB in ping.stdout, ping.stdout + ping.stderr


def test_dns_answers_aaaa_over_both_families(lab: LabStatus) -> None:
    if not lab.by_role("dns").running:
        pytest.skip("dnsmasq is not installed: the lab has no DNS server")
    ns = ns_of(lab, "router")
    for server in (DNS, DNS6):
        assert ask(ns, "web.lab.test", 28, server) == (0, [WEB6])
        assert ask(ns, "web.lab.test", 1, server) == (0, [WEB])
        assert ask(ns, "uservm.lab.test", 28, server) == (0, ["2001:db8:0:2::100"])
        assert ask(ns, "nope.lab.test", 28, server) == (3, [])
    ping = in_ns(ns, "ping", "-6", "-c", "1", "-W", "2", "web.lab.test")
    assert ping.returncode == 0 and WEB6 in ping.stdout, ping.stdout + ping.stderr


# --- lifecycle --------------------------------------------------------------------------


def test_up_is_idempotent(lab: LabStatus) -> None:
    before = manager.status(lab.prefix)
    again = manager.up(lab.prefix)
    assert again == before and again.up
    assert manager.up(lab.prefix) == again
    assert sorted(lab_namespaces(lab.prefix)) == sorted(ns.namespace for ns in lab.namespaces)


def test_up_restarts_a_dead_server(lab: LabStatus) -> None:
    web = lab.by_role("web")
    assert web.service is not None and web.service.pid is not None
    assert system.terminate([web.service.pid]) == []
    broken = manager.status(lab.prefix)
    assert not broken.up and not broken.by_role("web").running
    fixed = manager.up(lab.prefix)
    assert fixed.up and fixed.by_role("web").running
    # Only the server was started again: the namespaces and NICs were left alone.
    assert fixed.by_role("router") == lab.by_role("router")
    out = in_ns(ns_of(lab, "router"), sys.executable, "-I", "-c", _HTTP_CLIENT, f"http://{WEB}/")
    assert out.returncode == 0 and out.stdout.startswith("200"), out.stderr


def test_stop_and_start_a_vm(lab: LabStatus) -> None:
    ns = ns_of(lab, "consoleproxy")
    try:
        manager.stop_vm(lab.prefix, "v-3-VM")
        stopped = manager.status(lab.prefix)
        assert ns not in lab_namespaces(lab.prefix)
        cpvm = stopped.by_role("consoleproxy")
        assert (cpvm.running, cpvm.interfaces, cpvm.publicaddress) == (False, [], None)
        assert cpvm.uuid == lab.by_role("consoleproxy").uuid
        assert not stopped.up
    finally:
        manager.start_vm(lab.prefix, "consoleproxy")
    # Back as it was: same addresses, same MACs (also on the switch side, so the bridges
    # keep theirs). Only the web server's pid may differ (the test above restarts it).
    assert manager.status(lab.prefix).by_role("consoleproxy") == lab.by_role("consoleproxy")
    assert manager.status(lab.prefix).by_role("switch") == lab.by_role("switch")
    ping = in_ns(ns, "ping", "-c", "1", "-W", "2", WEB)
    assert ping.returncode == 0, ping.stdout + ping.stderr


def cli(*argv: str) -> int:
    """`cloudiag lab …` through the same argparse wiring the main CLI uses."""
    parser = argparse.ArgumentParser(prog="cloudiag")
    command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_cli_status(lab: LabStatus, capsys: pytest.CaptureFixture[str]) -> None:
    now = manager.status(lab.prefix).to_dict()
    assert cli("lab", "status", "--prefix", lab.prefix, "--json") == 0
    assert json.loads(capsys.readouterr().out) == now
    assert cli("lab", "status", "--prefix", lab.prefix) == 0
    out = capsys.readouterr().out
    for ns in lab.namespaces:
        assert ns.namespace in out
    # IPv6 targets as written: ":100:" in them is not an emoji code.
    assert f"web6={WEB6}" in out and "2001:db8:0:100::53/64" in out
    assert "\U0001f4af" not in out
    assert cli("lab", "up", "--prefix", lab.prefix, "--json") == 0
    assert json.loads(capsys.readouterr().out) == now


def test_partial_lab_is_rebuilt_and_down_removes_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skip_unless_possible()
    prefix = new_prefix()
    state = tmp_path / "state"
    try:
        # Half a lab: a lone switch namespace. `up` must replace it with a whole one.
        subprocess.run(["ip", "netns", "add", f"{prefix}-sw"], check=True, capture_output=True)
        built = manager.up(prefix, state)
        assert built.up
        pids = [ns.service.pid for ns in built.namespaces if ns.service and ns.service.pid]
        assert pids and all(system.alive(p) for p in pids)
        assert (state / "web.pid").exists()
        # The VMs find the lab's CA where the http check looks.
        assert certs.trusted_ca_file(prefix).read_bytes() == certs.ca_file(state).read_bytes()
        assert cli("lab", "down", "--prefix", prefix, "--state-dir", str(state)) == 0
        assert "is down" in capsys.readouterr().out
        assert lab_namespaces(prefix) == []
        assert not any(system.alive(p) for p in pids)
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                assert str(state) not in " ".join(system.cmdline(int(pid)))
        assert not state.exists()
        assert not any(Path("/etc/netns").glob(f"{prefix}-*"))
        assert not certs.trusted_ca_file(prefix).exists()
        after = manager.status(prefix, state)
        assert not after.up and not any(ns.running for ns in after.namespaces)
        manager.down(prefix, state)  # nothing up: a no-op
    finally:
        manager.down(prefix, state)
    assert lab_namespaces(prefix) == []


def test_cli_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("lab", "status", "--prefix", "bad-prefix") == 1
    assert "invalid lab prefix" in capsys.readouterr().err
    assert cli("lab", "stop", "--prefix", new_prefix(), "x-9-VM") == 1
    assert "no VM 'x-9-VM'" in capsys.readouterr().err
