"""A parent job (one run over many VMs) takes its status from its children.

Pending while any child is pending; succeeded when every child succeeded; failed otherwise,
with a summary errortext. settle() runs in the transaction that stores a child's outcome,
after the child's row is written: it locks the parent's row first, so two children ending
at once on two servers settle it one after the other, and the second sees the first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.db.models import AsyncJob, User, utcnow
from cloudiag.domain import INTERNAL_ERROR_CODE, JobStatus
from cloudiag.jobs import events


async def settle(db: AsyncSession, parent_ids: Iterable[str | None]) -> None:
    """Give each still pending parent its final state once none of its children is pending."""
    # Always in the same order: two transactions never wait on each other's parents.
    for parent_id in sorted({p for p in parent_ids if p is not None}):
        await _settle_one(db, parent_id)


async def _settle_one(db: AsyncSession, parent_id: str) -> None:
    parent = await db.scalar(select(AsyncJob).where(AsyncJob.id == parent_id).with_for_update())
    if parent is None or parent.status != JobStatus.PENDING:
        return
    rows = await db.execute(
        select(AsyncJob.status, func.count())
        .where(AsyncJob.parent_id == parent_id)
        .group_by(AsyncJob.status)
    )
    counts: dict[int, int] = {status: count for status, count in rows}
    if counts.get(JobStatus.PENDING, 0):
        return
    total = sum(counts.values())
    succeeded = counts.get(JobStatus.SUCCEEDED, 0)
    tally = {"total": total, "succeeded": succeeded, "failed": total - succeeded}
    result: dict[str, Any]
    if succeeded == total:
        status, code, result = JobStatus.SUCCEEDED, 0, {"jobs": tally}
        outcome = f"all {total} jobs succeeded"
    else:
        status, code = JobStatus.FAILED, INTERNAL_ERROR_CODE
        outcome = f"{total - succeeded} of {total} jobs failed"
        result = {"errorcode": INTERNAL_ERROR_CODE, "errortext": outcome, "jobs": tally}
    parent.status, parent.result_code, parent.result = status, code, result
    parent.completed = utcnow()
    user = await db.get(User, parent.user_id)
    await events.record(
        db,
        type=events.GROUP_EVENT,
        state="Completed",
        level="INFO" if status == JobStatus.SUCCEEDED else "ERROR",
        description=f"Diagnostics on {total} system vms: {outcome}",
        user_id=parent.user_id,
        username=user.username if user else "",
        account_id=parent.account_id,
        domain_id=user.domain_id if user else "",
        job_id=parent.id,
    )
