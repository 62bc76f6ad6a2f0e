"""An agent that is gone fails its jobs at once; a restarted agent serves the next job, and
so does one that learns its VMs from a static inventory file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloudiag.lab.inventory import inventory as lab_inventory
from tests.integration.stack import Stack, cloudiag, stop


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


def test_an_agent_on_a_static_inventory_serves_its_vms(stack: Stack, tmp_path: Path) -> None:
    """`cloudiag agent --inventory FILE`: the file's host and VMs, in the states it declares."""
    inventory = lab_inventory(stack.prefix, stack.executor)
    for vm in inventory["vms"]:
        if vm["name"] == "s-2-VM":
            vm["state"] = "Stopped"
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(inventory))
    ssvm = stack.vm("secondarystoragevm")

    def ssvm_state() -> str:
        return str(stack.ok("listSystemVms", id=ssvm["uuid"])["systemvm"][0]["state"])

    stack.stop_agent()
    log = (stack.data_dir / "agent.log").open("a")
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloudiag",
            "agent",
            "--config",
            str(stack.agent_config),
            "--inventory",
            str(path),
            "--heartbeat-interval",
            str(stack.heartbeat),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    try:
        stack.wait_for(lambda: stack.host_state() == "Up", "the host to be Up")
        stack.wait_for(lambda: ssvm_state() == "Stopped", "the SSVM to show Stopped")
        job = stack.run("router", "ping", stack.lab["targets"]["web"], "-c 1")
        assert job["jobresult"]["diagnostics"]["exitcode"] == "0"
    finally:
        stop(agent)
        log.close()
        stack.start_agent()
    stack.wait_for(lambda: ssvm_state() == "Running", "the SSVM to run again")


def test_an_unreadable_inventory_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text("[zone]\nid = 'z'\n")
    out = cloudiag("agent", "--nats-url", "nats://127.0.0.1:1", "--inventory", str(path))
    assert out.returncode == 2
    assert f"invalid inventory {path}: zone.name: Field required; host: Field required" in (
        out.stderr
    )
