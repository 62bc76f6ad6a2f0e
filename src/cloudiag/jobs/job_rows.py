"""The engine's view of jobs rebuilt from their rows: for results stored by a server that
did not start the job, and for the jobs recovery takes over."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.bus.messages import RunRequest
from cloudiag.db.models import AsyncJob, Host, User, VirtualMachine
from cloudiag.domain import MAX_TIME_LIMIT
from cloudiag.jobs.diagnostics_job import DiagnosticsJob


async def load_jobs(
    db: AsyncSession, job_ids: Sequence[str], *, start_timeout: float = 0.0
) -> list[DiagnosticsJob]:
    """The jobs of these ids that run on an agent (a parent job has no host), as the engine
    sees them. Their requests' deadline to start is rebuilt from when they were created
    (`start_timeout` after); only what a job's row keeps is there (not its output limit or
    denied networks: the agent has had those since it took the request)."""
    if not job_ids:
        return []
    rows = await db.execute(
        select(
            AsyncJob,
            User.username,
            User.domain_id,
            VirtualMachine.name,
            VirtualMachine.vm_type,
            Host.name,
        )
        .join(User, User.id == AsyncJob.user_id)
        .join(VirtualMachine, VirtualMachine.id == AsyncJob.instance_id)
        .outerjoin(Host, Host.id == AsyncJob.host_id)
        .where(AsyncJob.id.in_(list(job_ids)), AsyncJob.host_id.is_not(None))
    )
    jobs = []
    for job, username, domain_id, vm_name, vm_type, host_name in rows:
        assert job.host_id is not None
        asked = job.request or {}
        start_by = (job.created + timedelta(seconds=start_timeout)).timestamp()
        jobs.append(
            DiagnosticsJob(
                job_id=job.id,
                host_id=job.host_id,
                host_name=host_name or job.host_id,
                vm_name=vm_name,
                vm_type=vm_type,
                request=RunRequest(
                    job_id=job.id,
                    start_by=start_by,
                    vm_id=job.instance_id,
                    type=str(asked.get("type", "")),
                    address=str(asked.get("ipaddress", "")),
                    params=[str(p) for p in asked.get("params", [])],
                    time_limit=float(asked.get("timelimit", MAX_TIME_LIMIT)),
                ),
                user_id=job.user_id,
                username=username,
                account_id=job.account_id,
                domain_id=domain_id,
                parent_id=job.parent_id,
                created=job.created.timestamp(),
            )
        )
    return jobs
