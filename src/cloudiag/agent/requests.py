"""Taking one job request from the host's request stream: discard, refuse, or start it.

The order is what makes a request run at most once: the job's record is created in the
job table (atomically) before the request is acknowledged. A request delivered again —
the stream redelivers an unacknowledged one, or someone replays it — finds the record and
is only acknowledged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from pydantic import ValidationError

from cloudiag.agent.dispatch import Dispatcher, JobBus
from cloudiag.agent.job_table import JobTable
from cloudiag.bus.messages import JobRecord, RunRequest, RunResult
from cloudiag.logs import job_id_var

log = logging.getLogger(__name__)


def stale(req: RunRequest, now: float) -> str:
    """Why the request is too late to start, or ''."""
    late = now - req.start_by
    if late <= 0:
        return ""
    return (
        f"the request reached the agent {late:.1f} s after its deadline to start "
        "(the agent was paused or unreachable); it was not run"
    )


class RequestTaker:
    """Handles the messages of the host's request consumer."""

    def __init__(
        self,
        jobs: Dispatcher,
        table: JobTable,
        bus: JobBus,
        send: Callable[[RunResult], Awaitable[None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.table = table
        self.bus = bus
        self._send = send
        self._clock = clock

    async def handle(self, msg: Msg) -> None:
        """Take one request; acknowledge it once its fate is recorded."""
        received = time.perf_counter()
        job_id = msg.subject.rsplit(".", 1)[-1]
        token = job_id_var.set(job_id)
        try:
            await self._take(msg, job_id, received)
        finally:
            job_id_var.reset(token)

    async def _take(self, msg: Msg, job_id: str, received: float) -> None:
        try:
            req = RunRequest.model_validate_json(msg.data)
        except ValidationError as exc:
            log.warning("malformed request: %s", exc.errors()[:1])
            await self._refuse(msg, job_id, "malformed request")
            return
        if req.job_id != job_id:
            log.warning("request names job %s on the subject of job %s", req.job_id, job_id)
            await msg.term()
            return
        why = stale(req, self._clock()) or self.jobs.refusal(req)
        if why:
            log.warning("not run: %s", why)
            await self._refuse(msg, job_id, why)
            return
        running = JobRecord(state="running", session=self.table.session, started=self._clock())
        existing = await self.table.claim(job_id, running)
        if existing is not None:
            await self._known(msg, job_id, existing)
            return
        error = self.jobs.start(req, self.bus, received=received)
        await msg.ack()
        if error:  # Only a race with the VM's state could get here after refusal() passed.
            log.warning("refused diagnostic: %s", error)
            await self._send(RunResult.refusal(job_id, error))

    async def _refuse(self, msg: Msg, job_id: str, why: str) -> None:
        result = RunResult.refusal(job_id, why)
        existing = await self.table.claim(
            job_id, JobRecord(state="finished", session=self.table.session, result=result)
        )
        if existing is not None:
            await self._known(msg, job_id, existing)
            return
        await msg.ack()
        await self._send(result)

    async def _known(self, msg: Msg, job_id: str, record: JobRecord) -> None:
        """A request for a job the table already has: never run it again."""
        await msg.ack()
        if record.session == "":
            log.info("request withdrawn by the management server; not run")
        elif record.state == "running" and record.session != self.table.session:
            log.warning("the job was taken by an earlier agent process that stopped")
            await self._send(restarted(job_id))
        else:
            log.warning("request delivered again (duplicate or replay); not run again")


def restarted(job_id: str) -> RunResult:
    """The result of a job an earlier process of this agent was running when it stopped."""
    return RunResult(
        job_id=job_id,
        stdout="",
        stderr="",
        exitcode="-1",
        error="The agent restarted during the job; its output is lost; run the diagnostic again",
    )
