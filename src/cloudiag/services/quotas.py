"""Concurrency and rate limits on diagnostics, per VM, per host agent and per user.

Counted from the job table in the transaction that creates the job, so several management
servers sharing one PostgreSQL enforce them together: the rows of the user, the host and
the VM are locked (FOR UPDATE) in that order, which serializes competing requests for the
same user, host or VM, and only those. SQLite has no row locks and serves one server only;
there an in-process lock serializes its writers instead (db.engine.locked_transaction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BindParameter, Select, bindparam, case, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.db.engine import is_sqlite
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


def _lock(model: type[User] | type[Host] | type[VirtualMachine]) -> Select[str]:
    return select(model.id).where(model.id == bindparam("key")).with_for_update()


# The statements are made once: building one costs more than running it (SQLAlchemy also
# keeps their cache keys), and only the parameters change from call to call.
_LOCKS = (_lock(User), _lock(Host), _lock(VirtualMachine))
_USER: BindParameter[str] = bindparam("user_id")
_HOST: BindParameter[str] = bindparam("host_id")
_VM: BindParameter[str] = bindparam("vm_id")
_SINCE: BindParameter[datetime] = bindparam("since", type_=AsyncJob.created.type)
_PENDING = (
    select(
        func.coalesce(func.sum(case((AsyncJob.user_id == _USER, 1), else_=0)), 0),
        func.coalesce(func.sum(case((AsyncJob.host_id == _HOST, 1), else_=0)), 0),
        func.coalesce(func.sum(case((AsyncJob.instance_id == _VM, 1), else_=0)), 0),
    )
    .where(AsyncJob.status == JobStatus.PENDING)  # The status index keeps it small.
    .subquery()
)
_RECENT = (
    select(func.count(), func.min(AsyncJob.created))
    .where(AsyncJob.user_id == _USER, AsyncJob.created > _SINCE)
    .subquery()
)
#: Every count in one query: one round trip, while the locks are held.
_COUNTS = select(*_PENDING.c, *_RECENT.c).select_from(_PENDING.join(_RECENT, true()))


async def check(db: AsyncSession, quotas: Quotas, user_id: str, vm: VirtualMachine) -> None:
    """Raise LimitExceeded when a new job would exceed a limit; else lock the rows and return.

    On SQLite, call it in a `db.engine.locked_transaction`, which serializes there.
    """
    # Only the rows of the limits that are set are locked: a limit of 0 counts nothing, and
    # its lock would serialize what needs no order (all of a host's calls, for its limit).
    needed = (quotas.per_user or quotas.rate, quotas.per_host, quotas.per_vm)
    if not any(needed):
        return
    if not is_sqlite(db):
        for lock, key, wanted in zip(_LOCKS, (user_id, vm.host_id, vm.id), needed, strict=True):
            if wanted:
                await db.execute(lock, {"key": key})
    since = utcnow() - timedelta(seconds=quotas.rate_interval)
    counts = (
        await db.execute(
            _COUNTS, {"user_id": user_id, "host_id": vm.host_id, "vm_id": vm.id, "since": since}
        )
    ).one()
    mine, on_host, on_vm, count, oldest = counts
    if quotas.rate and count >= quotas.rate:
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
