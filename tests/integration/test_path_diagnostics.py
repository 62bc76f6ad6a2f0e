"""IPv6 and the path diagnostics end to end: runDiagnostics through the API, the agent and
the VM's warm session (both executors), against the lab's hosts over IPv4 and IPv6.

ping6 and traceroute6 to web6; tracepath finding the inet segment's MTU of 1400; mtr's
per-hop report; and TCP probes (traceroute -T, mtr -T) where the web server filters ICMP
echo and UDP (an nftables table in the web namespace only, removed after the test).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from cloudiag.sysvm import registry
from tests.integration.stack import Stack, tool_pids

pytestmark = pytest.mark.lab

GATEWAY6 = "2001:db8:0:113::1"
WEB6 = "2001:db8:0:100::10"
WEB = "198.51.100.10"
GATEWAY = "203.0.113.1"

#: ICMP echo and UDP to the web server dropped; TCP (and neighbour discovery) untouched.
_FILTER = """table inet cdiag_filter {
  chain input {
    type filter hook input priority 0; policy accept;
    icmp type echo-request drop
    icmpv6 type echo-request drop
    meta l4proto udp drop
  }
}
"""


def diagnostics(stack: Stack, role: str, type_: str, address: str, params: str) -> dict[str, Any]:
    job = stack.run(role, type_, address, params)
    assert job["jobstatus"] == 1, job
    diag: dict[str, Any] = job["jobresult"]["diagnostics"]
    return diag


def hop_addresses(stdout: str) -> list[str]:
    """The address of each hop line of ``traceroute -n -q 1`` ("*" for none)."""
    return [line.split()[1] for line in stdout.splitlines()[1:] if line.strip()]


@pytest.fixture
def web_filtered(stack: Stack) -> Iterator[None]:
    """The web server drops ICMP echo and UDP for the duration of one test."""
    nft = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if nft is None:
        pytest.skip("nftables is not installed (apt-get install nftables)")
    ns = stack.vm("web")["namespace"]
    argv = ["ip", "netns", "exec", ns, nft]
    subprocess.run([*argv, "-f", "-"], input=_FILTER, text=True, check=True, timeout=10)
    try:
        yield
    finally:
        subprocess.run([*argv, "delete", "table", "inet", "cdiag_filter"], check=True, timeout=10)


def test_ping6_to_web6(stack: Stack) -> None:
    diag = diagnostics(stack, "router", "ping6", stack.lab["targets"]["web6"], "-c 2 -i 0.2")
    assert diag["exitcode"] == "0", diag
    assert f"PING {WEB6}" in diag["stdout"] and "2 received" in diag["stdout"]
    parsed = diag["parsed"]
    assert parsed["type"] == "ping" and WEB6 in json.dumps(parsed)


def test_traceroute6_to_web6(stack: Stack) -> None:
    diag = diagnostics(stack, "router", "traceroute6", WEB6, "-n -q 1 -w 2 -m 5")
    assert diag["exitcode"] == "0", diag
    assert hop_addresses(diag["stdout"]) == [GATEWAY6, WEB6], diag["stdout"]
    parsed = diag["parsed"]
    assert parsed["type"] == "traceroute" and parsed["reached"] is True


@pytest.mark.parametrize(("role", "target"), [("router", "web"), ("secondarystoragevm", "web6")])
def test_tracepath_finds_the_path_mtu(stack: Stack, role: str, target: str) -> None:
    address = stack.lab["targets"][target]
    diag = diagnostics(stack, role, "tracepath", address, "-n -m 5")
    assert diag["exitcode"] == "0", diag
    parsed = diag["parsed"]
    assert parsed["type"] == "tracepath"
    assert (parsed["af"], parsed["dst_addr"], parsed["reached"]) == (
        6 if ":" in address else 4,
        address,
        True,
    )
    # The inet segment's MTU is 1400: the last hop is behind it (the kernel may already
    # know it from an earlier run, so the first hop's may be either).
    assert parsed["pmtu"] == 1400 and parsed["result"][-1]["pmtu"] == 1400
    assert [h["hop"] for h in parsed["result"]] == [1, 2]
    gateway = GATEWAY6 if ":" in address else GATEWAY
    assert parsed["result"][0]["result"][0]["from"] == gateway


@pytest.mark.parametrize("target", ["web", "web6"])
def test_mtr_reports_each_hop(stack: Stack, target: str) -> None:
    address = stack.lab["targets"][target]
    diag = diagnostics(stack, "secondarystoragevm", "mtr", address, "-n -c 3 -i 0.2")
    assert diag["exitcode"] == "0", diag
    parsed = diag["parsed"]
    assert (parsed["type"], parsed["dst_addr"], parsed["cycles"], parsed["reached"]) == (
        "mtr",
        address,
        3,
        True,
    )
    hops = parsed["result"]
    assert [h["result"][0]["from"] for h in hops] == [
        GATEWAY6 if ":" in address else GATEWAY,
        address,
    ]
    for hop in hops:
        assert (hop["sent"], hop["loss"]) == (3, 0.0), hop
        assert 0 <= hop["best"] <= hop["avg"] <= hop["worst"] and hop["stdev"] >= 0


@pytest.mark.usefixtures("web_filtered")
def test_tcp_probes_reach_a_host_that_filters_icmp_and_udp(stack: Stack) -> None:
    web = stack.lab["targets"]["web"]
    udp = diagnostics(stack, "router", "traceroute", web, "-n -q 1 -w 1 -m 3")
    assert hop_addresses(udp["stdout"]) == [GATEWAY, "*", "*"], udp["stdout"]
    assert udp["parsed"]["reached"] is False
    tcp = diagnostics(stack, "router", "traceroute", web, "-T -p 80 -n -q 1 -w 1 -m 3")
    assert tcp["exitcode"] == "0", tcp
    assert hop_addresses(tcp["stdout"]) == [GATEWAY, web], tcp["stdout"]
    assert tcp["parsed"]["reached"] is True
    # Over IPv6 too: nothing listens on web6's port 80, and the RST answers all the same.
    tcp6 = diagnostics(stack, "router", "traceroute6", WEB6, "-T -p 80 -n -q 1 -w 1 -m 3")
    assert hop_addresses(tcp6["stdout"]) == [GATEWAY6, WEB6], tcp6["stdout"]
    # mtr: the ICMP report never hears from the web server, the TCP one does.
    icmp = diagnostics(stack, "router", "mtr", web, "-n -c 2 -i 0.2")["parsed"]
    assert icmp["reached"] is False and icmp["result"][-1]["result"] == [{"x": "*"}]
    assert icmp["result"][-1]["loss"] == 100.0
    syn = diagnostics(stack, "router", "mtr", web, "-n -c 2 -i 0.2 -T -P 80")["parsed"]
    assert syn["reached"] is True and syn["result"][-1]["result"][0]["from"] == web


@pytest.mark.executor("ssh")
def test_the_cloudstack_script_vm_refuses_what_its_script_cannot_run(stack: Stack) -> None:
    # Over SSH the CPVM runs CloudStack's own script, which knows ping, traceroute and
    # arping only: the API refuses the others as a bad parameter, and nothing is made.
    cpvm = stack.vm("consoleproxy")
    jobs = stack.ok("listAsyncJobs", listall="true").get("count", 0)
    r = stack.call("runDiagnostics", targetid=cpvm["uuid"], type="mtr", ipaddress=WEB)
    assert r.status_code == 431, r.text
    assert r.json()["rundiagnosticsresponse"]["errortext"] == (
        f"the CloudStack script on {cpvm['name']} runs only arping, ping, traceroute, not mtr"
    )
    assert stack.ok("listAsyncJobs", listall="true").get("count", 0) == jobs
    assert tool_pids(cpvm["namespace"], "mtr") == []
    # And it is not offered there.
    offered = stack.ok("listDiagnosticsTypes", targetid=cpvm["uuid"])["diagnosticstype"]
    assert [t["name"] for t in offered] == ["ping", "traceroute", "arping"]


def test_types_are_offered_per_vm(stack: Stack) -> None:
    offered = {
        role: {
            t["name"]
            for t in stack.ok("listDiagnosticsTypes", targetid=stack.vm(role)["uuid"])[
                "diagnosticstype"
            ]
        }
        for role in ("router", "secondarystoragevm", "consoleproxy")
    }
    for role, names in offered.items():
        if role == "consoleproxy" and stack.executor == "ssh":
            continue  # CloudStack's own script there (the test above)
        assert {"tracepath", "mtr"} <= names, role
        assert names == {t.name for t in registry.types_for_vm(stack.vm(role)["systemvmtype"])}
    assert {"ping6", "traceroute6"} <= offered["router"]
    assert not {"ping6", "traceroute6"} & offered["secondarystoragevm"]
    mtr = next(
        t
        for t in stack.ok("listDiagnosticsTypes", targetid=stack.vm("router")["uuid"])[
            "diagnosticstype"
        ]
        if t["name"] == "mtr"
    )
    cycles = next(o for o in mtr["options"] if o["flag"] == "-c")
    assert (cycles["minimum"], cycles["maximum"]) == (1, 100)
    assert mtr["ui_summary"] == "mtr"


def test_list_apis_names_the_new_types(stack: Stack) -> None:
    run = stack.ok("listApis", name="runDiagnostics")["api"][0]
    kind = next(p for p in run["params"] if p["name"] == "type")
    for name in ("ping6", "traceroute6", "tracepath", "mtr"):
        assert name in kind["description"], kind["description"]
