"""Login throttling: failures slow the answer down, then lock the user for that source.

Counted in the database, so every management server sharing it enforces the same limits.
A second, higher threshold over all sources stops guessing spread across many addresses.

An attempt is counted as a failure *before* its password is checked, in the same
transaction that decides whether it is locked out; a right password then takes the count
back. Checking first and counting after would let a burst of parallel guesses all pass the
check before the first of them is counted. The rows are locked (FOR UPDATE) on PostgreSQL;
SQLite has no row locks and serves one server only, so there an in-process lock serializes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.engine import locked_transaction
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


@dataclass(frozen=True)
class Attempt:
    """A login attempt, counted as a failed one until record_success() takes it back."""

    username: str
    source: str
    at: datetime
    #: Seconds left on the lockout that refused the attempt; 0 when it may check a password.
    locked_for: int = 0
    #: How long to hold back the answer if the password is wrong (seconds).
    delay: float = 0.0
    #: This attempt locked the user everywhere; the lock it replaced (None: there was none).
    set_user_lock: bool = False
    user_lock_before: datetime | None = None


def _keys(username: str, source: str) -> tuple[str, str]:
    return f"{username}|{source}", f"{username}|*"


async def _locked_row(db: AsyncSession, key: str, now: datetime) -> LoginFailure:
    """The row of `key`, created if missing, locked until the transaction ends."""
    # An upsert, because FOR UPDATE locks nothing while the row does not exist yet.
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    await db.execute(
        dialect.insert(LoginFailure)
        .values(key=key, count=0, first=now, locked_until=None)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    query = select(LoginFailure).where(LoginFailure.key == key).with_for_update()
    return (await db.execute(query)).scalar_one()


def _seconds_left(row: LoginFailure, now: datetime) -> int:
    if row.locked_until is None or row.locked_until <= now:
        return 0
    return int((row.locked_until - now).total_seconds()) + 1


async def begin_attempt(
    sessions: async_sessionmaker[AsyncSession],
    username: str,
    source: str,
    policy: Policy = Policy(),
) -> Attempt:
    """Refuse a locked-out login, else count it as failed before its password is checked."""
    now = utcnow()
    async with locked_transaction(sessions) as db:
        rows = [await _locked_row(db, key, now) for key in _keys(username, source)]
        left = max(_seconds_left(row, now) for row in rows)
        if left:
            return Attempt(username, source, now, locked_for=left)
        for row in rows:
            if now - row.first > policy.window:
                row.count, row.first, row.locked_until = 0, now, None
        per_source, per_user = rows
        user_lock_before = per_user.locked_until
        for row, limit in ((per_source, policy.per_source), (per_user, policy.per_user)):
            row.count += 1
            if row.count >= limit:
                row.locked_until = now + policy.lockout
        return Attempt(
            username,
            source,
            now,
            delay=min(policy.max_delay, policy.delay_step * (per_source.count - 1)),
            set_user_lock=per_user.locked_until != user_lock_before,
            user_lock_before=user_lock_before,
        )


async def record_success(sessions: async_sessionmaker[AsyncSession], attempt: Attempt) -> None:
    """The password was right: clear this source's count and take the attempt back."""
    per_source, per_user = _keys(attempt.username, attempt.source)
    async with locked_transaction(sessions) as db:
        await db.execute(delete(LoginFailure).where(LoginFailure.key == per_source))
        row = await _locked_row(db, per_user, attempt.at)
        if row.first > attempt.at:  # The window restarted since: the attempt is not in it.
            return
        row.count = max(0, row.count - 1)
        if attempt.set_user_lock:
            # Nobody else got past the lock this attempt set, so nobody else changed it.
            row.locked_until = attempt.user_lock_before
