"""The job engine's orchestration: runs jobs as tasks on their agents, ends every one.

The parts each have their module: ownership.py (heartbeat, recovery, sweeps), agent_protocol.py
(the NATS exchange with a host's agent), final_state.py and outcomes.py (how a job ended, and
storing it once); this module ties them together and holds the jobs of this server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from nats.aio.client import Client
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.models import AsyncJob
from cloudiag.domain import JobStatus
from cloudiag.jobs import final_state, outcomes
from cloudiag.jobs.agent_protocol import ACCEPT_TIMEOUT, AgentClient
from cloudiag.jobs.diagnostics_job import DiagnosticsJob, JobFailed
from cloudiag.jobs.final_state import SHUTDOWN_BY, SHUTDOWN_TEXT, FinalState
from cloudiag.jobs.ownership import Ownership
from cloudiag.logs import job_id_var

log = logging.getLogger(__name__)

#: At shutdown, how long agents get to answer a cancel, then to send the output so far.
SHUTDOWN_GRACE = 3.0


class JobRunner:
    """Runs jobs as tasks, at most `concurrency` at once, and records how each ends."""

    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        nc: Client,
        *,
        server_id: str,
        server_label: str = "",
        concurrency: int = 200,
    ) -> None:
        self.db = db
        self.agents = AgentClient(nc)
        #: This server's persistent id (jobs/server_identity.py): the owner of its jobs.
        self.server_id = server_id
        self.ownership = Ownership(
            db, server_id=server_id, server_label=server_label, holds=self._tasks_hold
        )
        self._slots = asyncio.Semaphore(concurrency)
        #: Every job this runner holds, queued or running, by id: the jobs it will end.
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: The jobs sent to an agent and not yet ended: a shutdown asks it to stop them.
        self._on_agent: dict[str, DiagnosticsJob] = {}
        #: The jobs storing their outcome: a shutdown lets them, rather than cancel the write.
        self._finishing: set[str] = set()
        self._closing = False

    def _tasks_hold(self, job_id: str) -> bool:
        return job_id in self._tasks

    async def recover(self) -> int:
        """Fail the jobs an earlier run of this server left pending (see Ownership)."""
        return await self.ownership.recover()

    async def heartbeat(self, now: datetime | None = None) -> None:
        """Stamp this server's heartbeat (see Ownership)."""
        await self.ownership.heartbeat(now)

    async def sweep(self, now: datetime | None = None) -> int:
        """Fail the pending jobs no server will finish; how many (see Ownership)."""
        return await self.ownership.sweep(now)

    async def cancel(
        self, job_id: str, host_id: str, by: str, timeout: float = ACCEPT_TIMEOUT
    ) -> str:
        """Ask the agent running the job to stop it; '' when it will, else why not."""
        return await self.agents.cancel(job_id, host_id, by, timeout)

    def submit(self, job: DiagnosticsJob) -> None:
        """Start the job in the background (the caller has committed its row)."""
        task = asyncio.create_task(self._guarded(job), name=f"job-{job.job_id}")
        self._tasks[job.job_id] = task
        task.add_done_callback(lambda _: self._forget(job.job_id))

    def _forget(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        self._finishing.discard(job_id)

    async def close(self) -> None:
        """Shut down: agents stop this server's jobs, and every job it holds ends as shut down.

        Left to the agents, the tools would run on with nobody to take their result, and
        the jobs would wait for the restart's recovery.
        """
        self._closing = True
        on_agents = list(self._on_agent.values())
        if on_agents:
            await asyncio.gather(*(self._cancel_for_shutdown(job) for job in on_agents))
            # The agent answers a cancel with the output so far: the job keeps it.
            held = [self._tasks[j.job_id] for j in on_agents if j.job_id in self._tasks]
            if held:
                await asyncio.wait(held, timeout=SHUTDOWN_GRACE)
        tasks = list(self._tasks.items())
        for job_id, task in tasks:
            if job_id not in self._finishing:
                task.cancel()
        if tasks:
            await asyncio.gather(*(task for _, task in tasks), return_exceptions=True)

    async def _cancel_for_shutdown(self, job: DiagnosticsJob) -> None:
        job_id_var.set(job.job_id)
        why_not = await self.cancel(job.job_id, job.host_id, SHUTDOWN_BY, SHUTDOWN_GRACE)
        if why_not:
            log.warning("could not stop the job on its agent at shutdown: %s", why_not)
        else:
            log.info("asked the agent to stop the job: the server shuts down")

    async def _guarded(self, job: DiagnosticsJob) -> None:
        job_id_var.set(job.job_id)
        # The wait for a slot is inside the try: a job cancelled (or failing) while still
        # queued ends like any other instead of staying pending.
        try:
            # Only a job that waited for its slot can have been swept meanwhile: the others
            # skip the extra read.
            waited = self._slots.locked()
            async with self._slots:
                if self._closing:  # A slot freed during shutdown: start nothing new.
                    raise JobFailed(SHUTDOWN_TEXT)
                if waited and not await self._still_pending(job):
                    # Failed while it waited (another server took this one for gone).
                    log.warning("job already final before it ran; not running it")
                    return
                self._on_agent[job.job_id] = job
                try:
                    result = await self.agents.run(job)
                finally:
                    self._on_agent.pop(job.job_id, None)
        except JobFailed as exc:
            log.warning("job failed: %s", exc)
            await self._finish(job, final_state.failed(str(exc)))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._finish(job, final_state.failed(SHUTDOWN_TEXT)))
            raise
        except Exception as exc:
            log.exception("job crashed")
            await self._finish(
                job, final_state.failed(f"Internal error while running the job: {exc}")
            )
        else:
            await self._finish(job, final_state.of_result(job.request.type, result))

    async def _still_pending(self, job: DiagnosticsJob) -> bool:
        async with self.db() as db:
            status = await db.scalar(select(AsyncJob.status).where(AsyncJob.id == job.job_id))
        return status == JobStatus.PENDING

    async def _finish(self, job: DiagnosticsJob, final: FinalState) -> None:
        self._finishing.add(job.job_id)
        await outcomes.store(self.db, job, final)
