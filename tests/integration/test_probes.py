"""The package's own checks end to end through the API, against real peers in the lab: the
web server over HTTP and HTTPS (lab CA, an expired and an unknown certificate, a
redirect), the DNS server (MX, SOA, NXDOMAIN, a truncated answer), a closed port, a
blackholed address, and the VM's routes; hostile input refused with 431 before any job."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.stack import Stack

WEB = "198.51.100.10"
DNS = "198.51.100.53"
#: Routed, but nobody answers there: a connect waits for nothing.
BLACKHOLE = "198.51.100.99"


def diag(stack: Stack, role: str, type_: str, target: str, params: str = "") -> dict[str, Any]:
    """The diagnostics of a finished run (stdout, stderr, exitcode, parsed)."""
    job = stack.run(role, type_, target, params)
    assert job["jobstatus"] == 1, job
    result: dict[str, Any] = job["jobresult"]["diagnostics"]
    return result


def probe_pids(namespace: str, type_: str) -> list[str]:
    """The probes of that type running in a VM's network namespace."""
    listed = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False
    )
    found = []
    for pid in listed.stdout.split():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"probe" in argv and argv[argv.index(b"probe") + 1 :][:1] == [type_.encode()]:
            found.append(pid)
    return found


def test_tcp_open_refused_and_timed_out(stack: Stack) -> None:
    opened = diag(stack, "router", "tcp", f"{WEB}:80", "-w 2")
    assert opened["exitcode"] == "0" and "open: connected" in opened["stdout"]
    assert opened["parsed"]["state"] == "open" and opened["parsed"]["connect_time"] > 0
    # By name: resolved and checked on the VM, connected to that address, reported by name.
    named = diag(stack, "router", "tcp", "web.lab.test:80", "-w 2")["parsed"]
    assert (named["state"], named["dst_name"], named["dst_addr"]) == ("open", "web.lab.test", WEB)
    refused = diag(stack, "secondarystoragevm", "tcp", f"{WEB}:81", "-w 2")
    assert refused["exitcode"] == "1" and refused["parsed"]["state"] == "refused"
    assert "connection refused" in refused["stderr"]
    silent = diag(stack, "secondarystoragevm", "tcp", f"{BLACKHOLE}:80", "-w 0.5")
    assert silent["parsed"]["state"] == "timeout" and silent["exitcode"] == "1"
    # Waited long enough, the gateway gives up on ARP and says the host is unreachable.
    gone = diag(stack, "router", "tcp", f"{BLACKHOLE}:80", "-w 10")["parsed"]
    assert gone["state"] == "unreachable" and gone["error"] == "No route to host"


def test_dns_answers_from_the_lab_server(stack: Stack) -> None:
    mx = diag(stack, "router", "dns", "lab.test", "-t MX")
    assert mx["exitcode"] == "0"
    parsed = mx["parsed"]
    assert (parsed["dst_addr"], parsed["rcode"], parsed["qtype"]) == (DNS, "NOERROR", "MX")
    assert parsed["answers"][0]["EXCHANGE"] == "web.lab.test."
    soa = diag(stack, "secondarystoragevm", "dns", "lab.test", f"-t SOA -s {DNS}")["parsed"]
    assert soa["answers"][0]["MNAME"] == "dns.lab.test."
    name = diag(stack, "secondarystoragevm", "dns", "web.lab.test")["parsed"]
    assert [a["RDATA"] for a in name["answers"]] == [WEB]


def test_dns_nxdomain_and_truncation(stack: Stack) -> None:
    missing = diag(stack, "router", "dns", "no-such-host.lab.test")
    assert missing["exitcode"] == "1" and missing["parsed"]["rcode"] == "NXDOMAIN"
    assert "NXDOMAIN" in missing["stdout"]
    big = diag(stack, "router", "dns", "big.lab.test", "-t TXT")["parsed"]
    assert (big["proto"], big["truncated_udp"], big["rcode"]) == ("TCP", True, "NOERROR")


def test_http_and_https_with_the_lab_ca(stack: Stack) -> None:
    plain = diag(stack, "secondarystoragevm", "http", f"http://{WEB}/")
    assert plain["exitcode"] == "0" and plain["parsed"]["res"] == 200
    assert plain["parsed"]["bsize"] > 0 and plain["parsed"]["tls"] is None
    # By name: the name is resolved and checked on the VM and pinned, and still used for
    # the TLS server name and the certificate's check.
    tls = diag(stack, "router", "http", "https://web.lab.test/")
    assert tls["exitcode"] == "0", tls
    parsed = tls["parsed"]
    assert (parsed["res"], parsed["dst_addr"]) == (200, WEB)
    assert parsed["tls"]["verified"] and parsed["tls"]["subject"].endswith("CN=web.lab.test")
    assert parsed["tls"]["days_left"] > 300 and parsed["tls_time"] > 0


