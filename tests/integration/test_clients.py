"""runDiagnostics end to end from real CloudStack clients: cs, libcloud, a raw signed request."""

from __future__ import annotations

from typing import Any

import pytest
from cs import CloudStack
from libcloud.compute.providers import get_driver
from libcloud.compute.types import Provider

from tests.integration.stack import Stack

ROLES = ["router", "secondarystoragevm", "consoleproxy"]


def _cs(stack: Stack) -> CloudStack:
    """cs polls the job itself (fetch_result) and returns its jobresult."""
    return CloudStack(
        endpoint=stack.api,
        key=stack.admin.apikey,
        secret=stack.admin.secretkey,
        fetch_result=True,
        poll_interval=0.2,
        job_timeout=120,
    )


def _assert_diagnostics(result: dict[str, Any], exitcode: str = "0") -> dict[str, str]:
    diag = result["diagnostics"]
    assert set(diag) >= {"stdout", "stderr", "exitcode"}
    assert all(isinstance(diag[k], str) for k in ("stdout", "stderr", "exitcode"))
    if exitcode == "0":
        assert diag["exitcode"] == "0", diag
    else:
        assert diag["exitcode"] != "0", diag
    return diag


@pytest.mark.parametrize("role", ROLES)
def test_cs_ping_traceroute_arping(stack: Stack, role: str) -> None:
    cs = _cs(stack)
    targets = stack.lab["targets"]
    vm = stack.vm(role)["uuid"]

    ping = cs.runDiagnostics(targetid=vm, type="ping", ipaddress=targets["web"])
    diag = _assert_diagnostics(ping)
    assert "4 packets transmitted, 4 received" in diag["stdout"]

    trace = cs.runDiagnostics(
        targetid=vm, type="traceroute", ipaddress=targets["web"], params="-n -q 1 -w 1 -m 5"
    )
    diag = _assert_diagnostics(trace)
    hops = [line for line in diag["stdout"].splitlines()[1:] if line.strip()]
    assert len(hops) >= 2, diag["stdout"]
    assert targets["gateway"] in hops[0] and targets["web"] in hops[-1]

    arping = cs.runDiagnostics(
        targetid=vm, type="arping", ipaddress=targets["gateway"], params="-c 2 -w 3"
    )
    diag = _assert_diagnostics(arping)
    assert "Unicast reply from " + targets["gateway"] in diag["stdout"]


@pytest.mark.parametrize("role", ROLES)
def test_cs_unreachable_is_nonzero(stack: Stack, role: str) -> None:
    result = _cs(stack).runDiagnostics(
        targetid=stack.vm(role)["uuid"],
        type="ping",
        ipaddress=stack.lab["targets"]["unreachable"],
        params="-c 1 -W 1",
    )
    _assert_diagnostics(result, exitcode="nonzero")


# (type, lab target, params, what stdout must show): one quick run of each type.
RUNS = [
    ("ping", "web", "-c 1", "1 received"),
    ("traceroute", "web", "-n -q 1 -w 1 -m 5", " 2  198.51.100.10"),
    ("arping", "gateway", "-c 1 -w 2", "Unicast reply from 203.0.113.1"),
]


@pytest.mark.parametrize(("type_", "target", "params", "expect"), RUNS, ids=[r[0] for r in RUNS])
@pytest.mark.parametrize("role", ROLES)
def test_libcloud_runs_diagnostics(
    stack: Stack, role: str, type_: str, target: str, params: str, expect: str
) -> None:
    host, port = stack.url.removeprefix("http://").split(":")
    driver = get_driver(Provider.CLOUDSTACK)(
        key=stack.admin.apikey,
        secret=stack.admin.secretkey,
        host=host,
        port=int(port),
        path="/client/api",
        secure=False,
    )
    driver.connection.poll_interval = 0.2
    result = driver._async_request(
        command="runDiagnostics",
        params={
            "targetid": stack.vm(role)["uuid"],
            "type": type_,
            "ipaddress": stack.lab["targets"][target],
            "params": params,
        },
        method="GET",
    )
    diag = _assert_diagnostics(result)
    assert expect in diag["stdout"]


@pytest.mark.parametrize(("type_", "target", "params", "expect"), RUNS, ids=[r[0] for r in RUNS])
@pytest.mark.parametrize("role", ROLES)
def test_cloudiag_client(
    stack: Stack, role: str, type_: str, target: str, params: str, expect: str
) -> None:
    job = stack.run(role, type_, stack.lab["targets"][target], params)
    assert job["jobstatus"] == 1
    assert job["jobresultcode"] == 0
    assert job["jobresulttype"] == "object"
    assert job["cmd"].endswith("RunDiagnosticsCmd")
    assert job["jobinstanceid"] == stack.vm(role)["uuid"]
    assert job["jobinstancetype"] == ("DomainRouter" if role == "router" else "SystemVm")
    assert job["created"] and job["completed"]
    diag = _assert_diagnostics(job["jobresult"])
    assert expect in diag["stdout"]
    # The summary beside the raw output (a cloudiag extension clients may ignore).
    parsed = diag["parsed"]
    assert parsed["type"] == type_
    if type_ == "ping":
        # RIPE Atlas's ping result, with our loss beside it.
        assert (parsed["sent"], parsed["rcvd"], parsed["loss"]) == (1, 1, 0.0)
        assert (parsed["af"], parsed["dst_addr"]) == (4, stack.lab["targets"][target])
        assert [set(r) >= {"rtt", "ttl"} for r in parsed["result"]] == [True]
    elif type_ == "traceroute":
        assert parsed["reached"] and len(parsed["result"]) == 2
        assert parsed["result"][-1]["result"][0]["from"] == stack.lab["targets"][target]
    else:
        assert parsed["received"] == 1 and parsed["duplicate"] is False and parsed["macs"]


def test_the_summary_names_the_host_name_the_run_asked_for(stack: Stack) -> None:
    targets = stack.lab["targets"]
    job = stack.run("router", "traceroute", targets["web_name"], "-n -q 1 -w 1 -m 5")
    diag = _assert_diagnostics(job["jobresult"])
    parsed = diag["parsed"]
    # The VM resolves the name and hands traceroute the address it checked against the
    # denied networks (there are some by default): the output never names the host...
    assert targets["web_name"] not in diag["stdout"]
    # ...and the summary names both, the name as the job asked for it.
    assert (parsed["dst_name"], parsed["dst_addr"]) == (targets["web_name"], targets["web"])
    assert parsed["reached"] is True


def test_event_recorded_for_each_run(stack: Stack) -> None:
    job = stack.run("consoleproxy", "ping", stack.lab["targets"]["web"], "-c 1")
    events = stack.ok("listEvents", type="PROXY.DIAGNOSTICS")["event"]
    mine = [e for e in events if e["jobid"] == job["jobid"]]
    assert {e["state"] for e in mine} == {"Started", "Completed"}
    done = next(e for e in mine if e["state"] == "Completed")
    assert done["username"] == stack.admin.username
    assert "exit code 0" in done["description"]
    assert stack.vm("consoleproxy")["uuid"] in done["description"]
