"""Login throttling: failures slow the answer down, then lock the user for that source.

Counted in the database, so every management server sharing it enforces the same limits.
A second, higher threshold over all sources stops guessing spread across many addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.db.models import LoginFailure, utcnow


@dataclass(frozen=True)
class Policy:
    """When failures lock an account, and for how long."""

    #: Failures from one source within `window` before that source is locked out.
    per_source: int = 5
    #: Failures from all sources within `window` before the user is locked out everywhere.
    per_user: int = 20
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=5)
    #: Each failure delays its own answer by this much per earlier failure, up to max_delay.
    delay_step: float = 0.25
    max_delay: float = 3.0


def _keys(username: str, source: str) -> tuple[str, str]:
    return f"{username}|{source}", f"{username}|*"


async def locked_for(db: AsyncSession, username: str, source: str) -> int:
    """Seconds left on a lockout of this user from this source (or everywhere), else 0."""
    now = utcnow()
    left = 0
    for key in _keys(username, source):
        row = await db.get(LoginFailure, key)
        if row is not None and row.locked_until is not None and row.locked_until > now:
            left = max(left, int((row.locked_until - now).total_seconds()) + 1)
    return left


async def record_failure(
    db: AsyncSession, username: str, source: str, policy: Policy = Policy()
) -> float:
    """Count a failed login; returns how long to delay the answer (seconds)."""
    now = utcnow()
    counts = []
    for key, limit in zip(
        _keys(username, source), (policy.per_source, policy.per_user), strict=True
    ):
        row = await db.get(LoginFailure, key)
        if row is None or now - row.first > policy.window:
            if row is None:
                row = LoginFailure(key=key, count=0, first=now)
                db.add(row)
            row.count, row.first, row.locked_until = 0, now, None
        row.count += 1
        if row.count >= limit:
            row.locked_until = _later(row.locked_until, now + policy.lockout)
        counts.append(row.count)
    return min(policy.max_delay, policy.delay_step * (counts[0] - 1))


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


async def record_success(db: AsyncSession, username: str, source: str) -> None:
    """A good password from this source clears its count (not the all-sources one)."""
    await db.execute(delete(LoginFailure).where(LoginFailure.key == _keys(username, source)[0]))