def test_a_long_url_is_fetched(stack: Stack) -> None:
    # Longer than a host name may be (253): a URL has a bound of its own.
    url = f"http://{WEB}/?q=" + "a" * 400
    long = diag(stack, "router", "http", url)
    assert long["parsed"]["res"] == 200 and long["parsed"]["url"] == url


def test_http_tls_failures_and_redirect(stack: Stack) -> None:
    expired = diag(stack, "router", "http", f"https://{WEB}:9443/")
    assert expired["exitcode"] == "1"
    assert expired["parsed"]["tls"]["error"] == "certificate has expired"
    stranger = diag(stack, "router", "http", f"https://{WEB}:8443/")["parsed"]
    assert stranger["tls"]["verified"] is False and stranger["res"] is None
    trusted_anyway = diag(stack, "router", "http", f"https://{WEB}:8443/", "-k")["parsed"]
    assert trusted_anyway["res"] == 200
    moved = diag(stack, "secondarystoragevm", "http", f"http://{WEB}/redirect", "-X HEAD")
    assert moved["exitcode"] == "0"
    assert (moved["parsed"]["res"], moved["parsed"]["location"]) == (302, "/")


def test_route_of_the_router(stack: Stack) -> None:
    found = diag(stack, "router", "route", WEB)
    assert found["exitcode"] == "0"
    parsed = found["parsed"]
    assert (parsed["dev"], parsed["gateway"]) == ("eth2", "203.0.113.1")
    assert parsed["src_addr"] == "203.0.113.10"
    assert {i["name"] for i in parsed["interfaces"]} >= {"eth0", "eth1", "eth2"}
    assert parsed["neighbours"] is not None and parsed["rules"]
    named = diag(stack, "router", "route", "web.lab.test")["parsed"]
    assert (named["dst_name"], named["dst_addr"], named["dev"]) == ("web.lab.test", WEB, "eth2")
    guest = diag(stack, "router", "route", "192.0.2.100")["parsed"]
    assert (guest["dev"], guest["gateway"]) == ("eth0", None)


def test_a_cancelled_probe_is_killed(stack: Stack) -> None:
    vm = stack.vm("secondarystoragevm")
    jobid = stack.start_job("secondarystoragevm", "tcp", f"{BLACKHOLE}:80", "-w 60")
    stack.wait_for(lambda: bool(probe_pids(vm["namespace"], "tcp")), "the tcp probe to run")
    assert stack.call("cancelDiagnostics", jobid=jobid).status_code == 200
    job = stack.wait_job(jobid, timeout=20)
    assert job["jobstatus"] == 2 and job["jobresult"]["cancelled"] is True
    stack.wait_for(lambda: not probe_pids(vm["namespace"], "tcp"), "the probe to be gone")


@pytest.mark.parametrize(
    ("type_", "address", "params"),
    [
        ("http", "file:///etc/passwd", ""),
        ("http", "http://user:pass@198.51.100.10/", ""),
        ("http", "-http://198.51.100.10/", ""),
        ("http", "http://198.51.100.10/a b", ""),
        ("http", "http://198.51.100.10/\n", ""),
        ("http", "http://198.51.100.10/" + "a" * 2100, ""),
        ("http", "http://127.0.0.1/", ""),
        ("http", "https://[::ffff:127.0.0.1]/", ""),
        ("http", "http://198.51.100.10/", "-X POST"),
        ("tcp", "127.0.0.1:22", ""),
        ("tcp", "198.51.100.10", ""),
        ("tcp", "198.51.100.10:70000", ""),
        ("dns", "lab.test", "-t ANY"),
        ("dns", "lab.test", "-s 127.0.0.1"),
        ("dns", "bad_name.lab.test", ""),
        ("route", "-198.51.100.10", ""),
    ],
)
def test_hostile_input_is_refused_with_431(
    stack: Stack, type_: str, address: str, params: str
) -> None:
    r = stack.call(
        "runDiagnostics",
        targetid=stack.vm("router")["uuid"],
        type=type_,
        ipaddress=address,
        params=params,
    )
    assert r.status_code == 431, r.text
    assert len(r.json()["rundiagnosticsresponse"]["errortext"]) > 15


@pytest.mark.executor("ssh")
def test_a_vm_with_cloudstacks_own_script_refuses_them(stack: Stack) -> None:
    # The lab's console proxy has CloudStack's diagnostics.py: no package to do the check.
    for type_, address in (("tcp", f"{WEB}:80"), ("route", WEB)):
        r = stack.call(
            "runDiagnostics",
            targetid=stack.vm("consoleproxy")["uuid"],
            type=type_,
            ipaddress=address,
        )
        assert r.status_code == 431, r.text
        text = r.json()["rundiagnosticsresponse"]["errortext"]
        assert "CloudStack" in text and "v-3-VM" in text and type_ in text


def test_the_types_are_listed(stack: Stack) -> None:
    listed = stack.ok("listDiagnosticsTypes")
    text = str(listed)
    for name in ("tcp", "dns", "http", "route"):
        assert f"'{name}'" in text
