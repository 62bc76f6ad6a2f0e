"""A stand-in for a host's agent on a real bus, as the job engine sees it: it takes the
host's requests from the request stream (recording each in the job table first, as the
agent does), runs them until told, answers status and cancel, and sends results to the
results stream. What it runs is up to the test: nothing runs, ``finish`` ends a job."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from cloudiag.agent.job_table import JobTable
from cloudiag.agent.results import ResultSender
from cloudiag.bus import pull, subjects
from cloudiag.bus.messages import (
    CancelReply,
    CancelRequest,
    JobRecord,
    RunRequest,
    RunResult,
    StatusReply,
)

SESSION = "fake-agent"


class FakeAgents:
    """The agent of one host: takes requests (unless paused), cancels, finishes on demand.

    ``answers=False`` makes it an agent that took its jobs and then stopped answering cancel
    requests (its status still says it is there). ``silent=True``: an agent still
    subscribed that answers no status question (a paused process keeps its connection).
    """

    def __init__(
        self,
        nc: Client,
        host_id: str = "host-1",
        *,
        taking: bool = True,
        answers: bool = True,
        silent: bool = False,
    ) -> None:
        self.nc = nc
        self.host_id = host_id
        self.answers = answers
        self.silent = silent
        self.runs: list[RunRequest] = []
        self.cancels: list[CancelRequest] = []
        self.running: set[str] = set()
        self.table = JobTable(self._bucket, host_id, SESSION)
        self.results = ResultSender(nc.jetstream, self.table, lambda: nc.max_payload)
        self._consumer: asyncio.Task[None] | None = None
        self._subs: list[Any] = []
        self._taking = taking

    async def _bucket(self) -> Any:
        return await self.nc.jetstream().key_value(subjects.JOBS_BUCKET)

    async def start(self) -> FakeAgents:
        """Answer status and cancel; take requests unless made with ``taking=False``."""
        self._subs = [
            await self.nc.subscribe(subjects.agent_status(self.host_id), cb=self._on_status),
            await self.nc.subscribe(subjects.agent_cancel(self.host_id), cb=self._on_cancel),
        ]
        if self._taking:
            self.take()
        return self

    def take(self) -> None:
        """Start taking the host's requests (an agent that was paused comes back)."""
        config = pull.durable_config(
            subjects.agent_consumer(self.host_id),
            subjects.agent_requests(self.host_id),
            ack_wait=30,
            max_ack_pending=100,
        )
        self._consumer = asyncio.create_task(
            pull.consume(self.nc.jetstream, subjects.REQUESTS_STREAM, config, self._take)
        )

    async def close(self) -> None:
        """Stop taking requests and answering."""
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _take(self, msg: Msg) -> None:
        req = RunRequest.model_validate_json(msg.data)
        known = await self.table.claim(req.job_id, JobRecord(state="running", session=SESSION))
        await msg.ack()
        if known is None:
            self.runs.append(req)
            self.running.add(req.job_id)

    async def _on_status(self, msg: Msg) -> None:
        if self.silent:
            return
        await msg.respond(StatusReply(session=SESSION, running=sorted(self.running)).encode())

    async def _on_cancel(self, msg: Msg) -> None:
        cancel = CancelRequest.model_validate_json(msg.data)
        self.cancels.append(cancel)
        if not self.answers:
            return
        if cancel.job_id not in self.running:
            await msg.respond(CancelReply(cancelled=False, error="not running").encode())
            return
        await msg.respond(CancelReply(cancelled=True).encode())
        await self.finish(cancel.job_id, stdout="partial\n", exitcode="-9", cancelled_by=cancel.by)

    async def finish(self, job_id: str, **fields: Any) -> RunResult:
        """The job ends: its result is recorded and sent to the results stream."""
        self.running.discard(job_id)
        result = RunResult(
            job_id=job_id, **{"stdout": "done\n", "stderr": "", "exitcode": "0", **fields}
        )
        await self.results.send(result)
        return result
