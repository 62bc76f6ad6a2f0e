"""The agent's dispatch with fake executors: which executor runs a request, what is refused
(and that nothing runs then), cancelling, and stopping the agent under a running job."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from cloudiag.agent.dispatch import AGENT_STOPPED, Dispatcher
from cloudiag.agent.executors import netns
from cloudiag.agent.executors.base import Outcome
from cloudiag.agent.executors.registry import Executors
from cloudiag.bus.messages import CollectRequest, NetnsAccess, RunRequest, RunResult, SshAccess
from cloudiag.sysvm import collect
from cloudiag.sysvm.errors import DiagnosticsInputError
from tests.unit.agent_fakes import ROUTER, SSVM, STOPPED, FakeBus, FakeExecutor, request


def dispatcher(netns: FakeExecutor | None = None, ssh: FakeExecutor | None = None) -> Dispatcher:
    by_access: dict[type[NetnsAccess] | type[SshAccess], FakeExecutor] = {}
    if netns is not None:
        by_access[NetnsAccess] = netns
    if ssh is not None:
        by_access[SshAccess] = ssh
    d = Dispatcher(Executors(by_access), "host-1", "h-1")
    d.set_vms([ROUTER, SSVM, STOPPED])
    return d


async def test_a_request_runs_on_the_executor_its_vms_access_calls_for() -> None:
    netns = FakeExecutor(lines=[("stdout", "PING 198.51.100.10\n"), ("stderr", "warn\n")])
    ssh = FakeExecutor(Outcome(stdout="ssh ok\n", stderr="", exitcode="0", duration=0.5))
    d, bus = dispatcher(netns, ssh), FakeBus()

    assert d.start(request("j1", ROUTER.id), bus) == ""
    assert d.start(request("j2", SSVM.id), bus) == ""
    first, second = await bus.result("j1"), await bus.result("j2")

    assert [(vm.id, r.job_id) for vm, r in netns.runs] == [(ROUTER.id, "j1")]
    assert [(vm.id, r.job_id) for vm, r in ssh.runs] == [(SSVM.id, "j2")]
    assert first == RunResult(
        job_id="j1", stdout="PING ok\n", stderr="", exitcode="0", duration=0.25
    )
    assert second.stdout == "ssh ok\n"
    assert [(x.seq, x.stream, x.text) for x in bus.lines("j1")] == [
        (1, "stdout", "PING 198.51.100.10\n"),
        (2, "stderr", "warn\n"),
    ]
    assert d.running() == [] and d.executors.spawned() == 2


@pytest.mark.parametrize(
    ("req", "errortext"),
    [
        (request(vm_id="vm-nowhere"), "VM vm-nowhere is not on host host-1"),
        (request(vm_id=STOPPED.id), "VM v-3-VM is Stopped"),
        (request(vm_id=SSVM.id), "VM s-2-VM has no executor this agent supports"),
        (request(type="nmap"), "nmap Is not a valid diagnostics command type."),
        (request(address="-c"), "must not start with '-'"),
        (request(params=["--flood"]), '"--flood" is not allowed for ping'),
        (request(denied_networks=["198.51.100.0/24"]), "198.51.100.0/24"),
        (request(denied_networks=["not-a-net"]), "not a network: 'not-a-net'"),
    ],
    ids=[
        "unknown-vm",
        "stopped-vm",
        "no-executor",
        "bad-type",
        "bad-address",
        "bad-option",
        "denied",
        "bad-policy",
    ],
)
async def test_a_refused_request_says_why_and_runs_nothing(req: RunRequest, errortext: str) -> None:
    netns = FakeExecutor()
    d, bus = dispatcher(netns), FakeBus()  # No SSH executor: the SSVM cannot be reached.
    error = d.start(req, bus)
    assert errortext in error
    await asyncio.sleep(0)
    assert netns.runs == [] and bus.sent == [] and d.running() == []


async def test_a_job_already_running_is_not_started_twice() -> None:
    netns = FakeExecutor(block=True)
    d, bus = dispatcher(netns), FakeBus()
    assert d.start(request("j1"), bus) == ""
    await netns.started.wait()
    assert d.start(request("j1"), bus) == "job j1 is already running"
    assert len(netns.runs) == 1
    assert d.cancel("j1", "admin")
    await bus.result("j1")


async def test_cancel_stops_the_running_job_and_its_result_says_so() -> None:
    netns = FakeExecutor(block=True, lines=[("stdout", "64 bytes\n")])
    d, bus = dispatcher(netns), FakeBus()
    d.start(request("j1"), bus)
    await netns.started.wait()
    assert d.running() == ["j1"]

    assert d.cancel("j1", "admin") is True
    assert d.cancel("j1", "someone-else") is True  # Still running: the first one is named.
    result = await bus.result("j1")

    assert result.cancelled_by == "admin"
    assert result.stdout == "partial\n" and result.exitcode == "-15"
    assert [x.text for x in bus.lines("j1")] == ["64 bytes\n"]
    await asyncio.sleep(0)
    assert d.running() == []
    assert d.cancel("j1", "admin") is False  # Finished: nothing to cancel.


async def test_stopping_the_agent_stops_its_jobs_and_says_so() -> None:
    netns = FakeExecutor(block=True)
    d, bus = dispatcher(netns), FakeBus()
    d.start(request("j1"), bus)
    await netns.started.wait()
    await d.stop_all()
    result = await bus.result("j1")
    assert netns.cleaned_up is True
    assert (result.stderr, result.exitcode) == (AGENT_STOPPED, "-1")
    assert d.running() == []


async def test_a_refusal_where_it_was_to_run_fails_the_job_with_its_reason() -> None:
    refused = Outcome(stdout="", stderr="no", exitcode="-1", duration=0, refused="not allowed")
    d, bus = dispatcher(FakeExecutor(refused)), FakeBus()
    d.start(request("j1"), bus)
    result = await bus.result("j1")
    assert (result.error, result.stderr, result.exitcode) == ("not allowed", "no", "-1")


async def test_a_failing_executor_gives_an_error_result() -> None:
    d, bus = dispatcher(FakeExecutor(error=RuntimeError("boom"))), FakeBus()
    d.start(request("j1"), bus)
    result = await bus.result("j1")
    assert (result.stderr, result.exitcode) == ("agent error: boom", "-1")
    await asyncio.sleep(0)
    assert d.running() == []


async def test_the_vm_failing_under_a_run_is_the_jobs_error() -> None:
    gone = Outcome(stdout="64 bytes\n", stderr="", exitcode="-9", duration=1, error="VM stopped")
    d, bus = dispatcher(FakeExecutor(gone)), FakeBus()
    d.start(request("j1"), bus)
    result = await bus.result("j1")
    assert (result.error, result.stdout, result.cancelled_by) == ("VM stopped", "64 bytes\n", "")


async def test_closing_the_executors_closes_every_one_even_when_one_fails() -> None:
    class Broken(FakeExecutor):
        async def close(self) -> None:
            raise OSError("the connection was already gone")

    broken, fine = Broken(), FakeExecutor()
    await Executors({NetnsAccess: broken, SshAccess: fine}).close()
    assert fine.closed


def _collection(items: list[str], job_id: str = "d1") -> RunRequest:
    spec = CollectRequest(items=items, roots=["/etc", "/var/log"], max_file=4096, max_zip=8192)
    return request(job_id, type=collect.TYPE_NAME, address="", params=[], collect=spec)


@pytest.mark.parametrize(
    "items", [["/etc/../root/.ssh/id_rsa"], ["/dev/sda"], ["[a/b]"], ["/opt/x"], []]
)
async def test_the_agent_refuses_a_hostile_collection_and_runs_nothing(items: list[str]) -> None:
    netns = FakeExecutor()
    d, bus = dispatcher(netns), FakeBus()
    assert d.start(_collection(items), bus) != ""
    await asyncio.sleep(0)
    assert netns.runs == [] and bus.archives == {}


async def test_a_collections_zip_goes_on_the_bus_before_its_result() -> None:
    zipped = b"PK\x03\x04 a zip"
    netns = FakeExecutor(Outcome(stdout="", stderr="", exitcode="0", duration=0.1, archive=zipped))
    d, bus = dispatcher(netns), FakeBus()
    assert d.start(_collection(["ipaddr", "/etc/hosts"]), bus) == ""
    result = await bus.result("d1")
    assert bus.archives == {"d1": zipped}
    assert result.archive_size == len(zipped)
    assert result.archive_sha256 == hashlib.sha256(zipped).hexdigest()
    assert result.stdout == ""


@pytest.mark.parametrize("mount", [None, "/nonexistent/mnt-ns"])
async def test_a_lab_vm_without_files_of_its_own_gives_no_collection(
    mount: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without its own mount namespace a lab VM sees the agent host's files: refused, and
    nothing is started (the namespace is never entered)."""
    started: list[object] = []
    monkeypatch.setattr(netns, "_run_words", lambda *a, **k: started.append(a))
    with pytest.raises(DiagnosticsInputError, match="has no files of its own"):
        await netns.collect_in_netns(
            "no-such-ns", _collection(["/etc/hosts"]), vm_name="r-1-VM", mount=mount
        )
    assert started == []
