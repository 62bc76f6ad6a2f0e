"""Concurrency and rate limits on diagnostics, per VM, per host agent and per user.

Counted from the job table in the transaction that creates the job, so several management
servers sharing one PostgreSQL enforce them together: the rows of the user, the host and
the VM are locked (FOR UPDATE) in that order, which serializes competing requests for the
same user, host or VM, and only those. SQLite has no row locks and serves one server only;
there an in-process lock serializes its writers instead (db.engine.sqlite_writers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.db.models import AsyncJob, Host, User, VirtualMachine, utcnow
from cloudiag.domain import JobStatus, LimitExceeded
from cloudiag.settings import Settings


@dataclass(frozen=True)
class Quotas:
    """The operator's limits (0 = no limit)."""

    per_vm: int = 5
    per_host: int = 100
    per_user: int = 20
    #: At most `rate` diagnostics per user within `rate_interval` seconds.
    rate: int = 300
    rate_interval: int = 60

    @classmethod
    def from_settings(cls, settings: Settings) -> Quotas:
        """The limits the operator set."""
        return cls(
            per_vm=settings.limit_per_vm,
            per_host=settings.limit_per_host,
            per_user=settings.limit_per_user,
            rate=settings.rate_limit,
            rate_interval=settings.rate_interval,
        )


def _busy(what: str, limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"{what} already has {limit} diagnostics running, its limit; retry when one has finished"
    )


async def check(db: AsyncSession, quotas: Quotas, user_id: str, vm: VirtualMachine) -> None:
    """Raise LimitExceeded when a new job would exceed a limit; else lock the rows and return.

    Call it under `db.engine.sqlite_writers` and commit the job before letting go of it.
    """
    # No row locks on SQLite; db.engine.sqlite_writers() serializes there instead.
    if db.get_bind().dialect.name != "sqlite":
        for model, key in ((User, user_id), (Host, vm.host_id), (VirtualMachine, vm.id)):
            await db.execute(select(model.id).where(model.id == key).with_for_update())
    # Every count in one query: one round trip, while the locks are held.
    since = utcnow() - timedelta(seconds=quotas.rate_interval)
    recent = select(func.count(), func.min(AsyncJob.created)).where(
        AsyncJob.user_id == user_id, AsyncJob.created > since
    )
    pending = select(
        func.coalesce(func.sum(case((AsyncJob.user_id == user_id, 1), else_=0)), 0),
        func.coalesce(func.sum(case((AsyncJob.host_id == vm.host_id, 1), else_=0)), 0),
        func.coalesce(func.sum(case((AsyncJob.instance_id == vm.id, 1), else_=0)), 0),
    ).where(AsyncJob.status == JobStatus.PENDING)  # The status index keeps it small.
    counts_of = pending.subquery()
    query = select(*counts_of.c)
    if quotas.rate:
        rate_of = recent.subquery()
        query = select(*counts_of.c, *rate_of.c).select_from(counts_of.join(rate_of, true()))
    counts = (await db.execute(query)).one()
    mine, on_host, on_vm = counts[:3]
    if quotas.rate:
        count, oldest = counts[3:]
        if count >= quotas.rate:
            retry = max(1, math.ceil((oldest - since).total_seconds()))
            raise LimitExceeded(
                f"The limit of {quotas.rate} diagnostics per {quotas.rate_interval} s has been "
                f"exceeded for this user; retry after {retry} s"
            )
    if quotas.per_user and mine >= quotas.per_user:
        raise _busy("This user", quotas.per_user)
    if quotas.per_host and on_host >= quotas.per_host:
        raise _busy(f"The host of {vm.name}", quotas.per_host)
    if quotas.per_vm and on_vm >= quotas.per_vm:
        raise _busy(f"The VM {vm.name}", quotas.per_vm)
