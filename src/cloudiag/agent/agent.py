"""The agent: registers its host and VMs over NATS, sends heartbeats, runs diagnostics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from pydantic import ValidationError

from cloudiag import __version__
from cloudiag.agent.executors import netns
from cloudiag.agent.inventory import Zone, host_addresses
from cloudiag.bus import subjects
from cloudiag.bus.connect import connect
from cloudiag.bus.embedded import redact
from cloudiag.bus.messages import (
    AgentReport,
    CancelReply,
    CancelRequest,
    OutputLine,
    RunAccepted,
    RunRequest,
    RunResult,
    StatusReply,
    VmReport,
)
from cloudiag.logs import job_id_var
from cloudiag.sysvm import errors, policy, registry, validate

log = logging.getLogger(__name__)

Inventory = Callable[[], Awaitable[list[VmReport]]]


def fit_result(result: RunResult, max_payload: int) -> RunResult:
    """The result, its output cut (and marked truncated) until its message fits max_payload.

    Both streams are cut in proportion, keeping their beginnings, and a note is added to
    stderr. JSON escaping makes the encoded size of a text hard to predict, so the message
    is measured and cut again until it fits; past a few rounds it goes without output.
    """
    if len(result.encode()) <= max_payload:
        return result
    note = f"\n[cloudiag] output cut to fit the message bus's limit of {max_payload} bytes\n"
    bare = result.model_copy(update={"stdout": "", "stderr": note, "truncated": True})
    framing = len(bare.encode())
    stdout, stderr = result.stdout, result.stderr
    for _ in range(8):
        if framing >= max_payload:
            break
        fitted = result.model_copy(
            update={"stdout": stdout, "stderr": stderr + note, "truncated": True}
        )
        text = len(fitted.encode()) - framing  # What the two streams take, escaped.
        if text <= max_payload - framing:
            return fitted
        ratio = (max_payload - framing) / text * 0.95
        stdout, stderr = stdout[: int(len(stdout) * ratio)], stderr[: int(len(stderr) * ratio)]
    return bare


class Agent:
    """One agent per hypervisor host; talks to the management servers only over NATS."""

    def __init__(
        self,
        nats_url: str,
        host_id: str,
        zone: Zone,
        inventory: Inventory,
        *,
        host_name: str | None = None,
        heartbeat_interval: float = 5.0,
    ) -> None:
        self.nats_url = nats_url
        self.host_id = host_id
        self.host_name = host_name or socket.gethostname()
        self.zone = zone
        self.inventory = inventory
        self.heartbeat_interval = heartbeat_interval
        self.session = secrets.token_hex(8)
        self._nc: Client | None = None
        self._vms: dict[str, VmReport] = {}
        self._addresses: list[str] = []
        self._jobs: dict[str, asyncio.Task[None]] = {}
        #: Set to stop a running job's tool and send its partial output; by job id.
        self._stops: dict[str, tuple[asyncio.Event, list[str]]] = {}
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Serve until stop() is called; then cancel running jobs and say goodbye."""
        self._addresses = await host_addresses()
        self._nc = await connect(self.nats_url, f"cloudiag-agent-{self.host_name}")
        await self._nc.subscribe(subjects.agent_run(self.host_id), cb=self._on_run)
        await self._nc.subscribe(subjects.agent_status(self.host_id), cb=self._on_status)
        await self._nc.subscribe(subjects.agent_cancel(self.host_id), cb=self._on_cancel)
        log.info(
            "agent started host=%s id=%s nats=%s",
            self.host_name,
            self.host_id,
            redact(self.nats_url),
        )
        try:
            await self._report()
            self.ready.set()
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.heartbeat_interval)
                if not self._stopping.is_set():
                    await self._report()
        finally:
            await self._shutdown()

    def stop(self) -> None:
        """Ask run() to finish."""
        self._stopping.set()

    async def _shutdown(self) -> None:
        for task in list(self._jobs.values()):
            task.cancel()
        if self._jobs:
            await asyncio.gather(*self._jobs.values(), return_exceptions=True)
        nc, self._nc = self._nc, None
        if nc is None:
            return
        with contextlib.suppress(Exception):
            await self._publish_report(nc, connected=False)
            await nc.flush(timeout=2)
        with contextlib.suppress(Exception):
            await nc.close()
        log.info("agent stopped host=%s", self.host_name)

    async def _report(self) -> None:
        try:
            vms = await self.inventory()
        except Exception:
            log.exception("inventory failed; reporting no VMs")
            vms = []
        self._vms = {vm.id: vm for vm in vms}
        if self._nc is None:
            return
        try:
            await self._publish_report(self._nc, connected=True)
        except NatsError as exc:
            # The bus may be reconnecting (its buffer full) or gone for now: the agent must
            # outlive that and beat again next time, not stop serving its host.
            log.warning("heartbeat not sent: %s", exc)

    async def _publish_report(self, nc: Client, *, connected: bool) -> None:
        report = AgentReport(
            host_id=self.host_id,
            host_name=self.host_name,
            zone_id=self.zone.id,
            zone_name=self.zone.name,
            addresses=self._addresses,
            agent_version=__version__,
            session=self.session,
            connected=connected,
            vms=list(self._vms.values()),
        )
        await nc.publish(subjects.AGENT_REPORTS, report.encode())

    async def _on_status(self, msg: Msg) -> None:
        reply = StatusReply(
            session=self.session, running=list(self._jobs), spawned=netns.spawn_count()
        )
        await msg.respond(reply.encode())

    async def _on_cancel(self, msg: Msg) -> None:
        try:
            req = CancelRequest.model_validate_json(msg.data)
        except ValidationError:
            await msg.respond(CancelReply(cancelled=False, error="malformed request").encode())
            return
        entry = self._stops.get(req.job_id)
        if entry is None:
            await msg.respond(CancelReply(cancelled=False, error="not running").encode())
            return
        token = job_id_var.set(req.job_id)
        log.info("cancel requested by %s", req.by)
        job_id_var.reset(token)
        event, by = entry
        by.append(req.by)
        event.set()
        await msg.respond(CancelReply(cancelled=True).encode())

    async def _on_run(self, msg: Msg) -> None:
        try:
            req = RunRequest.model_validate_json(msg.data)
        except ValidationError as exc:
            await msg.respond(
                RunAccepted(accepted=False, error=f"malformed request: {exc}").encode()
            )
            return
        token = job_id_var.set(req.job_id)
        try:
            error = self._refusal(req)
            if error:
                log.warning("refused diagnostic: %s", error)
                await msg.respond(RunAccepted(accepted=False, error=error).encode())
                return
            await msg.respond(RunAccepted(accepted=True).encode())
            stop: tuple[asyncio.Event, list[str]] = (asyncio.Event(), [])
            task = asyncio.create_task(self._execute(req, self._vms[req.vm_id], stop))
            self._jobs[req.job_id] = task
            self._stops[req.job_id] = stop
            task.add_done_callback(lambda _t: self._forget(req.job_id))
        finally:
            job_id_var.reset(token)

    @staticmethod
    async def _vm_gone(vm: VmReport, res: netns.ExecResult) -> str:
        """Why the run could not complete if the VM stopped under it, else ''."""
        path = os.path.join(netns.NETNS_DIR, vm.access["namespace"])
        # Killed by a signal we did not send: a VM going down kills its processes first
        # and removes its NICs a moment later, so look again for a little while.
        killed = res.exitcode.startswith("-") and not (res.timed_out or res.cancelled)
        for _ in range(10 if killed else 1):
            if not os.path.exists(path):  # noqa: ASYNC240 (one stat on tmpfs)
                return f"The VM {vm.name} stopped during the diagnostic; its output is partial"
            if killed:
                await asyncio.sleep(0.1)
        return ""

    def _forget(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
        self._stops.pop(job_id, None)

    def _refusal(self, req: RunRequest) -> str:
        """Why this agent will not run the request, or '' (the second wall of validation)."""
        if req.job_id in self._jobs:
            return f"job {req.job_id} is already running"
        vm = self._vms.get(req.vm_id)
        if vm is None:
            return f"VM {req.vm_id} is not on host {self.host_name}"
        if vm.state != "Running":
            return f"VM {vm.name} is {vm.state}"
        if vm.access.get("executor") != "netns":
            return f"VM {vm.name} has no executor this agent supports"
        try:
            dtype = registry.get_type(req.type)
            if vm.vm_type not in dtype.vm_types:
                return f"{req.type} is not available on a {vm.vm_type}"
            checked = validate.validate(
                req.type, req.address, req.params, time_limit=req.time_limit
            )
            denied = policy.denied_destination(
                checked.address, policy.parse_networks(req.denied_networks)
            )
        except errors.DiagnosticsInputError as exc:
            return exc.message
        except ValueError as exc:  # A malformed denied network.
            return str(exc)
        if denied:
            return denied
        return ""

    async def _execute(
        self, req: RunRequest, vm: VmReport, stop: tuple[asyncio.Event, list[str]]
    ) -> None:
        job_id_var.set(req.job_id)
        nc = self._nc
        assert nc is not None
        seq = 0

        async def on_line(stream: str, text: str) -> None:
            nonlocal seq
            seq += 1
            line = OutputLine(job_id=req.job_id, seq=seq, stream=stream, text=text)  # type: ignore[arg-type]
            await nc.publish(subjects.job_output(req.job_id), line.encode())

        log.info("running %s %s on %s", req.type, req.address, vm.name)
        try:
            res = await netns.run_in_netns(
                vm.access["namespace"],
                req.type,
                req.address,
                req.params,
                time_limit=req.time_limit,
                max_output=req.max_output,
                on_line=on_line,
                stop=stop[0],
                denied_networks=req.denied_networks,
            )
            result = RunResult(
                job_id=req.job_id,
                stdout=res.stdout,
                stderr=res.stderr,
                exitcode=res.exitcode,
                timed_out=res.timed_out,
                truncated=res.truncated,
                duration=res.duration,
                cancelled_by=(stop[1][0] if stop[1] else "someone") if res.cancelled else "",
                error=res.refused or await self._vm_gone(vm, res),
            )
        except asyncio.CancelledError:
            # The agent is stopping: tell the server now rather than let it wait for a timeout.
            stopped = RunResult(
                job_id=req.job_id,
                stdout="",
                stderr="the agent stopped during the run",
                exitcode="-1",
            )
            with contextlib.suppress(Exception):
                await nc.publish(subjects.job_result(req.job_id), stopped.encode())
            raise
        except errors.DiagnosticsInputError as exc:
            result = RunResult(job_id=req.job_id, stdout="", stderr=exc.message, exitcode="-1")
        except Exception as exc:
            log.exception("executor failed")
            result = RunResult(
                job_id=req.job_id, stdout="", stderr=f"agent error: {exc}", exitcode="-1"
            )
        log.info("finished exitcode=%s timed_out=%s", result.exitcode, result.timed_out)
        await self._send_result(nc, result)

    @staticmethod
    async def _send_result(nc: Client, result: RunResult) -> None:
        """Publish a job's result, cut to fit the bus; if it still fails, say so instead.

        A result that never arrives leaves the job pending until the server gives up on it.
        """
        fitted = fit_result(result, nc.max_payload)
        if fitted is not result:
            log.warning("output cut to fit the bus's max_payload of %d bytes", nc.max_payload)
        try:
            await nc.publish(subjects.job_result(result.job_id), fitted.encode())
            return
        except NatsError as exc:
            log.error("could not send the result: %s", exc)
            reason = f"The agent could not send the result over the message bus ({exc})"
        failed = RunResult(
            job_id=result.job_id,
            stdout="",
            stderr="",
            exitcode=result.exitcode,
            duration=result.duration,
            error=reason,
        )
        try:
            await nc.publish(subjects.job_result(result.job_id), failed.encode())
        except NatsError as exc:
            log.error("could not send the failure either: %s", exc)
