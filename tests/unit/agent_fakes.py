"""Fakes of the agent's unit tests: an executor that plays a script, a bus that records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from cloudiag.agent.executors.base import OnRecord, Outcome, Stream
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
        self.closed = False

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

    async def close(self) -> None:
        self.closed = True


class FakeBus:
    """The bus as a job sees it: keeps the output lines; ``result`` waits for a job's result."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self._results: dict[str, asyncio.Future[RunResult]] = {}
        #: getDiagnosticsData zips put on the bus, by job id.
        self.archives: dict[str, bytes] = {}

    async def publish(self, subject: str, payload: bytes) -> None:
        self.sent.append((subject, payload))

    async def deliver(self, result: RunResult) -> None:
        self._future(result.job_id).set_result(result)

    async def store_archive(self, job_id: str, data: bytes) -> None:
        self.archives[job_id] = data

    def _future(self, job_id: str) -> asyncio.Future[RunResult]:
        return self._results.setdefault(job_id, asyncio.get_running_loop().create_future())

    async def result(self, job_id: str) -> RunResult:
        return await asyncio.wait_for(self._future(job_id), 5)

    def lines(self, job_id: str) -> list[OutputLine]:
        return [
            OutputLine.model_validate_json(p)
            for s, p in self.sent
            if s == subjects.job_output(subjects.host_of(s), job_id)
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
        "start_by": time.time() + 60,
        "vm_id": vm_id,
        "type": "ping",
        "address": "198.51.100.10",
        "params": ["-c", "1"],
        "time_limit": 30.0,
        **changes,
    }
    return RunRequest.model_validate(fields)
