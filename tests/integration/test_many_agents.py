"""Several agents, each its own host and process with a static inventory of the lab's VMs:
a VM moved from one host to another is diagnosed on the new one, a VM no agent reports is
Stopped, and a host whose heartbeats stop is Disconnected within three intervals, its VMs'
diagnostics failing at once with a clear error.

Its own stack: the agents here take the lab's VMs away from the shared stack's agent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudiag.lab.inventory import inventory as lab_inventory
from tests.integration.stack import Stack, launch, stop

HEARTBEAT = 1.0
#: The second host's id: the same for every test, as a real host keeps its own.
HOST_B = str(uuid.uuid4())


class Agent:
    """`cloudiag agent` of one host, on an inventory file the test rewrites."""

    def __init__(self, st: Stack, name: str, host_id: str, vms: list[dict[str, Any]]) -> None:
        self.name, self.host_id = name, host_id
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=st.data_dir))
        self.inventory = self.dir / "inventory.json"
        self.base = lab_inventory(st.prefix, "netns")
        self.set_vms(vms)
        # Its own key on the bus: the lab host's from the stack, another host's from
        # `cloudiag host add`.
        if host_id == self.base["host"]["id"]:
            config = st.agent_config
        else:
            config = st.add_host(name, host_id, self.inventory)
        self.log_path = self.dir / "agent.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cloudiag",
                    "agent",
                    "--config",
                    str(config),
                    "--inventory",
                    str(self.inventory),
                    "--host-name",
                    name,
                    "--heartbeat-interval",
                    str(HEARTBEAT),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "CLOUDIAG_DATA_DIR": str(self.dir),
                    "CLOUDIAG_LOG_FORMAT": "json",
                },
            )

    def set_vms(self, vms: list[dict[str, Any]]) -> None:
        """The VMs this host runs, from its next heartbeat (written whole, then renamed)."""
        data = {**self.base, "host": {"id": self.host_id}, "vms": vms}
        partial = self.inventory.with_suffix(".tmp")
        partial.write_text(json.dumps(data))
        partial.replace(self.inventory)

    def ran(self, jobid: str) -> bool:
        """Whether this agent's log has lines of that job (every line of a job names it)."""
        for line in self.log_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("job_id") == jobid:
                return True
        return False


