"""Faults over SSH, end to end through the API on the SSH stack, with real processes.

The VM's sshd killed during a job, then back; the VM's host key changed; an agent that
logs in with another key; a VM whose python3 cannot run. Each job fails with a clear
errortext, nothing runs where it must not, and the next job works once the fault is gone.
Every test leaves the lab as it found it (keys, files, sshd). The VM is r-1-VM, which runs
our zipapp over SSH.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudiag.lab import manager, sshd, topology
from cloudiag.lab.inventory import inventory as lab_inventory
from tests.integration.stack import Stack, cloudiag, ssh_argv, tool_pids
from tests.integration.vm_files import vm_file

pytestmark = [pytest.mark.lab, pytest.mark.executor("ssh")]

LIMIT = 20


@pytest.fixture
def ssh_stack(stack: Stack) -> Stack:
    """The stack whose agent reaches the system VMs over SSH (the only one of this file)."""
    assert stack.executor == "ssh"
    return stack


@pytest.fixture
def router(ssh_stack: Stack) -> Iterator[dict[str, Any]]:
    """The router's lab entry; its sshd runs again at the end, with its own host key."""
    vm = ssh_stack.vm("router")
    node = next(n for n in topology.NODES if n.name == vm["name"])
    state = manager.default_state_dir(ssh_stack.prefix)
    key = sshd.host_key(state, node)
    saved = {path: path.read_bytes() for path in (key, Path(f"{key}.pub"))}
    try:
        yield vm
    finally:
        if any(path.read_bytes() != text for path, text in saved.items()):
            for path, text in saved.items():
                path.write_bytes(text)
            key.chmod(0o600)
            sshd.start(ssh_stack.prefix, vm["namespace"], state, node)
        elif not sshd.read_state(vm["namespace"], state, node).listening:
            sshd.start(ssh_stack.prefix, vm["namespace"], state, node)


def spawned(stack: Stack) -> int:
    """Processes the agent has started on VMs (sessions, tools, script execs)."""
    return stack.agent_status().spawned


def control(vm: dict[str, Any]) -> str:
    """The VM's control address, where its sshd listens."""
    return str(next(n for n in topology.NODES if n.name == vm["name"]).address_on("control"))


def failed(job: dict[str, Any]) -> str:
    """The errortext of a failed job."""
    assert job["jobstatus"] == 2, job
    return str(job["jobresult"]["errortext"])


def events_of(stack: Stack, vm: dict[str, Any], jobid: str) -> list[dict[str, Any]]:
    events = stack.ok("listEvents", resourceid=vm["uuid"], pagesize=500).get("event", [])
    return [e for e in events if e.get("jobid") == jobid]


def test_sshd_killed_during_a_job_fails_it_at_once_and_the_next_job_works(
    ssh_stack: Stack, router: dict[str, Any]
) -> None:
    st, web = ssh_stack, ssh_stack.lab["targets"]["web"]
    node = next(n for n in topology.NODES if n.name == router["name"])
    state = manager.default_state_dir(st.prefix)
    assert st.run("router", "ping", web, "-c 1")["jobresult"]["diagnostics"]["exitcode"] == "0"
    started = time.monotonic()
    jobid = st.client().run_diagnostics(
        router["uuid"], "ping", web, "-c 60 -i 0.5", timelimit=LIMIT
    )
    st.wait_for(lambda: bool(tool_pids(router["namespace"], "ping")), "ping to run")
    time.sleep(1)
    killed = time.monotonic()
    sshd.stop(router["namespace"], state, node)  # The listener, its sessions, their tools.
    job = st.wait_job(jobid, timeout=LIMIT + 5)
    assert time.monotonic() - killed < 5 and time.monotonic() - started < LIMIT + 5
    error = failed(job)
    assert error.startswith(
        f"the session to {router['name']} ended during the job: the SSH connection was lost ("
    ), error
    assert "icmp_seq=1 " in job["jobresult"]["diagnostics"]["stdout"]  # the output so far
    st.wait_for(lambda: len(events_of(st, router, jobid)) == 2, "the job's events")
    assert sorted(e["state"] for e in events_of(st, router, jobid)) == ["Completed", "Started"]
    # Back: the next job gets a new connection and session.
    sshd.start(st.prefix, router["namespace"], state, node)
    again = st.run("router", "ping", web, "-c 1")
    assert again["jobstatus"] == 1 and again["jobresult"]["diagnostics"]["exitcode"] == "0"


