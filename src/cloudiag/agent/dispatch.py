"""The agent's job table: refuse a request, run it on its VM's executor, cancel it.

Free of NATS subscriptions: it is handed decoded requests and a bus to publish the output
lines on and deliver the result to, so it can be tested with a fake executor and a fake bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from cloudiag.agent.executors.base import Executor, Outcome, Stream
from cloudiag.agent.executors.collect import collection_words
from cloudiag.agent.executors.registry import Executors
from cloudiag.bus import subjects
from cloudiag.bus.messages import OutputLine, RunRequest, RunResult, VmReport
from cloudiag.logs import job_id_var
from cloudiag.sysvm import errors, policy, registry, validate

log = logging.getLogger(__name__)

#: The stderr of a job the agent stopped under (it is shutting down).
AGENT_STOPPED = "the agent stopped during the run"
#: How long a stopping agent tries to deliver the result of a job it stopped; the job
#: table keeps it for the next agent process otherwise.
STOPPED_DELIVERY = 2.0


class JobBus(Protocol):
    """What the agent's jobs need of the bus."""

    async def publish(self, subject: str, payload: bytes) -> None:
        """Send one output line (best effort)."""
        ...

    async def deliver(self, result: RunResult) -> None:
        """Deliver a job's result durably (returns once the results stream has it)."""
        ...

    async def store_archive(self, job_id: str, data: bytes) -> None:
        """Put a getDiagnosticsData job's zip where the server takes it (before its result)."""
        ...