@pytest.fixture(scope="module")
def fleet(lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack whose own agent is stopped: the tests' agents serve the lab's VMs instead."""
    data_dir = tmp_path_factory.mktemp("agents")
    with launch("sqlite", lab, data_dir, heartbeat=HEARTBEAT) as st:
        st.stop_agent()
        yield st


@pytest.fixture
def agents(fleet: Stack) -> Iterator[tuple[Agent, Agent]]:
    """Host A with the router and the SSVM, host B with the CPVM."""
    vms = {vm["name"]: vm for vm in lab_inventory(fleet.prefix, "netns")["vms"]}
    first_host = lab_inventory(fleet.prefix, "netns")["host"]["id"]
    started: list[Agent] = []
    try:
        a = Agent(fleet, "host-a", first_host, [vms["r-1-VM"], vms["s-2-VM"]])
        started.append(a)
        b = Agent(fleet, "host-b", HOST_B, [vms["v-3-VM"]])
        started.append(b)
        fleet.wait_for(lambda: _host_states(fleet) == {"host-a": "Up", "host-b": "Up"}, "hosts")
        yield a, b
    finally:
        for agent in started:
            agent.proc.send_signal(signal.SIGCONT)
            stop(agent.proc)
        # Their goodbyes stored (reports are stored in batches), so that the next test's
        # agents are seen Up by their own hellos, not by these agents' last beats.
        names = [agent.name for agent in started]
        fleet.wait_for(
            lambda: all(_host_states(fleet).get(n) == "Disconnected" for n in names), "goodbyes"
        )


def _host_states(st: Stack) -> dict[str, str]:
    return {h["name"]: h["state"] for h in st.ok("listHosts").get("host", [])}


def _vm(st: Stack, name: str) -> dict[str, Any]:
    """A system VM or router as the API lists it."""
    command, key = (
        ("listRouters", "router") if name.startswith("r-") else ("listSystemVms", "systemvm")
    )
    (vm,) = st.ok(command, name=name, listall=True).get(key, [])
    return dict(vm)


def _lab_vm(st: Stack, name: str) -> dict[str, Any]:
    return next(vm for vm in lab_inventory(st.prefix, "netns")["vms"] if vm["name"] == name)


def test_each_host_serves_its_own_vms(fleet: Stack, agents: tuple[Agent, Agent]) -> None:
    a, b = agents
    fleet.wait_for(lambda: _vm(fleet, "v-3-VM").get("hostid") == b.host_id, "the CPVM on B")
    assert _vm(fleet, "r-1-VM")["hostid"] == a.host_id
    web = fleet.lab["targets"]["web"]
    on_b = fleet.run("consoleproxy", "ping", web, "-c 1")
    on_a = fleet.run("router", "ping", web, "-c 1")
    assert on_a["jobstatus"] == on_b["jobstatus"] == 1
    assert b.ran(on_b["jobid"]) and not a.ran(on_b["jobid"])
    assert a.ran(on_a["jobid"]) and not b.ran(on_a["jobid"])


def test_a_moved_vm_is_diagnosed_on_its_new_host(fleet: Stack, agents: tuple[Agent, Agent]) -> None:
    a, b = agents
    cpvm = _lab_vm(fleet, "v-3-VM")
    a.set_vms([_lab_vm(fleet, "r-1-VM"), _lab_vm(fleet, "s-2-VM"), cpvm])
    b.set_vms([])
    fleet.wait_for(lambda: _vm(fleet, "v-3-VM").get("hostid") == a.host_id, "the move to A")
    assert _vm(fleet, "v-3-VM")["state"] == "Running"
    job = fleet.run("consoleproxy", "ping", fleet.lab["targets"]["web"], "-c 1")
    assert job["jobstatus"] == 1, job
    assert a.ran(job["jobid"]) and not b.ran(job["jobid"])


def test_a_vm_no_agent_reports_is_stopped(fleet: Stack, agents: tuple[Agent, Agent]) -> None:
    a, _ = agents
    a.set_vms([_lab_vm(fleet, "r-1-VM")])
    fleet.wait_for(lambda: _vm(fleet, "s-2-VM")["state"] == "Stopped", "the SSVM Stopped")
    r = fleet.call(
        "runDiagnostics",
        targetid=_vm(fleet, "s-2-VM")["id"],
        type="ping",
        ipaddress=fleet.lab["targets"]["web"],
    )
    assert r.status_code == 431, r.text
    assert "Unable to find host" in r.json()["rundiagnosticsresponse"]["errortext"]


def test_a_silent_host_is_disconnected_and_its_vms_fail_at_once(
    fleet: Stack, agents: tuple[Agent, Agent]
) -> None:
    _, b = agents
    paused_at = time.monotonic()
    b.proc.send_signal(signal.SIGSTOP)  # Alive but silent: no goodbye, no heartbeat.
    fleet.wait_for(
        lambda: _host_states(fleet)["host-b"] == "Disconnected", "B Disconnected", 3 * HEARTBEAT + 5
    )
    assert time.monotonic() - paused_at <= 3 * HEARTBEAT + 5
    assert _host_states(fleet)["host-a"] == "Up"
    started = time.monotonic()
    r = fleet.call(
        "runDiagnostics",
        targetid=_vm(fleet, "v-3-VM")["id"],
        type="ping",
        ipaddress=fleet.lab["targets"]["web"],
        params="-c 1",
    )
    if r.status_code == 200:
        job = fleet.wait_job(r.json()["rundiagnosticsresponse"]["jobid"], timeout=10)
        assert job["jobstatus"] == 2, job
        text = job["jobresult"]["errortext"]
    else:
        text = r.json()["rundiagnosticsresponse"]["errortext"]
    # At once: not at the request's start deadline (60 s), which a paused agent's open
    # connection would otherwise make it wait for.
    assert time.monotonic() - started < 15, "it must fail at once, not wait for the agent"
    assert "host-b" in text and ("not connected" in text or "Disconnected" in text), text
    b.proc.send_signal(signal.SIGCONT)
    fleet.wait_for(lambda: _host_states(fleet)["host-b"] == "Up", "B Up again", 10)
    job = fleet.run("consoleproxy", "ping", fleet.lab["targets"]["web"], "-c 1")
    assert job["jobstatus"] == 1, job
