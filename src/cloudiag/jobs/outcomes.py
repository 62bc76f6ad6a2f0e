"""Storing how a job ended: its final state and its Completed event, once, with retries.

The row is written only while it is still pending, so a late answer after a sweep (or a
second answer) changes nothing; the job's parent, if any, is settled in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.models import AsyncJob, utcnow
from cloudiag.db.transient import is_transient
from cloudiag.domain import JobStatus
from cloudiag.jobs import events, parents
from cloudiag.jobs.diagnostics_job import DiagnosticsJob
from cloudiag.jobs.final_state import FinalState

log = logging.getLogger(__name__)

#: Writing a job's final state is retried this often, waiting FINISH_BACKOFF s, then twice
#: as long each time (about 7.5 s in all): a database blip must not leave the job pending.
FINISH_ATTEMPTS = 5
FINISH_BACKOFF = 0.5


async def store(
    db: async_sessionmaker[AsyncSession], job: DiagnosticsJob, final: FinalState
) -> None:
    """Store the job's final state, retrying a database blip; a job it cannot store stays
    pending, for a sweep to fail."""
    for attempt in range(1, FINISH_ATTEMPTS + 1):
        try:
            await _store_once(db, job, final)
            return
        except Exception as exc:
            if attempt == FINISH_ATTEMPTS or not is_transient(exc):
                log.exception(
                    "could not store the job's outcome (%s); it stays pending until a "
                    "sweep fails it",
                    final.summary,
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


async def _store_once(
    db: async_sessionmaker[AsyncSession], job: DiagnosticsJob, final: FinalState
) -> None:
    """Write the job's final state and its Completed event in one transaction, once."""
    req = job.request
    async with db.begin() as s:
        done = await s.execute(
            update(AsyncJob)
            .where(AsyncJob.id == job.job_id, AsyncJob.status == JobStatus.PENDING)
            .values(
                status=final.status,
                result_code=final.code,
                result=final.payload,
                completed=utcnow(),
            )
        )
        if not done.rowcount:  # type: ignore[attr-defined]
            log.warning("job already final; late answer ignored")
            return
        events.record(
            s,
            type=events.DIAGNOSTICS_EVENT[job.vm_type],
            state="Completed",
            level="INFO" if final.status == JobStatus.SUCCEEDED else "ERROR",
            description=(
                f"Diagnostics {req.type} {req.address} on system vm {job.vm_name} "
                f"({req.vm_id}): {final.summary}"
            ),
            user_id=job.user_id,
            username=job.username,
            account_id=job.account_id,
            domain_id=job.domain_id,
            resource_type=events.INSTANCE_TYPE[job.vm_type],
            resource_id=req.vm_id,
            job_id=job.job_id,
        )
        await parents.settle(s, [job.parent_id])
