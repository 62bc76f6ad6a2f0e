"""cancelDiagnostics: stop a caller's running diagnostic on its VM."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.models import AsyncJob
from cloudiag.domain import Caller, InvalidInput, JobStatus, NotFound
from cloudiag.services.runs import RUN_DIAGNOSTICS_CMD

if TYPE_CHECKING:
    from cloudiag.jobs.runner import JobRunner


async def cancel_diagnostics(
    sessions: async_sessionmaker[AsyncSession], runner: JobRunner, caller: Caller, job_id: str
) -> None:
    """Have the agent stop the job's tool; the job then ends as cancelled by the caller.

    NotFound unless the job is a diagnostic the caller may see; InvalidInput when it has
    finished already or its agent will not stop it.
    """
    async with sessions() as db:
        job = await db.get(AsyncJob, job_id)
    if (
        job is None
        or job.cmd != RUN_DIAGNOSTICS_CMD
        or (not caller.is_admin and job.user_id != caller.id)
    ):
        raise NotFound(f"Unable to find a diagnostics job with id {job_id}")
    if job.status != JobStatus.PENDING or job.host_id is None:
        raise InvalidInput(f"The job {job.id} has already finished")
    why_not = await runner.cancel(job.id, job.host_id, caller.username)
    if why_not:
        raise InvalidInput(f"Unable to cancel the job {job.id}: {why_not}")
