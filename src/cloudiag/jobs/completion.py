"""Failing jobs nobody will finish (recovery, the sweep), each with its Completed event.

A job the engine ends writes its final state and its Completed event together
(jobs/outcomes.py); a job failed in bulk, because its server died or its outcome was lost,
gets the same event here, so that every job's end is in the audit trail. Only rows still
pending are failed (UPDATE … WHERE pending RETURNING): a job whose outcome another server
stored meanwhile keeps it, and gets no second event. The parents of the failed jobs are
settled in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.db.models import AsyncJob, utcnow
from cloudiag.domain import JobStatus
from cloudiag.jobs import events, final_state, parents
from cloudiag.jobs.job_rows import load_jobs


@dataclass(frozen=True)
class FailedJob:
    """A job failed here, with what its Completed event and its log line say about it."""

    job_id: str
    errortext: str
    #: The host the job ran on, for the log ("" if the host is no longer known).
    host_name: str
    #: Its diagnostics type and creation time (Unix), for the metrics ("", 0 if unknown).
    type_name: str = ""
    created: float = 0.0


async def fail_pending(
    db: AsyncSession, errortexts: Mapping[str, str], now: datetime | None = None
) -> list[FailedJob]:
    """Fail those of these jobs (job id -> errortext) still pending, write each one's
    Completed event and settle their parents, in the caller's transaction; the jobs failed."""
    now = now or utcnow()
    by_text: dict[str, list[str]] = {}
    for job_id, errortext in errortexts.items():
        by_text.setdefault(errortext, []).append(job_id)
    failed: dict[str, str] = {}
    for errortext, ids in by_text.items():
        final = final_state.failed(errortext)
        done = await db.execute(
            update(AsyncJob)
            .where(AsyncJob.id.in_(ids), AsyncJob.status == JobStatus.PENDING)
            .values(
                status=final.status,
                result_code=final.code,
                result=final.payload,
                completed=now,
            )
            .returning(AsyncJob.id)
        )
        failed.update((job_id, errortext) for job_id in done.scalars())
    if not failed:
        return []
    jobs = {job.job_id: job for job in await load_jobs(db, list(failed))}
    for job in jobs.values():
        await events.completed(db, job, final_state.failed(failed[job.job_id]))
    await parents.settle(db, [job.parent_id for job in jobs.values()])
    # In job id order: a stable order of log lines. A row the engine could not have made
    # (no host or VM known) is failed all the same, without an event to say on what.
    return [
        FailedJob(job_id, failed[job_id], known.host_name, known.request.type, known.created)
        if (known := jobs.get(job_id)) is not None
        else FailedJob(job_id, failed[job_id], "")
        for job_id in sorted(failed)
    ]
