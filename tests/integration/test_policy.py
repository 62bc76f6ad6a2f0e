"""The operator's forbidden destinations, end to end: 431 for literals, refusal on the VM
for names that resolve into them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.stack import Stack, start_server, stop

DENIED = '["169.254.0.0/16", "203.0.113.0/24"]'


@pytest.fixture
def server(stack: Stack) -> Iterator[str]:
    proc, port = start_server(
        stack.database_url,
        stack.nats_url,
        stack.data_dir,
        "policy.log",
        {"CLOUDIAG_DENIED_NETWORKS": DENIED},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        stack.wait_for(lambda: httpx.get(f"{url}/client/api").status_code == 401, "API")
        yield url
    finally:
        stop(proc)


def _run(stack: Stack, url: str, address: str) -> httpx.Response:
    return stack.call_at(
        url,
        "runDiagnostics",
        targetid=stack.vm("router")["uuid"],
        type="ping",
        ipaddress=address,
        params="-c 1",
    )


def test_a_denied_literal_is_431_and_creates_nothing(stack: Stack, server: str) -> None:
    before = stack.ok("listAsyncJobs", listall="true").get("count", 0)
    r = _run(stack, server, "169.254.0.20")
    assert r.status_code == 431
    assert r.json()["rundiagnosticsresponse"]["errortext"] == (
        "Destination 169.254.0.20 is in 169.254.0.0/16, which the operator does not allow"
    )
    assert stack.ok("listAsyncJobs", listall="true").get("count", 0) == before


def test_a_name_resolving_into_a_denied_network_is_refused_on_the_vm(
    stack: Stack, server: str
) -> None:
    r = _run(stack, server, "gw.lab.test")  # the lab's DNS: 203.0.113.1
    assert r.status_code == 200, r.text
    job = stack.wait_job(r.json()["rundiagnosticsresponse"]["jobid"])
    # A refusal is a refusal: the job failed, and its errortext says why.
    assert job["jobstatus"] == 2, job
    reason = "Destination gw.lab.test (203.0.113.1) is in 203.0.113.0/24"
    assert job["jobresult"]["errortext"].startswith(reason)
    diag = job["jobresult"]["diagnostics"]
    assert diag["exitcode"] == "-1" and diag["stdout"] == ""
    assert reason in diag["stderr"]


def test_allowed_destinations_still_work(stack: Stack, server: str) -> None:
    r = _run(stack, server, "web.lab.test")
    job = stack.wait_job(r.json()["rundiagnosticsresponse"]["jobid"])
    diag = job["jobresult"]["diagnostics"]
    assert diag["exitcode"] == "0"
    # The tool got the address that was checked, not the name to look up again.
    web = stack.lab["targets"]["web"]
    assert diag["stdout"].startswith(f"PING {web} ({web})")
    assert f"web.lab.test is {web}" in diag["stderr"]
