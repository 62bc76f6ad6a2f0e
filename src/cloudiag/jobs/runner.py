"""Runs async jobs: asks the VM's agent over NATS, follows its output, stores the result."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag import parsers
from cloudiag.bus import subjects
from cloudiag.bus.messages import (
    CancelReply,
    CancelRequest,
    OutputLine,
    RunAccepted,
    RunRequest,
    RunResult,
    StatusReply,
)
from cloudiag.db.models import AsyncJob, ManagementServer, utcnow
from cloudiag.jobs import events
from cloudiag.logs import job_id_var

log = logging.getLogger(__name__)

#: How long a connected agent has to accept a request before the job fails. An agent that
#: is gone is known at once (no responders); this only bounds a busy one, whose event loop
#: can lag seconds behind when hundreds of tools start at once on a small host.
ACCEPT_TIMEOUT = 15.0
#: While waiting for a result, check this often that the agent still runs the job.
LIVENESS_INTERVAL = 3.0
#: Slack beyond the time limit for the agent to kill the tool and send what it has.
RESULT_GRACE = 10.0
#: After the agent says it is not running the job, its result may already be queued here
#: (NATS keeps one connection's messages in order: the result came before the reply).
LOST_GRACE = 1.0
INTERNAL_ERROR = 530
#: The sweep leaves younger jobs alone (one just created may not be held by its runner yet),
#: and fails a job of a server that never beat this long past its time limit.
ORPHAN_GRACE = 60.0
#: Each server stamps its heartbeat and sweeps this often.
SWEEP_INTERVAL = 30.0
#: A server whose heartbeat is this old has stopped: others fail its pending jobs.
SERVER_TIMEOUT = 3 * SWEEP_INTERVAL
#: The errortexts of the jobs a sweep fails, by why nobody will finish them.
OWNER_GONE = (
    f"The management server running the job stopped (no heartbeat for {SERVER_TIMEOUT:g} s); "
    "run the diagnostic again"
)
OUTCOME_LOST = "The management server could not store the job's outcome; run the diagnostic again"
PAST_LIMIT = (
    "No management server finished the job within its time limit (its server stopped); "
    "run the diagnostic again"
)
#: Who a shutdown's cancel requests name, and the errortext of every job a shutdown ends.
SHUTDOWN_BY = "management server shutdown"
SHUTDOWN_TEXT = "The management server shut down during the job; run the diagnostic again"
#: At shutdown, how long agents get to answer a cancel, then to send the output so far.
SHUTDOWN_GRACE = 3.0
#: The longest time limit a job can have (settings cap it there).
MAX_TIME_LIMIT = 3600.0
#: Writing a job's final state is retried this often, waiting FINISH_BACKOFF s, then twice
#: as long each time (about 7.5 s in all): a database blip must not leave the job pending.
FINISH_ATTEMPTS = 5
FINISH_BACKOFF = 0.5


@dataclass(frozen=True)
class DiagnosticsJob:
    """What the runner needs to run and account for one diagnostics job."""

    job_id: str
    host_id: str
    host_name: str
    vm_name: str
    vm_type: str
    request: RunRequest
    user_id: str
    username: str
    account_id: str
    domain_id: str


def _transient(exc: BaseException) -> bool:
    """A database error worth retrying: the connection or the server, not the statement."""
    if isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class JobFailed(Exception):
    """The job could not produce a result; the message is the job's errortext."""


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
        self.nc = nc
        #: This server's persistent id (jobs/identity.py): the owner recorded on its jobs.
        self.server_id = server_id
        #: hostname:port, shown beside the id in management_servers.
        self.server_label = server_label
        self._slots = asyncio.Semaphore(concurrency)
        #: Every job this runner holds, queued or running, by id: the jobs it will end.
        self._tasks: dict[str, asyncio.Task[None]] = {}
        #: The jobs sent to an agent and not yet ended: a shutdown asks it to stop them.
        self._on_agent: dict[str, DiagnosticsJob] = {}
        #: The jobs storing their outcome: a shutdown lets them, rather than cancel the write.
        self._finishing: set[str] = set()
        self._closing = False

    async def recover(self) -> int:
        """Fail the jobs an earlier run of this server left pending (it died while they ran)."""
        async with self.db.begin() as db:
            result = await db.execute(
                update(AsyncJob)
                .where(AsyncJob.status == 0, AsyncJob.server_id == self.server_id)
                .values(
                    status=2,
                    result_code=INTERNAL_ERROR,
                    result={
                        "errorcode": INTERNAL_ERROR,
                        "errortext": "The management server stopped while the job ran; "
                        "run the diagnostic again",
                    },
                    completed=utcnow(),
                )
            )
        count: int = result.rowcount  # type: ignore[attr-defined]
        if count:
            log.warning(
                "failed %d jobs left pending by a previous run of server %s", count, self.server_id
            )
        return count

    async def heartbeat(self, now: datetime | None = None) -> None:
        """Stamp this server's row: while it is fresh, other servers leave its jobs alone."""
        now = now or utcnow()
        async with self.db.begin() as db:
            row = await db.get(ManagementServer, self.server_id)
            if row is None:
                db.add(
                    ManagementServer(
                        id=self.server_id, name=self.server_label, started=now, last_seen=now
                    )
                )
            else:
                row.last_seen = now
                if row.name != self.server_label:  # Restarted elsewhere: same id, new place.
                    row.name, row.started = self.server_label, now

    async def sweep(self, now: datetime | None = None) -> int:
        """Fail pending jobs no server will finish; how many.

        A job, queued or running, is its server's to end while that server's heartbeat is
        fresh. The sweep fails it only when its server's heartbeat has gone stale (recover()
        covers a server that comes back, this one that does not); or it is this server's
        and this runner no longer holds it (storing its outcome failed); or its server never
        beat (an older version) and it is long past its time limit.
        """
        now = now or utcnow()
        async with self.db.begin() as db:
            servers = await db.execute(select(ManagementServer.id, ManagementServer.last_seen))
            beats = {server_id: last_seen for server_id, last_seen in servers}
            rows = (
                await db.execute(
                    select(
                        AsyncJob.id, AsyncJob.server_id, AsyncJob.created, AsyncJob.request
                    ).where(
                        AsyncJob.status == 0,
                        AsyncJob.created < now - timedelta(seconds=ORPHAN_GRACE),
                    )
                )
            ).all()
            orphans: dict[str, list[str]] = {}
            for job_id, owner, created, request in rows:
                why = self._orphaned(job_id, owner, created, request, beats.get(owner), now)
                if why:
                    orphans.setdefault(why, []).append(job_id)
            for why, ids in orphans.items():
                await db.execute(
                    update(AsyncJob)
                    .where(AsyncJob.id.in_(ids), AsyncJob.status == 0)
                    .values(
                        status=2,
                        result_code=INTERNAL_ERROR,
                        result={"errorcode": INTERNAL_ERROR, "errortext": why},
                        completed=now,
                    )
                )
        for why, ids in orphans.items():
            for job_id in ids:
                token = job_id_var.set(job_id)
                log.warning("swept: %s", why)
                job_id_var.reset(token)
        return sum(len(ids) for ids in orphans.values())

    def _orphaned(
        self,
        job_id: str,
        owner: str,
        created: datetime,
        request: dict[str, Any] | None,
        last_seen: datetime | None,
        now: datetime,
    ) -> str:
        """Why nobody will finish this pending job (its errortext), or '' if its owner will."""
        if owner == self.server_id:
            return "" if job_id in self._tasks else OUTCOME_LOST
        if last_seen is not None:
            return OWNER_GONE if (now - last_seen).total_seconds() > SERVER_TIMEOUT else ""
        limit = float((request or {}).get("timelimit", MAX_TIME_LIMIT))
        late = (now - created).total_seconds() > limit + RESULT_GRACE + ORPHAN_GRACE
        return PAST_LIMIT if late else ""

    async def cancel(
        self, job_id: str, host_id: str, by: str, timeout: float = ACCEPT_TIMEOUT
    ) -> str:
        """Ask the agent running the job to stop it; '' when it will, else why not."""
        try:
            reply = await self.nc.request(
                subjects.agent_cancel(host_id),
                CancelRequest(job_id=job_id, by=by).encode(),
                timeout=timeout,
            )
        except NoRespondersError:
            return "the agent of the VM's host is not connected"
        except NatsTimeout:
            return "the agent of the VM's host did not answer"
        except NatsError as exc:
            return f"the message bus is unavailable ({exc})"
        try:
            answer = CancelReply.model_validate_json(reply.data)
        except ValidationError:
            return "the agent sent a malformed answer"
        return "" if answer.cancelled else f"the agent is not running it ({answer.error})"

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
                result = await self._run(job)
        except JobFailed as exc:
            log.warning("job failed: %s", exc)
            await self._finish(job, None, str(exc))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._finish(job, None, SHUTDOWN_TEXT))
            raise
        except Exception as exc:
            log.exception("job crashed")
            await self._finish(job, None, f"Internal error while running the job: {exc}")
        else:
            await self._finish(job, result, None)

    async def _still_pending(self, job: DiagnosticsJob) -> bool:
        async with self.db() as db:
            status = await db.scalar(select(AsyncJob.status).where(AsyncJob.id == job.job_id))
        return status == 0

    async def _run(self, job: DiagnosticsJob) -> RunResult:
        # Subscribe before asking, so not even the first output line can be missed.
        sub = await self.nc.subscribe(subjects.job_all(job.job_id))
        try:
            self._on_agent[job.job_id] = job
            await self._ask(job)
            return await self._follow(job, sub)
        finally:
            self._on_agent.pop(job.job_id, None)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _ask(self, job: DiagnosticsJob) -> None:
        host = f"{job.host_name} ({job.host_id})"
        try:
            reply = await self.nc.request(
                subjects.agent_run(job.host_id), job.request.encode(), timeout=ACCEPT_TIMEOUT
            )
        except NoRespondersError:
            raise JobFailed(f"The agent for host {host} is not connected") from None
        except NatsTimeout:
            raise JobFailed(
                f"The agent for host {host} did not answer within {ACCEPT_TIMEOUT:g} s"
            ) from None
        except NatsError as exc:
            raise JobFailed(f"The message bus is unavailable ({exc}); run it again") from None
        try:
            accepted = RunAccepted.model_validate_json(reply.data)
        except ValidationError:
            raise JobFailed(f"The agent for host {host} sent a malformed answer") from None
        if not accepted.accepted:
            raise JobFailed(f"The agent for host {host} refused the job: {accepted.error}")
        log.info("accepted by agent of %s", host)

    async def _follow(self, job: DiagnosticsJob, sub: Any) -> RunResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + job.request.time_limit + RESULT_GRACE
        lines = 0
        #: Why the agent will send nothing more, once we know; the result may still be in
        #: flight (it finished just before we asked), so it gets LOST_GRACE to arrive.
        lost: str = ""
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise JobFailed(
                    lost
                    or f"No result from the agent of host {job.host_name} within the time "
                    f"limit of {job.request.time_limit:g} s"
                )
            try:
                msg = await sub.next_msg(timeout=min(LIVENESS_INTERVAL, remaining))
            except NatsTimeout:
                if not lost:
                    lost = await self._check_alive(job)
                    if lost:
                        deadline = min(deadline, loop.time() + LOST_GRACE)
                continue
            if msg.subject == subjects.job_result(job.job_id):
                try:
                    result = RunResult.model_validate_json(msg.data)
                except ValidationError:
                    raise JobFailed("The agent sent a malformed result") from None
                log.info("result exitcode=%s lines=%d", result.exitcode, lines)
                return result
            with contextlib.suppress(ValidationError):
                OutputLine.model_validate_json(msg.data)
                lines += 1

    async def _check_alive(self, job: DiagnosticsJob) -> str:
        """Why the agent will never send a result (gone, or not running the job), or ''."""
        try:
            reply = await self.nc.request(subjects.agent_status(job.host_id), b"", timeout=2)
        except NoRespondersError:
            return f"The agent for host {job.host_name} ({job.host_id}) disconnected during the job"
        except (NatsTimeout, NatsError):
            # Busy, slow, or the bus is reconnecting: the overall deadline bounds the wait.
            return ""
        with contextlib.suppress(ValidationError):
            status = StatusReply.model_validate_json(reply.data)
            if job.job_id not in status.running:
                return (
                    f"The agent for host {job.host_name} is no longer running the job "
                    "(it restarted or lost it)"
                )
        return ""

    async def _finish(
        self, job: DiagnosticsJob, result: RunResult | None, error: str | None
    ) -> None:
        self._finishing.add(job.job_id)
        payload: dict[str, Any]
        if result is not None:
            diagnostics = {
                "stdout": result.stdout,
                "stderr": result.stderr,
                "exitcode": result.exitcode,
                "timedout": result.timed_out,
                "truncated": result.truncated,
                "durationms": round(result.duration * 1000),
            }
            parsed = parsers.parse(job.request.type, result.stdout, result.stderr, result.exitcode)
            if parsed is not None:
                diagnostics["parsed"] = parsed
        if result is not None and (result.cancelled_by or result.error):
            # Failed as far as CloudStack clients know, with what the tool printed so far.
            status, code = 2, INTERNAL_ERROR
            if result.error:
                error = result.error
            elif result.cancelled_by == SHUTDOWN_BY:
                error = SHUTDOWN_TEXT
            else:
                error = f"Cancelled by {result.cancelled_by}"
            payload = {
                "errorcode": INTERNAL_ERROR,
                "errortext": error,
                "cancelled": bool(result.cancelled_by),
                "diagnostics": diagnostics,
            }
            outcome = f"failed: {error}"
        elif result is not None:
            status, code = 1, 0
            payload = {"diagnostics": diagnostics}
            outcome = f"exit code {result.exitcode}" + (" (timed out)" if result.timed_out else "")
        else:
            status, code = 2, INTERNAL_ERROR
            payload = {"errorcode": INTERNAL_ERROR, "errortext": error or "failed"}
            outcome = f"failed: {error}"
        for attempt in range(1, FINISH_ATTEMPTS + 1):
            try:
                await self._store(job, status, code, payload, outcome)
                return
            except Exception as exc:
                if attempt == FINISH_ATTEMPTS or not _transient(exc):
                    log.exception(
                        "could not store the job's outcome (%s); it stays pending until a "
                        "sweep fails it",
                        outcome,
                    )
                    return
                delay = FINISH_BACKOFF * 2 ** (attempt - 1)
                log.warning(
                    "storing the job's outcome failed (%s: %s), attempt %d of %d; again in %g s",
                    type(exc).__name__,
                    exc,
                    attempt,
                    FINISH_ATTEMPTS,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _store(
        self,
        job: DiagnosticsJob,
        status: int,
        code: int,
        payload: dict[str, Any],
        outcome: str,
    ) -> None:
        """Write the job's final state and its Completed event in one transaction, once."""
        req = job.request
        async with self.db.begin() as db:
            done = await db.execute(
                update(AsyncJob)
                .where(AsyncJob.id == job.job_id, AsyncJob.status == 0)
                .values(status=status, result_code=code, result=payload, completed=utcnow())
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                log.warning("job already final; late answer ignored")
                return
            events.record(
                db,
                type=events.DIAGNOSTICS_EVENT[job.vm_type],
                state="Completed",
                level="INFO" if status == 1 else "ERROR",
                description=(
                    f"Diagnostics {req.type} {req.address} on system vm {job.vm_name} "
                    f"({req.vm_id}): {outcome}"
                ),
                user_id=job.user_id,
                username=job.username,
                account_id=job.account_id,
                domain_id=job.domain_id,
                resource_type=events.INSTANCE_TYPE[job.vm_type],
                resource_id=req.vm_id,
                job_id=job.job_id,
            )