@dataclass
class _Control:
    """How a running job is stopped on request, and who asked."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    #: Who asked to cancel it, first one first.
    cancelled_by: list[str] = field(default_factory=list)
    #: Set once its tool has ended: what is left is delivering the result, and a cancel
    #: has nothing to stop.
    tool_ended: bool = False


class Dispatcher:
    """Runs the requests for the VMs of one host, one task per job."""

    def __init__(self, executors: Executors, host_name: str, host_id: str) -> None:
        self.executors = executors
        self.host_name = host_name
        self.host_id = host_id
        self._vms: dict[str, VmReport] = {}
        self._jobs: dict[str, tuple[asyncio.Task[None], _Control]] = {}
        #: Called each time a job has ended (the agent may then take another request).
        self.on_end: Callable[[], None] = lambda: None

    def set_vms(self, vms: Iterable[VmReport]) -> None:
        """The host's VMs as last reported: requests are checked against these."""
        self._vms = {vm.id: vm for vm in vms}

    @property
    def vms(self) -> list[VmReport]:
        """The VMs requests are checked against."""
        return list(self._vms.values())

    def running(self) -> list[str]:
        """The ids of the jobs running now."""
        return list(self._jobs)

    def refusal(self, req: RunRequest) -> str:
        """Why this agent will not run the request, or '' (the second wall of validation)."""
        if req.job_id in self._jobs:
            return f"job {req.job_id} is already running"
        vm = self._vms.get(req.vm_id)
        if vm is None:
            return f"VM {req.vm_id} is not on host {self.host_name}"
        if vm.state != "Running":
            return f"VM {vm.name} is {vm.state}"
        if self.executors.for_access(vm.access) is None:
            return f"VM {vm.name} has no executor this agent supports"
        return _invalid(req, vm)

    def start(self, req: RunRequest, bus: JobBus, *, received: float | None = None) -> str:
        """Start the job and return '', or return why it is refused (nothing runs then).

        `received`: when its request came (time.perf_counter()), for the log of its start.
        """
        error = self.refusal(req)
        if error:
            return error
        vm = self._vms[req.vm_id]
        executor = self.executors.for_access(vm.access)
        assert executor is not None  # refusal() checked it.
        control = _Control()
        taken = time.perf_counter() - received if received is not None else 0.0
        task = asyncio.create_task(self._execute(req, vm, executor, bus, control, taken))
        self._jobs[req.job_id] = (task, control)
        task.add_done_callback(lambda _t: self._ended(req.job_id))
        return ""

    def _ended(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
        self.on_end()

    def cancel(self, job_id: str, by: str) -> bool:
        """Ask a running job to stop (its result says who asked); False if it is not running."""
        entry = self._jobs.get(job_id)
        if entry is None or entry[1].tool_ended:
            return False
        _, control = entry
        control.cancelled_by.append(by)
        control.stop.set()
        return True

    async def stop_all(self) -> None:
        """Cancel every running job and wait for them (each says the agent stopped)."""
        tasks = [task for task, _ in self._jobs.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _execute(
        self,
        req: RunRequest,
        vm: VmReport,
        executor: Executor,
        bus: JobBus,
        control: _Control,
        taken: float,
    ) -> None:
        job_id_var.set(req.job_id)
        seq = 0

        async def on_record(stream: Stream, text: str) -> None:
            nonlocal seq
            seq += 1
            line = OutputLine(job_id=req.job_id, seq=seq, stream=stream, text=text)
            await bus.publish(subjects.job_output(self.host_id, req.job_id), line.encode())

        # The times in these two lines are stages of bench/rundiagnostics_latency.py.
        log.info(
            "running %s %s on %s (request taken in %.2f ms)",
            req.type,
            req.address,
            vm.name,
            taken * 1000,
        )
        try:
            outcome = await executor.execute(vm, req, on_record=on_record, stop=control.stop)
            control.tool_ended = True
            result = await _with_archive(
                _result(req.job_id, outcome, control.cancelled_by), outcome.archive, bus
            )
        except asyncio.CancelledError:
            # The agent is stopping: tell the server now rather than let it wait for a timeout.
            stopped = RunResult(
                job_id=req.job_id,
                stdout="",
                stderr=AGENT_STOPPED,
                exitcode="-1",
                error="The agent stopped during the job; run the diagnostic again",
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bus.deliver(stopped), STOPPED_DELIVERY)
            raise
        except Exception as exc:
            log.exception("executor failed")
            result = RunResult(
                job_id=req.job_id, stdout="", stderr=f"agent error: {exc}", exitcode="-1"
            )
        log.info(
            "finished exitcode=%s timed_out=%s (the tool ran %.2f ms)",
            result.exitcode,
            result.timed_out,
            result.duration * 1000,
        )
        await bus.deliver(result)


async def _with_archive(result: RunResult, archive: bytes, bus: JobBus) -> RunResult:
    """The result of a job that sent a zip, once the zip is on the bus for the server."""
    if not archive:
        return result
    try:
        await bus.store_archive(result.job_id, archive)
    except Exception as exc:
        log.exception("could not put the zip on the bus")
        return result.model_copy(update={"error": f"The agent could not pass the zip on: {exc}"})
    digest = hashlib.sha256(archive).hexdigest()
    return result.model_copy(update={"archive_size": len(archive), "archive_sha256": digest})


def _invalid(req: RunRequest, vm: VmReport) -> str:
    """Why the request itself is refused for this VM by the system-VM rules, or ''."""
    if req.collect is not None:
        try:
            collection_words(req)
        except errors.DiagnosticsInputError as exc:
            return exc.message
        return ""
    try:
        dtype = registry.get_type(req.type)
        if vm.vm_type not in dtype.vm_types:
            return f"{req.type} is not available on a {vm.vm_type}"
        checked = validate.validate(req.type, req.address, req.params, time_limit=req.time_limit)
        denied = policy.denied_request(checked, policy.parse_networks(req.denied_networks))
    except errors.DiagnosticsInputError as exc:
        return exc.message
    except ValueError as exc:  # A malformed denied network.
        return str(exc)
    return denied or ""


def _result(job_id: str, outcome: Outcome, cancelled_by: list[str]) -> RunResult:
    """The bus's result of a run's outcome; a refusal fails the job with its reason."""
    return RunResult(
        job_id=job_id,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        exitcode=outcome.exitcode,
        timed_out=outcome.timed_out,
        truncated=outcome.truncated,
        duration=outcome.duration,
        cancelled_by=(cancelled_by[0] if cancelled_by else "someone") if outcome.cancelled else "",
        error=outcome.refused or outcome.error,
    )
