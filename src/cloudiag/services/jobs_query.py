"""Async jobs as their callers may read them."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from sqlalchemy import Row, Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.engine import reading
from cloudiag.db.models import AsyncJob, User
from cloudiag.domain import Caller, JobStatus, NotFound
from cloudiag.jobs.final_waiters import FinalWaiters
from cloudiag.services.paging import Paging, page

#: While a reader waits for a job to be final, its row is read again this often (an
#: outcome stored by another server wakes nobody here).
RECHECK = 1.0


def may_see(caller: Caller, job: AsyncJob) -> bool:
    """Admins see every job, other callers their own."""
    return caller.is_admin or job.user_id == caller.id


async def get_job(
    sessions: async_sessionmaker[AsyncSession], caller: Caller, job_id: str
) -> AsyncJob:
    """The job of that id, or NotFound when there is none the caller may see."""
    async with reading(sessions) as db:
        job = await db.get(AsyncJob, job_id)
    if job is None or not may_see(caller, job):
        raise NotFound(f"Unable to find a job with id {job_id}")
    return job


async def wait_final(
    sessions: async_sessionmaker[AsyncSession],
    waiters: FinalWaiters,
    caller: Caller,
    job_id: str,
    wait: float,
) -> AsyncJob:
    """The job once it is final, or as it is after `wait` seconds; NotFound as get_job.

    Woken the moment this server stores its outcome (which the wake-up carries); its row is
    read again every RECHECK seconds meanwhile, for an outcome another server stores.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        with waiters.watching(job_id) as stored:
            job = await get_job(sessions, caller, job_id)
            remaining = deadline - loop.time()
            if job.status != JobStatus.PENDING or remaining <= 0 or waiters.closed:
                return job
            try:
                outcome = await asyncio.wait_for(stored, min(remaining, RECHECK))
            except TimeoutError:
                continue
            if outcome is not None:  # As committed: the row need not be read again.
                job.status, job.result_code = outcome.status, outcome.result_code
                job.result, job.completed = outcome.result, outcome.completed
                return job


#: A job's columns and its user's name: listAsyncJobs' rows, read as rows (building an ORM
#: object per job cost more than the rest of the listing), with the name joined in.
_LISTED = (
    select(*cast(Table, AsyncJob.__table__).c, User.username)
    .outerjoin(User, User.id == AsyncJob.user_id)
    .order_by(AsyncJob.created.desc(), AsyncJob.id)
)


async def list_jobs(
    sessions: async_sessionmaker[AsyncSession],
    caller: Caller,
    paging: Paging,
    *,
    listall: bool = False,
    instance_id: str | None = None,
    keyword: str | None = None,
) -> tuple[list[Row[Any]], int]:
    """One page of jobs, newest first, each a row of the job's columns and its user's
    ``username``, and how many in all.

    The caller's own jobs; an admin's listall, everyone's.
    """
    query = _LISTED
    if not (caller.is_admin and listall):
        query = query.where(AsyncJob.user_id == caller.id)
    if instance_id is not None:
        query = query.where(AsyncJob.instance_id == instance_id)
    if keyword:
        query = query.where(AsyncJob.cmd.ilike(f"%{keyword}%"))
    async with sessions() as db:
        return await page(db, query, paging, rows=True)
