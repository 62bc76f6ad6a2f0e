"""The agent: registers its host and VMs over NATS, sends heartbeats, runs diagnostics.

Requests come from the host's durable consumer of the request stream and results go to
the results stream (JetStream, acknowledged); the job table in a key-value bucket records
each job's fate. Cancel and status are live request/reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from pathlib import Path

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import ValidationError

from cloudiag import __version__
from cloudiag.agent.dispatch import Dispatcher
from cloudiag.agent.executors.registry import Executors
from cloudiag.agent.host_addresses import host_addresses
from cloudiag.agent.job_table import JobTable
from cloudiag.agent.requests import RequestTaker, restarted
from cloudiag.agent.result_spool import ResultSpool
from cloudiag.agent.results import ResultSender
from cloudiag.agent.sources.base import Source
from cloudiag.backoff import Backoff
from cloudiag.bus import archives, pull, streams, subjects
from cloudiag.bus.access import BusAccess
from cloudiag.bus.connect import connect
from cloudiag.bus.embedded import redact
from cloudiag.bus.messages import (
    AgentReport,
    CancelReply,
    CancelRequest,
    RunResult,
    StatusReply,
)
from cloudiag.logs import job_id_var

log = logging.getLogger(__name__)


#: Most jobs an agent runs at once; more requests wait in the stream, in order.
MAX_JOBS = streams.AGENT_MAX_JOBS
#: At a stop, how long the running jobs get to end and hand over their results.
STOP_JOBS_LIMIT = 5.0
#: Then how long the executors get to close their sessions and connections.
STOP_EXECUTORS_LIMIT = 3.0


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
        max_jobs: int = MAX_JOBS,
        state_dir: Path | None = None,
        access: BusAccess | None = None,
    ) -> None:
        self.nats_url = nats_url
        #: Its credentials and TLS on the bus (None: none, as in unit tests).
        self.access = access or BusAccess()
        self.source = source
        self.host_id = host_id or source.host.id
        self.host_name = host_name or source.host.name or socket.gethostname()
        self.zone = source.zone
        self.heartbeat_interval = heartbeat_interval
        self.max_jobs = max_jobs
        self.session = secrets.token_hex(8)
        self.jobs = Dispatcher(executors, self.host_name, self.host_id)
        self.jobs.on_end = self._job_ended
        self.table = JobTable(self._bucket, self.host_id, self.session)
        #: Results not yet delivered, on disk (None: memory only, as in unit tests).
        self.spool = (
            ResultSpool(state_dir / "agent" / self.host_id / "results") if state_dir else None
        )
        self.results = ResultSender(self._jetstream, self.table, self._max_payload, self.spool)
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._addresses: list[str] = []
        self._stopping = asyncio.Event()
        self._room = asyncio.Event()
        self.ready = asyncio.Event()
        #: Live output lines that could not be published (the results hold them all).
        self.lines_dropped = 0

    async def run(self) -> None:
        """Serve until stop() is called; then cancel running jobs and say goodbye."""
        self._addresses = await host_addresses()
        self._nc = await connect(
            self.nats_url,
            f"cloudiag-agent-{self.host_name}",
            on_reconnect=self._streams,
            access=self.access,
            inbox_prefix=subjects.agent_inbox_prefix(self.host_id),
        )
        await self._nc.subscribe(subjects.agent_status(self.host_id), cb=self._on_status)
        await self._nc.subscribe(subjects.agent_cancel(self.host_id), cb=self._on_cancel)
        log.info(
            "agent started host=%s id=%s nats=%s",
            self.host_name,
            self.host_id,
            redact(self.nats_url),
        )
        consumer: asyncio.Task[None] | None = None
        try:
            await self._report()
            await self._streams()
            await self._finish_leftovers()
            taker = RequestTaker(self.jobs, self.table, _Bus(self), self.results.send)
            consumer = asyncio.create_task(
                pull.consume(
                    self._jetstream,
                    subjects.REQUESTS_STREAM,
                    streams.agent_consumer_config(self.host_id),
                    taker.handle,
                    room=self._wait_for_room,
                    # The servers make it when they hear of the host (its report).
                    manage=False,
                )
            )
            self.ready.set()
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.heartbeat_interval)
                if not self._stopping.is_set():
                    await self._report()
        finally:
            if consumer is not None:
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
            await self._shutdown()

    def stop(self) -> None:
        """Ask run() to finish."""
        self._stopping.set()

    def _jetstream(self) -> JetStreamContext:
        assert self._js is not None, "the streams are made before anything uses them"
        return self._js

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            await self._streams()
        assert self._kv is not None
        return self._kv

    def _max_payload(self) -> int:
        return self._nc.max_payload if self._nc is not None else 1 << 20

    async def _streams(self) -> None:
        """Find the job table the servers made; at start and after each reconnect."""
        assert self._nc is not None
        backoff = Backoff(first=0.2, longest=5.0)
        while True:
            try:
                self._js, self._kv = await streams.jobs_bucket(self._nc, self.host_id)
                return
            except (NatsError, TimeoutError, OSError) as exc:  # Not JetStreamUnavailable.
                delay = backoff.delay()
                log.warning("JetStream not ready (%s); again in %g s", exc, delay)
            await asyncio.sleep(delay)

    async def _finish_leftovers(self) -> None:
        """End what an earlier process of this agent left: results it kept on disk are sent
        (the stream drops one it has), then the jobs its table says were running died with
        it, and results it recorded without sending are sent."""
        for kept in await self.spool.left() if self.spool is not None else []:
            token = job_id_var.set(kept.job_id)
            try:
                log.info("sending the result an earlier agent process kept on disk")
                await self.results.send(kept)
            finally:
                job_id_var.reset(token)
        assert self._nc is not None
        for left in await self.table.leftovers(self._nc):
            token = job_id_var.set(left.job_id)
            try:
                if left.record.state == "running" or left.record.result is None:
                    log.warning("job left running by an earlier agent process: it died with it")
                    await self.results.send(restarted(left.job_id))
                else:
                    log.info("sending the result an earlier agent process had not sent")
                    await self.results.send(left.record.result)
            finally:
                job_id_var.reset(token)

    async def _wait_for_room(self) -> None:
        """Wait until fewer than max_jobs run."""
        while True:
            if len(self.jobs.running()) < self.max_jobs:
                return
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), 1.0)

    def _job_ended(self) -> None:
        self._room.set()

    async def _shutdown(self) -> None:
        # A job whose result cannot go (the bus is gone) must not hold the stop: the job
        # table keeps what the next agent process needs.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.jobs.stop_all(), STOP_JOBS_LIMIT)
        # Sessions on the VMs get EOF (they stop their tools) and SSH connections close,
        # rather than being cut when the process exits.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.jobs.executors.close(), STOP_EXECUTORS_LIMIT)
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
        await nc.publish(subjects.agent_report(self.host_id), report.encode())

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


class _Bus:
    """The bus as the agent's jobs see it: output lines on core NATS, results durable."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    async def publish(self, subject: str, payload: bytes) -> None:
        nc = self._agent._nc
        if nc is None:
            return
        try:
            await nc.publish(subject, payload)
        except NatsError as exc:
            # Best effort: a line that cannot go (the reconnect buffer is full while the
            # bus is away) is dropped, never the job; the result carries every line.
            self._agent.lines_dropped += 1
            if self._agent.lines_dropped == 1 or self._agent.lines_dropped % 1000 == 0:
                log.warning(
                    "output lines dropped while the bus is away: %d (%s)",
                    self._agent.lines_dropped,
                    exc,
                )

    async def deliver(self, result: RunResult) -> None:
        await self._agent.results.send(result)

    async def store_archive(self, job_id: str, data: bytes) -> None:
        await archives.put(self._agent._jetstream(), self._agent.host_id, job_id, data)
