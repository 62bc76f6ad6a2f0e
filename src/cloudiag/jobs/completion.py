"""Failing jobs nobody will finish (recovery, the sweep), each with its Completed event.

A job the engine ends writes its final state and its Completed event together
(jobs/outcomes.py); a job failed in bulk, because its server died or its outcome was lost,
gets the same event here, so that every job's end is in the audit trail. Only rows still
pending are failed (UPDATE … WHERE pending RETURNING): a job whose outcome another server
stored meanwhile keeps it, and gets no second event. The parents of the failed jobs are
settled in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.db.models import AsyncJob, Event, Host, User, VirtualMachine, utcnow
from cloudiag.domain import JobStatus
from cloudiag.jobs import events, final_state, parents


@dataclass(frozen=True)
class FailedJob:
    """A job failed here, with what its Completed event and its log line say about it."""

    job_id: str
    errortext: str
    #: The host the job ran on, for the log ("" if the host is no longer known).
    host_name: str


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
    contexts = await _contexts(db, list(failed))
    for ctx in contexts:
        _record_completed(db, ctx, final_state.failed(failed[ctx.job_id]))
    await parents.settle(db, [ctx.parent_id for ctx in contexts])
    return [FailedJob(ctx.job_id, failed[ctx.job_id], ctx.host_name) for ctx in contexts]


@dataclass(frozen=True)
class _JobContext:
    """What a job's Completed event says, from its row and those of its user, VM and host."""

    job_id: str
    parent_id: str | None
    type_name: str
    address: str
    vm_id: str
    vm_name: str
    #: The event type: by the VM's type, as the engine writes it.
    event_type: str
    resource_type: str
    user_id: str
    username: str
    account_id: str
    domain_id: str
    host_name: str


async def _contexts(db: AsyncSession, ids: Sequence[str]) -> list[_JobContext]:
    """The context of each job, in job id order (a stable order of events and of logs)."""
    started_type = (
        select(Event.type)
        .where(Event.job_id == AsyncJob.id, Event.state == "Started")
        .limit(1)
        .scalar_subquery()
    )
    rows = await db.execute(
        select(
            AsyncJob.id,
            AsyncJob.parent_id,
            AsyncJob.request,
            AsyncJob.instance_id,
            AsyncJob.instance_type,
            AsyncJob.user_id,
            AsyncJob.account_id,
            User.username,
            User.domain_id,
            VirtualMachine.name,
            VirtualMachine.vm_type,
            Host.name,
            started_type,
        )
        .outerjoin(User, User.id == AsyncJob.user_id)
        .outerjoin(VirtualMachine, VirtualMachine.id == AsyncJob.instance_id)
        .outerjoin(Host, Host.id == AsyncJob.host_id)
        .where(AsyncJob.id.in_(ids))
        .order_by(AsyncJob.id)
    )
    return [_context(*row) for row in rows]


def _context(
    job_id: str,
    parent_id: str | None,
    request: dict[str, Any] | None,
    vm_id: str,
    instance_type: str,
    user_id: str,
    account_id: str,
    username: str | None,
    domain_id: str | None,
    vm_name: str | None,
    vm_type: str | None,
    host_name: str | None,
    started_type: str | None,
) -> _JobContext:
    request = request or {}
    # VM rows are kept (an agent's report updates them, nothing deletes them); should one
    # be missing, the job's Started event still tells its event type.
    event_type = events.DIAGNOSTICS_EVENT.get(vm_type or "", started_type or "")
    return _JobContext(
        job_id=job_id,
        parent_id=parent_id,
        type_name=str(request.get("type", "")),
        address=str(request.get("ipaddress", "")),
        vm_id=vm_id,
        vm_name=vm_name or "",
        event_type=event_type,
        resource_type=instance_type,
        user_id=user_id,
        username=username or "",
        account_id=account_id,
        domain_id=domain_id or "",
        host_name=host_name or "",
    )


def _record_completed(db: AsyncSession, ctx: _JobContext, final: final_state.FinalState) -> None:
    """The job's Completed event, worded as jobs/outcomes.py words a failed job's."""
    events.record(
        db,
        type=ctx.event_type,
        state="Completed",
        level="ERROR",
        description=(
            f"Diagnostics {ctx.type_name} {ctx.address} on system vm {ctx.vm_name} "
            f"({ctx.vm_id}): {final.summary}"
        ),
        user_id=ctx.user_id,
        username=ctx.username,
        account_id=ctx.account_id,
        domain_id=ctx.domain_id,
        resource_type=ctx.resource_type,
        resource_id=ctx.vm_id,
        job_id=ctx.job_id,
    )
