"""The agent: registers its host and VMs over NATS, sends heartbeats, runs diagnostics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from pydantic import ValidationError

from cloudiag import __version__
from cloudiag.agent.dispatch import Dispatcher
from cloudiag.agent.executors.registry import Executors
from cloudiag.agent.host_addresses import host_addresses
from cloudiag.agent.sources.base import Source
from cloudiag.bus import subjects
from cloudiag.bus.connect import connect
from cloudiag.bus.embedded import redact
from cloudiag.bus.messages import (
    AgentReport,
    CancelReply,
    CancelRequest,
    RunAccepted,
    RunRequest,
    StatusReply,
)
from cloudiag.logs import job_id_var

log = logging.getLogger(__name__)


class Agent:
    """One agent per hypervisor host; talks to the management servers only over NATS."""

    def __init__(
        self,
        nats_url: str,
        source: Source,
        executors: Executors,
        *,
        host_id: str | None = None,
        host_name: str | None = None,
        heartbeat_interval: float = 5.0,
    ) -> None:
        self.nats_url = nats_url
        self.source = source
        self.host_id = host_id or source.host.id
        self.host_name = host_name or source.host.name or socket.gethostname()
        self.zone = source.zone
        self.heartbeat_interval = heartbeat_interval
        self.session = secrets.token_hex(8)
        self.jobs = Dispatcher(executors, self.host_name)
        self._nc: Client | None = None
        self._addresses: list[str] = []
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
        await self.jobs.stop_all()
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
            self.jobs.set_vms(await self.source.vms())
        except Exception:
            log.exception("inventory failed; reporting no VMs")
            self.jobs.set_vms([])
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
            vms=self.jobs.vms,
        )
        await nc.publish(subjects.AGENT_REPORTS, report.encode())

    async def _on_status(self, msg: Msg) -> None:
        reply = StatusReply(
            session=self.session,
            running=self.jobs.running(),
            spawned=self.jobs.executors.spawned(),
        )
        await msg.respond(reply.encode())

    async def _on_cancel(self, msg: Msg) -> None:
        try:
            req = CancelRequest.model_validate_json(msg.data)
        except ValidationError:
            await msg.respond(CancelReply(cancelled=False, error="malformed request").encode())
            return
        token = job_id_var.set(req.job_id)
        try:
            if not self.jobs.cancel(req.job_id, req.by):
                await msg.respond(CancelReply(cancelled=False, error="not running").encode())
                return
            log.info("cancel requested by %s", req.by)
        finally:
            job_id_var.reset(token)
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
            assert self._nc is not None
            # The job's task first runs at the next await, after the answer is queued: the
            # acceptance still goes out before its first output line.
            error = self.jobs.start(req, self._nc)
            if error:
                log.warning("refused diagnostic: %s", error)
            await msg.respond(RunAccepted(accepted=not error, error=error).encode())
        finally:
            job_id_var.reset(token)