def test_a_changed_host_key_is_refused_and_nothing_runs(
    ssh_stack: Stack, router: dict[str, Any]
) -> None:
    st, web = ssh_stack, ssh_stack.lab["targets"]["web"]
    assert st.run("router", "ping", web, "-c 1")["jobstatus"] == 1
    # The VM rebuilt with a new host key; the lab's known_hosts, which the agent checks,
    # still has the old one. Its sshd restarts: the agent's connection ends.
    out = cloudiag("lab", "rekey", "--prefix", st.prefix, router["name"])
    assert out.returncode == 0, out.stderr
    before = spawned(st)
    error = failed(st.run("router", "ping", web, "-c 1"))
    where = f"{control(router)}:{topology.SSH_PORT}"
    assert error.startswith(
        f"cannot connect to {router['name']} at {where}: the host key of {router['name']} "
        f"([{control(router)}]:{topology.SSH_PORT}) changed: it is now SHA256:"
    ), error
    assert spawned(st) == before and tool_pids(router["namespace"], "ping") == []


def test_an_agent_with_another_client_key_is_refused_clearly(
    ssh_stack: Stack, router: dict[str, Any], tmp_path: Path
) -> None:
    st, web = ssh_stack, ssh_stack.lab["targets"]["web"]
    key = tmp_path / "id_other"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30
    )
    inventory = lab_inventory(st.prefix, "ssh")
    for vm in inventory["vms"]:
        if vm["access"]["kind"] == "ssh":
            vm["access"]["key_file"] = str(key)
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(inventory))
    st.stop_agent()
    try:
        st.start_agent(args=("--inventory", str(path)))
        error = failed(st.run("router", "ping", web, "-c 1"))
        assert spawned(st) == 0 and tool_pids(router["namespace"], "ping") == []
    finally:
        st.stop_agent()
        st.start_agent()
    assert error.startswith(
        f"cannot log in to {router['name']} at {control(router)}:{topology.SSH_PORT}: "
        "authentication refused "
        f"for root with key {key}"
    ), error
    assert st.run("router", "ping", web, "-c 1")["jobstatus"] == 1


def vm_pythons(stack: Stack, vm: dict[str, Any]) -> list[str]:
    """Every file the VM's login finds for ``python3`` on its PATH (root's may hold a pyenv
    shim before /usr/bin), asked with OpenSSH from the hypervisor as the agent would."""
    done = subprocess.run(
        ssh_argv(
            stack.lab["ssh"],
            control(vm),
            "for p in $(type -ap python3); do readlink -f $p; done",
        ),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return sorted(set(done.stdout.split()))


def test_a_vm_without_python_is_a_clear_error(ssh_stack: Stack, router: dict[str, Any]) -> None:
    st, web = ssh_stack, ssh_stack.lab["targets"]["web"]
    pythons = vm_pythons(st, router)
    assert pythons and all(p.startswith("/") for p in pythons), pythons
    with contextlib.ExitStack() as hidden:
        # An empty file, not executable, over each: the VM's shell finds no python3 to run.
        for python in pythons:
            hidden.enter_context(vm_file(st.prefix, router["name"], python, "", mode=0o644))
        # The agent's warm session to the VM started before: a new agent opens a new one.
        st.stop_agent()
        st.start_agent()
        error = failed(st.run("router", "ping", web, "-c 1"))
    assert error.startswith(f"VM {router['name']} has no usable python3 ("), error
    assert error.endswith("): set its script to cloudstack or install python3"), error
    assert tool_pids(router["namespace"], "ping") == []
    job = st.run("router", "ping", web, "-c 1")
    assert job["jobstatus"] == 1 and job["jobresult"]["diagnostics"]["exitcode"] == "0"


def test_a_cancelled_cloudstack_script_job_ends_at_once_its_tool_runs_out(
    ssh_stack: Stack,
) -> None:
    """The CPVM runs CloudStack's own script, one exec per diagnostic: a cancel closes its
    channel and the job ends at once, without output (the script prints only at its end),
    while the tool, which nothing on the VM stops, runs out its count."""
    st, cpvm = ssh_stack, ssh_stack.vm("consoleproxy")
    jobid = st.start_job("consoleproxy", "ping", st.lab["targets"]["web"], "-c 8 -i 0.5")
    st.wait_for(lambda: bool(tool_pids(cpvm["namespace"], "ping")), "ping to run on the VM")
    cancelled = time.monotonic()
    assert st.call("cancelDiagnostics", jobid=jobid).status_code == 200
    job = st.wait_job(jobid, timeout=10)
    assert time.monotonic() - cancelled < 3
    assert job["jobstatus"] == 2 and job["jobresult"]["cancelled"] is True
    diag = job["jobresult"]["diagnostics"]
    assert diag["stdout"] == ""
    assert "the CloudStack script's channel was closed" in diag["stderr"], diag
    st.wait_for(lambda: not tool_pids(cpvm["namespace"], "ping"), "the ping to run out", 10)
