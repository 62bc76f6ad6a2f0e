"""An agent that is gone fails its jobs at once; a restarted agent serves the next job."""

from __future__ import annotations

import signal
import time

import pytest

from tests.integration.stack import Stack, cloudiag


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_job_fails_at_once_without_agent_and_works_after_restart(stack: Stack, sig: int) -> None:
    stack.stop_agent(sig)
    try:
        started = time.monotonic()
        r = stack.call(
            "runDiagnostics",
            targetid=stack.vm("router")["uuid"],
            type="ping",
            ipaddress=stack.lab["targets"]["web"],
            params="-c 1",
        )
        assert r.status_code == 200, r.text
        job = stack.wait_job(r.json()["rundiagnosticsresponse"]["jobid"], timeout=10)
        elapsed = time.monotonic() - started
        assert job["jobstatus"] == 2
        assert job["jobresultcode"] == 530
        assert job["jobresult"]["errorcode"] == 530
        assert "is not connected" in job["jobresult"]["errortext"]
        assert elapsed < 5, f"took {elapsed:.1f} s: it should fail at once, not time out"
        stack.wait_for(lambda: stack.host_state() == "Disconnected", "host Disconnected", 10)
    finally:
        stack.start_agent()
    job = stack.run("router", "ping", stack.lab["targets"]["web"], "-c 1")
    assert job["jobstatus"] == 1
    assert job["jobresult"]["diagnostics"]["exitcode"] == "0"


def test_stopped_vm_is_refused(stack: Stack) -> None:
    vm = stack.vm("consoleproxy")
    out = cloudiag("lab", "stop", "--prefix", stack.prefix, vm["name"])
    assert out.returncode == 0, out.stderr
    try:
        stack.wait_for(
            lambda: stack.ok("listSystemVms", id=vm["uuid"])["systemvm"][0]["state"] == "Stopped",
            "the VM to show Stopped",
        )
        r = stack.call(
            "runDiagnostics", targetid=vm["uuid"], type="ping", ipaddress="198.51.100.10"
        )
        assert r.status_code == 431, r.text
        assert "Unable to find host" in r.json()["rundiagnosticsresponse"]["errortext"]
    finally:
        assert cloudiag("lab", "start", "--prefix", stack.prefix, vm["name"]).returncode == 0
    stack.wait_for(
        lambda: stack.ok("listSystemVms", id=vm["uuid"])["systemvm"][0]["state"] == "Running",
        "the VM to run again",
    )
    job = stack.run("consoleproxy", "ping", stack.lab["targets"]["web"], "-c 1")
    assert job["jobresult"]["diagnostics"]["exitcode"] == "0"
