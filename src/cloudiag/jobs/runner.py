"""The job engine's orchestration: hands jobs to their agents and ends every one.

The parts each have their module: agent_protocol.py (the request stream, withdraw, cancel),
whereabouts.py (what became of a job), result_intake.py (the results stream: outcomes
stored once), ownership.py (heartbeat, sweeps), final_state.py and outcomes.py. This module
ties them together and follows the jobs of this server until they end: a job is failed as
lost only when the bus says nobody knows it, or when its deadline has passed with no
agent answering; a bus or database outage meanwhile only delays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus.streams import ensure_jetstream
from cloudiag.jobs import data_archive, final_state, outcomes
from cloudiag.jobs.agent_protocol import ANSWER_TIMEOUT, RESULT_GRACE, WITHDRAWN, AgentClient
from cloudiag.jobs.data_archive import DataArchives
from cloudiag.jobs.diagnostics_job import DiagnosticsJob, JobFailed
from cloudiag.jobs.final_state import RESTART_BY, RESTARTED, SHUTDOWN_BY, SHUTDOWN_TEXT, FinalState
from cloudiag.jobs.final_waiters import FinalWaiters, Stored
from cloudiag.jobs.job_rows import load_jobs
from cloudiag.jobs.ownership import SWEEP_INTERVAL, Ownership
from cloudiag.jobs.result_intake import ResultIntake
from cloudiag.jobs.whereabouts import Whereabouts
from cloudiag.logs import job_id_var

log = logging.getLogger(__name__)

#: At shutdown, how long agents get to answer a cancel, then to send the output so far.
SHUTDOWN_GRACE = 3.0
#: While a job runs, ask the bus this often what became of it (its result may have been
#: stored by another server, or be held in the agent's table).
CHECK_INTERVAL = 5.0
#: A request found waiting this long past its deadline to start is withdrawn.
START_GRACE = 1.0
#: After asking an agent to cancel a job its server's previous run left, how long its
#: result (the output so far) may take to come.
RESTART_GRACE = 4.0
#: How often, and how far apart, a job with no agent answering its subject is looked at
#: before it fails "not connected" (an agent reconnects within a second or two after a
#: bus restart: it is not absent).
ABSENT_CHECKS = 3
ABSENT_SPACING = 1.0
#: The agent's presence is asked only about a job not ended this long after it was sent:
#: most jobs end sooner, and asking costs the agent and the bus a round trip per job.
PRESENCE_DELAY = 0.5
#: How long the agent of a host whose heartbeats stopped has to answer before its job
#: fails: a paused or cut-off agent keeps its bus connection for a while, so the bus alone
#: would not tell it is gone until the request's start deadline.
SILENT_HOST_ANSWER = 1.0


class JobRunner:
    """Hands jobs to agents as tasks and records how each ends."""

    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        nc: Client,
        *,
        server_id: str,
        server_label: str = "",
        start_timeout: float = 60.0,
        sweep_interval: float = SWEEP_INTERVAL,
        archives: DataArchives | None = None,
    ) -> None:
        self.db = db
        self.nc = nc
        self.agents = AgentClient(nc, self._bus)
        #: This server's persistent id (jobs/server_identity.py): the owner of its jobs.
        self.server_id = server_id
        #: How long a request may wait for its agent to take it.
        self.start_timeout = start_timeout
        self.ownership = Ownership(
            db,
            server_id=server_id,
            server_label=server_label,
            holds=self._tasks_hold,
            sweep_interval=sweep_interval,
        )
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        #: Every job this runner holds, by id: the jobs it will end.
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: Set once a job's outcome is stored (by this server's intake or its own task).
        self._ended: dict[str, asyncio.Event] = {}
        #: The jobs this runner holds: a shutdown asks their agents to stop them, and the
        #: intake stores their results without reading their rows back.
        self._held: dict[str, DiagnosticsJob] = {}
        #: The jobs storing their outcome: a shutdown lets them, rather than cancel the write.
        self._finishing: set[str] = set()
        self._closing = False
        #: Readers waiting for a job to be final (queryAsyncJobResult with wait, the
        #: stream), woken as this server stores an outcome.
        self.finals = FinalWaiters()
        self.intake = ResultIntake(
            db,
            self._jetstream,
            start_timeout=start_timeout,
            held=self._held.get,
            on_stored=self._stored,
            archives=archives,
        )

    def _tasks_hold(self, job_id: str) -> bool:
        return job_id in self._tasks

    def _bus(self) -> tuple[JetStreamContext, KeyValue]:
        if self._js is None or self._kv is None:
            raise RuntimeError("the streams are not ready")
        return self._js, self._kv

    def _jetstream(self) -> JetStreamContext:
        return self._bus()[0]

    async def start(self) -> None:
        """Make the streams, start storing results, and take over the jobs this server's
        previous run left pending."""
        await self.ensure_streams()
        self.intake.start()
        await self.recover()

    async def ensure_streams(self) -> None:
        """Make (or find) the streams and the job table; at start and after a reconnect."""
        self._js, self._kv = await ensure_jetstream(self.nc)

    async def recover(self) -> int:
        """Take over the jobs an earlier run of this server left pending; how many.

        Each is asked after on the bus: a finished one gets its result stored, a running
        one is cancelled on its agent (nobody was following it; its output so far is kept),
        a queued one runs as usual.
        """
        jobs = await self._hold_rows(await self.ownership.left_pending(), self._take_over)
        if jobs:
            log.warning(
                "taking over %d jobs left pending by a previous run of this server", len(jobs)
            )
        return len(jobs)

    async def _hold_rows(
        self,
        ids: list[str],
        work: Callable[[DiagnosticsJob], Coroutine[Any, Any, FinalState | None]],
    ) -> list[DiagnosticsJob]:
        """Hold these jobs, rebuilt from their rows, each doing `work` to its end."""
        async with self.db() as db:
            jobs = await load_jobs(db, ids, start_timeout=self.start_timeout)
        for job in jobs:
            self._hold(job, work(job))
        return jobs

    async def heartbeat(self, now: datetime | None = None) -> None:
        """Stamp this server's heartbeat (see Ownership)."""
        await self.ownership.heartbeat(now)

    async def sweep(self, now: datetime | None = None) -> int:
        """Take over the jobs of servers that stopped, then fail the pending jobs no server
        will finish; how many failed (see Ownership)."""
        # A dead server's job is followed to its end as if this server had sent it.
        await self._hold_rows(await self.ownership.adopt_orphans(now), self._follow)
        return await self.ownership.sweep(now)

    async def cancel(
        self, job_id: str, host_id: str, by: str, timeout: float = ANSWER_TIMEOUT
    ) -> str:
        """Ask the agent running the job to stop it; '' when it will, else why not."""
        return await self.agents.cancel(job_id, host_id, by, timeout)

    def submit(self, job: DiagnosticsJob) -> None:
        """Start the job in the background (the caller has committed its row)."""
        self._hold(job, self._run(job))

    def _hold(self, job: DiagnosticsJob, work: Coroutine[Any, Any, FinalState | None]) -> None:
        self._ended[job.job_id] = asyncio.Event()
        self._held[job.job_id] = job
        task = asyncio.create_task(self._guarded(job, work), name=f"job-{job.job_id}")
        self._tasks[job.job_id] = task
        task.add_done_callback(lambda _: self._forget(job.job_id))

    def _forget(self, job_id: str) -> None:
        self._tasks.pop(job_id, None)
        self._ended.pop(job_id, None)
        self._held.pop(job_id, None)
        self._finishing.discard(job_id)

    def _stored(self, job_id: str, stored: Stored | None) -> None:
        """The intake stored the job's outcome (`stored`), or found it final (None)."""
        ended = self._ended.get(job_id)
        if ended is not None:
            ended.set()
        held = self._held.get(job_id)
        self._final(job_id, held.parent_id if held is not None else None, stored)

    def _final(self, job_id: str, parent_id: str | None, stored: Stored | None = None) -> None:
        """Wake the readers of a job whose outcome was stored, and of its parent (which its
        last child settles in the same transaction: its readers read its row)."""
        self.finals.notify(job_id, stored)
        if parent_id is not None:
            self.finals.notify(parent_id)

    async def close(self) -> None:
        """Shut down: agents stop this server's jobs, and every job it holds ends as shut down.

        Left to the agents, the tools would run on with nobody following them, and the
        jobs would wait for the restart's recovery.
        """
        self._closing = True
        on_agents = list(self._held.values())
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
        await self.intake.close()

    async def _cancel_for_shutdown(self, job: DiagnosticsJob) -> None:
        job_id_var.set(job.job_id)
        why_not = await self.cancel(job.job_id, job.host_id, SHUTDOWN_BY, SHUTDOWN_GRACE)
        if why_not:
            log.warning("could not stop the job on its agent at shutdown: %s", why_not)
        else:
            log.info("asked the agent to stop the job: the server shuts down")

    async def _guarded(
        self, job: DiagnosticsJob, work: Coroutine[Any, Any, FinalState | None]
    ) -> None:
        job_id_var.set(job.job_id)
        try:
            if self._closing:
                work.close()
                raise JobFailed(SHUTDOWN_TEXT)
            final = await work
        except JobFailed as exc:
            log.warning("job failed: %s", exc)
            final = final_state.failed(str(exc))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._finish(job, final_state.failed(SHUTDOWN_TEXT)))
            raise
        except Exception as exc:
            log.exception("job crashed")
            final = final_state.failed(f"Internal error while running the job: {exc}")
        if final is not None:
            await self._finish(job, final)

    async def _run(self, job: DiagnosticsJob) -> FinalState | None:
        """Send the job and follow it to its end; its final state when this task decides it,
        None when its result was stored."""
        if not job.host_up and not await self.agents.agent_present(job.host_id, SILENT_HOST_ANSWER):
            raise JobFailed(
                f"The agent for host {job.host_name} ({job.host_id}) is not connected: its "
                "heartbeats stopped and it does not answer"
            )
        await self.agents.send(job)
        ended = self._ended[job.job_id]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), PRESENCE_DELAY)
        if ended.is_set():
            return None
        await self._absent_agent(job)
        return await self._follow(job)

    async def _absent_agent(self, job: DiagnosticsJob) -> None:
        """Fail the job at once when no agent serves its host, rather than at its deadline.

        Asked a few times over a second or two: an agent reconnecting after a bus restart
        is not absent. Only a request withdrawn before any agent took it fails this way.
        """
        for attempt in range(ABSENT_CHECKS):
            if await self.agents.agent_present(job.host_id) is not False:
                return
            if attempt < ABSENT_CHECKS - 1:
                await asyncio.sleep(ABSENT_SPACING)
        if await self.agents.withdraw(job, WITHDRAWN):
            raise JobFailed(f"The agent for host {job.host_name} ({job.host_id}) is not connected")

    async def _follow(self, job: DiagnosticsJob) -> FinalState | None:
        """Wait for the job's result, asking the bus now and then what became of it."""
        ended = self._ended[job.job_id]
        limit = job.request.time_limit + RESULT_GRACE
        deadline = job.request.start_by + limit
        while True:
            remaining = deadline - time.time()
            if remaining <= 0:
                return await self._past_deadline(job)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), min(CHECK_INTERVAL, remaining))
            if ended.is_set():
                return None
            seen = await self.agents.whereabouts(job)
            final = await self._judge(job, seen)
            if final is not None:
                return final
            if seen.started:  # Its time limit runs from when its agent took it.
                deadline = min(deadline, seen.started + limit)

    async def _judge(self, job: DiagnosticsJob, seen: Whereabouts) -> FinalState | None:
        """The job's end when the bus's answer decides it (or JobFailed), else None."""
        if seen.state in ("finished", "withdrawn") and seen.result is not None:
            # Its result waits in the stream (maybe for a database to come back) or was
            # stored elsewhere: store it from the agent's table, once.
            return await data_archive.final_of(
                job, seen.result, self._jetstream(), self.intake.archives
            )
        if seen.state == "queued" and time.time() > job.request.start_by + START_GRACE:
            if await self.agents.withdraw(job, WITHDRAWN):
                raise JobFailed(
                    f"The agent for host {job.host_name} did not take the job within "
                    f"{self.start_timeout:g} s (it is paused, overloaded or unreachable)"
                )
        if seen.state == "unknown":
            raise JobFailed(
                f"The agent for host {job.host_name} does not know the job (the bus lost "
                "its request); run the diagnostic again"
            )
        return None

    async def _past_deadline(self, job: DiagnosticsJob) -> FinalState:
        final = await self._judge(job, await self.agents.whereabouts(job))
        if final is not None:
            return final
        if not await self.agents.withdraw(job, WITHDRAWN):
            # The agent has it: stop its tool, which nobody will wait for any more.
            await self.agents.cancel(job.job_id, job.host_id, "the job's deadline")
        raise JobFailed(
            f"No answer from the agent of host {job.host_name} within the time limit of "
            f"{job.request.time_limit:g} s; run the diagnostic again"
        )

    async def _take_over(self, job: DiagnosticsJob) -> FinalState | None:
        """End a job this server's previous run left: store its result, or stop its tool."""
        seen = await self.agents.whereabouts(job)
        give_up = job.request.start_by + job.request.time_limit
        while seen.state == "unreachable" and time.time() < give_up:
            await asyncio.sleep(1.0)
            seen = await self.agents.whereabouts(job)
        if seen.state == "queued":
            return await self._follow(job)
        if seen.state == "running":
            return await self._stop_left_running(job, seen)
        if seen.state == "unknown":
            # Never handed to the bus: the previous run died between committing the job
            # and sending it.
            return final_state.failed(RESTARTED)
        return await self._judge(job, seen) or final_state.failed(RESTARTED)

    async def _stop_left_running(self, job: DiagnosticsJob, seen: Whereabouts) -> FinalState | None:
        """Cancel a job the previous run left running, and end it with what comes back.

        Its agent may not answer yet (it reconnects after the same outage, or is paused):
        the job is then followed as any other, asking again, until its own deadline; a
        result it delivers meanwhile is stored, not thrown away.
        """
        ended = self._ended[job.job_id]
        deadline = (seen.started or job.request.start_by) + job.request.time_limit + RESULT_GRACE
        while time.time() < deadline:
            why_not = await self.agents.cancel(job.job_id, job.host_id, RESTART_BY)
            if not why_not:
                log.info("asked the agent to stop the job: its server restarted")
            wait = RESTART_GRACE if not why_not else CHECK_INTERVAL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), min(wait, max(0.0, deadline - time.time())))
            if ended.is_set():
                return None
            seen = await self.agents.whereabouts(job)
            if seen.state != "running":
                return await self._judge(job, seen) or final_state.failed(RESTARTED)
        return final_state.failed(RESTARTED)

    async def _finish(self, job: DiagnosticsJob, final: FinalState) -> None:
        self._finishing.add(job.job_id)
        await outcomes.store(self.db, job, final)
        self._final(job.job_id, job.parent_id)
