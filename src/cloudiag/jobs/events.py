"""Events: the audit trail of who ran what on which VM, and how it ended."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.db.models import Event, new_uuid, utcnow
from cloudiag.domain import JobStatus, VmType
from cloudiag.jobs.diagnostics_job import DiagnosticsJob
from cloudiag.jobs.final_state import FinalState

#: CloudStack's name of a system VM type: a job's instance type, its events' resource type.
INSTANCE_TYPE: dict[str, str] = {
    VmType.DOMAIN_ROUTER: "DomainRouter",
    VmType.SECONDARY_STORAGE: "SystemVm",
    VmType.CONSOLE_PROXY: "SystemVm",
}
#: CloudStack's event type for diagnostics, by VM type.
DIAGNOSTICS_EVENT: dict[str, str] = {
    VmType.DOMAIN_ROUTER: "ROUTER.DIAGNOSTICS",
    VmType.SECONDARY_STORAGE: "SSVM.DIAGNOSTICS",
    VmType.CONSOLE_PROXY: "PROXY.DIAGNOSTICS",
}
#: The event type of a parent job: one run over many system VMs (cloudiag's own type).
GROUP_EVENT = "DIAGNOSTICS.GROUP"


#: Made once (building a statement costs more than running it); an event is written at
#: once, not at the session's flush (whose bookkeeping costs more than the insert).
_INSERT = insert(cast(Table, Event.__table__))


async def record(
    db: AsyncSession,
    *,
    type: str,
    state: str,
    description: str,
    user_id: str,
    username: str,
    account_id: str,
    domain_id: str,
    resource_type: str = "",
    resource_id: str = "",
    job_id: str | None = None,
    level: str = "INFO",
) -> None:
    """Write an event in the caller's transaction (committed with it)."""
    await db.execute(
        _INSERT,
        {
            "id": new_uuid(),
            "type": type,
            "state": state,
            "level": level,
            "description": description,
            "user_id": user_id,
            "username": username,
            "account_id": account_id,
            "domain_id": domain_id,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "job_id": job_id,
            "created": utcnow(),
        },
    )


async def completed(db: AsyncSession, job: DiagnosticsJob, final: FinalState) -> None:
    """A diagnostics job's Completed event: how it ended, worded the same however it ended
    (a result, the engine's own failure, recovery, a sweep)."""
    req = job.request
    await record(
        db,
        type=DIAGNOSTICS_EVENT[job.vm_type],
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
        resource_type=INSTANCE_TYPE[job.vm_type],
        resource_id=req.vm_id,
        job_id=job.job_id,
    )
