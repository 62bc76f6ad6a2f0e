"""The SSH executor on the lab's system VMs (`cloudiag lab up --ssh`), reached from the lab's
hypervisor namespace as a KVM host reaches its VMs over cloud0.

r-1-VM and s-2-VM run our zipapp in a warm session, v-3-VM the lab's CloudStack-style
script in its Python 3 and Python 2 forms. The zipapp goes to /var/lib/cloudiag, as on a
real VM: a folder of each VM's own here (its mount namespace), never this machine's.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudiag.agent.executors import remote_install
from cloudiag.agent.executors.base import Outcome, Stream
from cloudiag.agent.executors.netns import zipapp_path
from cloudiag.agent.executors.ssh import SshExecutor
from cloudiag.bus.messages import RunRequest, VmReport
from cloudiag.lab import manager, sshd, topology
from cloudiag.lab.inventory import inventory
from tests.integration.stack import cloudiag, lab_ready

pytestmark = pytest.mark.lab

WEB = "198.51.100.10"


@pytest.fixture(scope="module")
def ssh_lab() -> Iterator[str]:
    reason = lab_ready() or manager.check_requirements(ssh=True)
    if reason:
        pytest.skip(str(reason))
    prefix = "cdx" + secrets.token_hex(2)
    try:
        out = cloudiag("lab", "up", "--ssh", "--prefix", prefix)
        if out.returncode != 0:
            raise RuntimeError(f"lab up --ssh failed: {out.stderr.strip()}")
        yield prefix
    finally:
        cloudiag("lab", "down", "--prefix", prefix)


@pytest.fixture
async def executor(tmp_path: Path) -> AsyncIterator[SshExecutor]:
    ex = SshExecutor(tmp_path)
    try:
        yield ex
    finally:
        await ex.close()


def vms(prefix: str) -> dict[str, VmReport]:
    found: dict[str, Any] = {}
    for vm in inventory(prefix, "ssh")["vms"]:
        if vm["access"]["kind"] == "ssh":
            found[vm["name"]] = VmReport.model_validate({**vm, "state": "Running"})
    return found


def ping(vm: VmReport, job_id: str = "j1", **changes: object) -> RunRequest:
    req = RunRequest(
        job_id=job_id,
        start_by=time.time() + 60,
        vm_id=vm.id,
        type="ping",
        address=WEB,
        params=["-c", "1"],
        time_limit=20,
    )
    return req.model_copy(update=changes)


async def run(ex: SshExecutor, vm: VmReport, req: RunRequest) -> Outcome:
    async def on_record(stream: Stream, text: str) -> None:
        pass

    return await ex.execute(vm, req, on_record=on_record, stop=asyncio.Event())


async def test_every_system_vm_answers_over_ssh(ssh_lab: str, executor: SshExecutor) -> None:
    found = vms(ssh_lab)
    assert {n: getattr(vm.access, "script", "") for n, vm in found.items()} == {
        "r-1-VM": "cloudiag",
        "s-2-VM": "cloudiag",
        "v-3-VM": "cloudstack",
    }
    for name, vm in found.items():
        out = await run(executor, vm, ping(vm))
        assert out.exitcode == "0", (name, out)
        assert "1 received" in out.stdout, (name, out.stdout)
    # The two zipapp VMs: one install and one session each, one tool per diagnostic.
    assert executor.installs == 2 and executor.pool.opened() == 2
    assert executor.tools_started() == 2 and executor.script_runs == 1
    # Installed where the executor puts it on a real VM, which is the VM's own tree here:
    # never the lab machine's /var/lib/cloudiag.
    state = manager.default_state_dir(ssh_lab)
    name = Path(await zipapp_path()).name
    for vm_name in ("r-1-VM", "s-2-VM"):
        assert (state / "vms" / vm_name / "root/var/lib/cloudiag" / name).is_file()
    assert not (Path(remote_install.REMOTE_DIR) / name).exists()


async def test_the_python2_form_of_the_script(ssh_lab: str, executor: SshExecutor) -> None:
    vm = vms(ssh_lab)["v-3-VM"]
    assert cloudiag("lab", "script", "--prefix", ssh_lab, "v-3-VM", "python2").returncode == 0
    try:
        out = await run(executor, vm, ping(vm))
        assert out.exitcode == "0" and "1 received" in out.stdout, out
    finally:
        cloudiag("lab", "script", "--prefix", ssh_lab, "v-3-VM", "python3")


async def test_sshd_killed_in_the_vm_during_a_job_then_back(
    ssh_lab: str, executor: SshExecutor
) -> None:
    vm = vms(ssh_lab)["r-1-VM"]
    node = next(n for n in topology.NODES if n.name == "r-1-VM")
    state = manager.default_state_dir(ssh_lab)
    ns = topology.namespace(ssh_lab, node)
    assert (await run(executor, vm, ping(vm))).exitcode == "0"

    job = asyncio.ensure_future(
        run(executor, vm, ping(vm, "long", params=["-c", "30", "-i", "0.5"]))
    )
    await asyncio.sleep(1.0)
    killed = time.monotonic()
    sshd.stop(ns, state, node)
    try:
        out = await asyncio.wait_for(job, 20 + 5)
        assert time.monotonic() - killed < 5
        assert out.exitcode == "-1" and "r-1-VM" in out.error, out
        assert "bytes from" in out.stdout
    finally:
        sshd.start(ssh_lab, ns, state, node)
    again = await run(executor, vm, ping(vm, "again"))
    assert again.exitcode == "0", again
