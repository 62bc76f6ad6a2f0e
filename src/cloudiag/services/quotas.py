"""Concurrency and rate limits on diagnostics, per VM, per host agent and per user.

Counted from the job table in the transaction that creates the job, so several management
servers sharing one PostgreSQL enforce them together: the rows of the user, the host and
the VM are locked (FOR UPDATE) in that order, which serializes competing requests. SQLite
has no row locks and serves one server only; there an in-process lock serializes instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.api.errors import ApiError
from cloudiag.db.models import AsyncJob, Host, User, VirtualMachine, utcnow


@dataclass(frozen=True)
class Quotas:
    """The operator's limits (0 = no limit)."""

    per_vm: int = 5
    per_host: int = 100
    per_user: int = 20
    #: At most `rate` diagnostics per user within `rate_interval` seconds.
    rate: int = 300
    rate_interval: int = 60


_sqlite_lock = asyncio.Lock()


def serializer(sessionmaker: async_sessionmaker[AsyncSession]) -> AbstractAsyncContextManager[Any]:
    """Hold this around the job-creating transaction: the SQLite stand-in for row locks."""
    bind = sessionmaker.kw.get("bind")
    if bind is not None and bind.dialect.name == "sqlite":
        return _sqlite_lock
    return contextlib.nullcontext()


async def _pending(db: AsyncSession, *where: ColumnElement[bool]) -> int:
    query = select(func.count()).select_from(AsyncJob).where(AsyncJob.status == 0, *where)
    return int((await db.execute(query)).scalar_one())


def _busy(what: str, limit: int) -> ApiError:
    return ApiError.limit_exceeded(
        f"{what} already has {limit} diagnostics running, its limit; retry when one has finished"
    )


async def check(db: AsyncSession, quotas: Quotas, user_id: str, vm: VirtualMachine) -> None:
    """Raise ApiError 429 when a new job would exceed a limit; else lock the rows and return."""
    await db.execute(select(User.id).where(User.id == user_id).with_for_update())
    await db.execute(select(Host.id).where(Host.id == vm.host_id).with_for_update())
    await db.execute(select(VirtualMachine.id).where(VirtualMachine.id == vm.id).with_for_update())
    if quotas.rate:
        since = utcnow() - timedelta(seconds=quotas.rate_interval)
        recent = select(AsyncJob.created).where(
            AsyncJob.user_id == user_id, AsyncJob.created > since
        )
        count = int(
            (await db.execute(select(func.count()).select_from(recent.subquery()))).scalar_one()
        )
        if count >= quotas.rate:
            oldest = (await db.execute(recent.order_by(AsyncJob.created).limit(1))).scalar_one()
            retry = max(1, math.ceil((oldest - since).total_seconds()))
            raise ApiError.limit_exceeded(
                f"The limit of {quotas.rate} diagnostics per {quotas.rate_interval} s has been "
                f"exceeded for this user; retry after {retry} s"
            )
    if quotas.per_user and await _pending(db, AsyncJob.user_id == user_id) >= quotas.per_user:
        raise _busy("This user", quotas.per_user)
    if quotas.per_host and await _pending(db, AsyncJob.host_id == vm.host_id) >= quotas.per_host:
        raise _busy(f"The host of {vm.name}", quotas.per_host)
    if quotas.per_vm and await _pending(db, AsyncJob.instance_id == vm.id) >= quotas.per_vm:
        raise _busy(f"The VM {vm.name}", quotas.per_vm)
