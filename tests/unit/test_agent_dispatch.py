"""The agent's dispatch with fake executors: which executor runs a request, what is refused
(and that nothing runs then), cancelling, and stopping the agent under a running job."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from cloudiag.agent.dispatch import AGENT_STOPPED, Dispatcher
from cloudiag.agent.executors.base import OnRecord, Outcome, Stream
from cloudiag.agent.executors.registry import Executors
from cloudiag.bus import subjects
from cloudiag.bus.messages import (
    NetnsAccess,
    OutputLine,
    RunRequest,
    RunResult,
    SshAccess,
    VmReport,
)

DONE = Outcome(stdout="PING ok\n", stderr="", exitcode="0", duration=0.25)


class FakeExecutor:
    """Records what it is asked to run; plays back lines, then an outcome or an error.

    With ``block`` it runs until its stop event is set (and says it was cancelled) or its
    task is cancelled (and records that it cleaned up).
    """

    def __init__(
        self,
        outcome: Outcome = DONE,
        *,
        lines: Sequence[tuple[Stream, str]] = (),
        block: bool = False,
        error: Exception | None = None,
    ) -> None:
        self.outcome = outcome
        self.lines = lines
        self.block = block
        self.error = error
        self.runs: list[tuple[VmReport, RunRequest]] = []
        self.started = asyncio.Event()
        self.cleaned_up = False

    async def execute(
        self, vm: VmReport, request: RunRequest, *, on_record: OnRecord, stop: asyncio.Event
    ) -> Outcome:
        self.runs.append((vm, request))
        for stream, text in self.lines:
            await on_record(stream, text)
        self.started.set()
        if self.error is not None:
            raise self.error
        if self.block:
            try:
                await stop.wait()
            except asyncio.CancelledError:
                self.cleaned_up = True
                raise
            return Outcome(
                stdout="partial\n", stderr="", exitcode="-15", duration=1, cancelled=True
            )
        return self.outcome

    def spawned(self) -> int:
        return len(self.runs)


class FakeBus:
    """Keeps what is published; ``result`` waits for a job's result."""

    max_payload = 1 << 20

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self._results: dict[str, asyncio.Future[RunResult]] = {}

    async def publish(self, subject: str, payload: bytes) -> None:
        self.sent.append((subject, payload))
        if subject.endswith(".result"):
            result = RunResult.model_validate_json(payload)
            self._future(result.job_id).set_result(result)

    def _future(self, job_id: str) -> asyncio.Future[RunResult]:
        return self._results.setdefault(job_id, asyncio.get_running_loop().create_future())

    async def result(self, job_id: str) -> RunResult:
        return await asyncio.wait_for(self._future(job_id), 5)

    def lines(self, job_id: str) -> list[OutputLine]:
        return [
            OutputLine.model_validate_json(p)
            for s, p in self.sent
            if s == subjects.job_output(job_id)
        ]


ROUTER = VmReport(
    id="vm-r",
    name="r-1-VM",
    vm_type="domainrouter",
    state="Running",
    access=NetnsAccess(namespace="lab-r-1-VM"),
)
SSVM = VmReport(
    id="vm-s",
    name="s-2-VM",
    vm_type="secondarystoragevm",
    state="Running",
    access=SshAccess(address="169.254.0.20", key_file="/etc/cloudiag/id_ed25519"),
)
STOPPED = ROUTER.model_copy(update={"id": "vm-stopped", "name": "v-3-VM", "state": "Stopped"})


def request(job_id: str = "j1", vm_id: str = ROUTER.id, **changes: object) -> RunRequest:
    fields: dict[str, object] = {
        "job_id": job_id,
        "vm_id": vm_id,
        "type": "ping",
        "address": "198.51.100.10",
        "params": ["-c", "1"],
        "time_limit": 30.0,
        **changes,
    }
    return RunRequest.model_validate(fields)


def dispatcher(netns: FakeExecutor | None = None, ssh: FakeExecutor | None = None) -> Dispatcher:
    by_access: dict[type[NetnsAccess] | type[SshAccess], FakeExecutor] = {}
    if netns is not None:
        by_access[NetnsAccess] = netns
    if ssh is not None:
        by_access[SshAccess] = ssh
    d = Dispatcher(Executors(by_access), "host-1")
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
        (request(type="mtr"), "mtr Is not a valid diagnostics command type."),
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


async def test_a_refusal_on_the_vm_side_is_the_reason_alone() -> None:
    refused = Outcome(stdout="", stderr="", exitcode="-1", duration=0, refused="not allowed")
    d, bus = dispatcher(FakeExecutor(refused)), FakeBus()
    d.start(request("j1"), bus)
    result = await bus.result("j1")
    assert (result.stdout, result.stderr, result.exitcode) == ("", "not allowed", "-1")


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
