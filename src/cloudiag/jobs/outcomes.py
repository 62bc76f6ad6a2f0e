"""Storing how a job ended: its final state and its Completed event, once, with retries.

The row is written only while it is still pending, so a late answer after a sweep (or a
second answer) changes nothing; the job's parent, if any, is settled in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.engine import locked_transaction
from cloudiag.db.models import AsyncJob, utcnow
from cloudiag.db.transient import is_transient
from cloudiag.domain import JobStatus
from cloudiag.jobs import events, parents
from cloudiag.jobs.diagnostics_job import DiagnosticsJob
from cloudiag.jobs.final_state import FinalState
from cloudiag.metrics import database as database_metrics
from cloudiag.metrics import jobs as job_metrics

log = logging.getLogger(__name__)

#: Writing a job's final state is retried after a database error, waiting FINISH_BACKOFF s,
#: then twice as long each time up to FINISH_BACKOFF_MAX, for as long as FINISH_PATIENCE:
#: a database outage (a failover, a restart) must not leave the job pending or lose it.
FINISH_BACKOFF = 0.5
FINISH_BACKOFF_MAX = 5.0
FINISH_PATIENCE = 600.0


async def store(
    db: async_sessionmaker[AsyncSession],
    job: DiagnosticsJob,
    final: FinalState,
    patience: float = FINISH_PATIENCE,
) -> bool:
    """Store the job's final state, retrying through a database outage for up to
    `patience` s; True when stored or already final. A job it cannot store stays pending,
    for a sweep to fail."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + patience
    delay = FINISH_BACKOFF
    attempt = 0
    while True:
        attempt += 1
        try:
            await store_once(db, job, final)
            return True
        except Exception as exc:
            database_metrics.caught(exc)
            if not is_transient(exc) or loop.time() + delay > give_up:
                log.exception(
                    "could not store the job's outcome (%s); it stays pending until a "
                    "sweep fails it",
                    final.summary,
                )
                return False
            log.warning(
                "storing the job's outcome failed (%s: %s), attempt %d; again in %g s",
                type(exc).__name__,
                exc,
                attempt,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, FINISH_BACKOFF_MAX)


#: Made once (building it costs more than running it): the job's final state, written only
#: while it is pending.
_JOBS = cast(Table, AsyncJob.__table__)
_FINISH = (
    # The table's own UPDATE: the ORM's adds its bookkeeping, and no session holds the row.
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job_id"), _JOBS.c.status == JobStatus.PENDING)
    .values(
        status=bindparam("status"),
        result_code=bindparam("code"),
        result=bindparam("payload", type_=_JOBS.c.result.type),
        completed=bindparam("completed", type_=_JOBS.c.completed.type),
    )
)


async def store_once(
    db: async_sessionmaker[AsyncSession],
    job: DiagnosticsJob,
    final: FinalState,
    *,
    completed: datetime | None = None,
) -> bool:
    """Write the job's final state and its Completed event in one transaction, once;
    False when the job was final already. Database errors are raised."""
    # On SQLite queued with the other writers (db.engine.locked_transaction), not against them.
    async with locked_transaction(db) as s:
        done = await s.execute(
            _FINISH,
            {
                "job_id": job.job_id,
                "status": final.status,
                "code": final.code,
                "payload": final.payload,
                "completed": completed or utcnow(),
            },
        )
        if not done.rowcount:  # type: ignore[attr-defined]
            log.warning("job already final; late answer ignored")
            return False
        await events.completed(s, job, final)
        await parents.settle(s, [job.parent_id])
    job_metrics.ended(job.request.type, final.outcome, job.created)
    return True
