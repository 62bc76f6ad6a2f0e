"""The results consumer every management server runs: store each result once, then ack.

A result leaves the stream only once its outcome is committed (or its job was final
already); a database error leaves it there, delivered again after a back-off, for as long
as the outage lasts. Any server may store any job's result: the one that started the job
learns of it through `on_stored`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus import pull, subjects
from cloudiag.bus.messages import RunResult
from cloudiag.db.models import utcnow
from cloudiag.db.transient import is_transient
from cloudiag.jobs import data_archive, outcomes
from cloudiag.jobs.data_archive import DataArchives
from cloudiag.jobs.diagnostics_job import DiagnosticsJob
from cloudiag.jobs.final_waiters import Stored
from cloudiag.jobs.job_rows import load_jobs
from cloudiag.logs import job_id_var
from cloudiag.metrics import database as database_metrics

log = logging.getLogger(__name__)

#: A result a server fetched and neither stored nor gave back comes again after this long.
ACK_WAIT = 30.0
#: Results one server holds fetched and not yet acknowledged, at most.
MAX_UNACKED = 256
#: Redelivery of a result whose outcome could not be stored: first after this, doubling.
NAK_FIRST = 0.5
NAK_MAX = 5.0


class ResultIntake:
    """Stores the results the agents deliver."""

    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        js: Callable[[], JetStreamContext],
        *,
        start_timeout: float,
        held: Callable[[str], DiagnosticsJob | None],
        on_stored: Callable[[str, Stored | None], None],
        archives: DataArchives | None = None,
    ) -> None:
        self.db = db
        self._js = js
        #: Where getDiagnosticsData zips go (None: this server keeps none).
        self.archives = archives
        self.start_timeout = start_timeout
        #: The job as this server's runner holds it, if it does (no need to read its row).
        self._held = held
        self._on_stored = on_stored
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Consume results in the background until close()."""
        config = pull.durable_config(
            subjects.RESULTS_CONSUMER,
            subjects.RESULTS_SUBJECTS,
            ack_wait=ACK_WAIT,
            max_ack_pending=MAX_UNACKED,
        )
        self._task = asyncio.create_task(
            pull.consume(self._js, subjects.RESULTS_STREAM, config, self.handle)
        )

    async def close(self) -> None:
        """Stop consuming (what was fetched and not acked comes again, to another server)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def handle(self, msg: Msg) -> None:
        """Store one result; ack it once stored, nak it on a database error."""
        received = time.perf_counter()
        host_id, job_id = subjects.host_of(msg.subject), subjects.job_of(msg.subject)
        token = job_id_var.set(job_id)
        try:
            try:
                result = RunResult.model_validate_json(msg.data)
            except ValidationError:
                log.error("malformed result dropped")
                await msg.term()
                return
            if result.job_id != job_id:
                log.error("result of job %s sent as this job's refused", result.job_id)
                await msg.term()
                return
            try:
                handled, stored = await self._store(host_id, job_id, result, received)
            except Exception as exc:
                database_metrics.caught(exc)
                if not is_transient(exc):
                    raise
                delay = min(NAK_FIRST * 2 ** (_deliveries(msg) - 1), NAK_MAX)
                log.warning(
                    "could not store the result (%s: %s); again in %g s",
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await msg.nak(delay=delay)
                return
            if handled:  # Readers first: the ack is for the stream, which can wait.
                self._on_stored(job_id, stored)
            await msg.ack()
        finally:
            job_id_var.reset(token)

    async def _store(
        self, host_id: str, job_id: str, result: RunResult, received: float
    ) -> tuple[bool, Stored | None]:
        """Whether the result was dealt with (stored, or its job final already, or refused),
        and what was stored if it was."""
        job = self._held(job_id) or await self._load(job_id)
        if job is None:
            log.warning("result of a job this database does not have; dropped")
            return False, None
        if job.host_id != host_id:
            # The bus let that agent publish as its own host only: not this job's agent.
            log.error("result sent by host %s for a job of host %s refused", host_id, job.host_id)
            return False, None
        final = await data_archive.final_of(job, result, self._js(), self.archives)
        completed = utcnow()
        if not await outcomes.store_once(self.db, job, final, completed=completed):
            return True, None
        # The time to store is a stage of bench/rundiagnostics_latency.py.
        took = (time.perf_counter() - received) * 1000
        log.info("result stored in %.2f ms: %s", took, final.summary)
        return True, Stored(final.status, final.code, final.payload, completed)

    async def _load(self, job_id: str) -> DiagnosticsJob | None:
        """A job another server started (or this one's previous run), from its row."""
        async with self.db() as db:
            jobs = await load_jobs(db, [job_id], start_timeout=self.start_timeout)
        return jobs[0] if jobs else None


def _deliveries(msg: Msg) -> int:
    try:
        return max(1, int(msg.metadata.num_delivered))
    except Exception:
        return 1
