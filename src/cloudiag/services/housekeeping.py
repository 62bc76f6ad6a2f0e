"""What every management server does periodically: stamp its heartbeat, fail the jobs no
server will finish, delete the login records and used signatures that no longer count,
and (on its own interval) the getDiagnosticsData zips past their age."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.models import LoginFailure, Session, utcnow
from cloudiag.jobs.data_archive import DataArchives
from cloudiag.jobs.runner import JobRunner
from cloudiag.services import throttle, used_signatures

log = logging.getLogger(__name__)

#: The policy login() throttles with, whose window says when a count no longer matters.
_POLICY = throttle.Policy()


async def purge_sessions(db: AsyncSession, lifetime: int, now: datetime | None = None) -> int:
    """Delete sessions past their idle timeout or their absolute lifetime; how many."""
    now = now or utcnow()
    result = await db.execute(
        delete(Session).where(
            or_(Session.expires <= now, Session.created <= now - timedelta(seconds=lifetime))
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def purge_login_failures(
    db: AsyncSession, now: datetime | None = None, policy: throttle.Policy = _POLICY
) -> int:
    """Delete failure counts whose window has passed and that lock nobody; how many.

    The throttle restarts such a count from zero at the next attempt anyway, so deleting
    it changes nothing but the size of the table (each guessed user name adds rows).
    """
    now = now or utcnow()
    result = await db.execute(
        delete(LoginFailure).where(
            and_(
                LoginFailure.first < now - policy.window,
                or_(LoginFailure.locked_until.is_(None), LoginFailure.locked_until <= now),
            )
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def purge_login_records(
    sessions: async_sessionmaker[AsyncSession], session_lifetime: int
) -> None:
    """Both purges, in one transaction."""
    async with sessions.begin() as db:
        gone = await purge_sessions(db, session_lifetime)
        forgotten = await purge_login_failures(db)
    if gone or forgotten:
        log.info("deleted %d expired sessions and %d old login failure counts", gone, forgotten)


async def purge_used_signatures(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Forget the used signatures that have expired: a replay of one is refused as expired."""
    async with sessions.begin() as db:
        forgotten = await used_signatures.purge(db)
    if forgotten:
        log.info("deleted %d used signatures past their expiry", forgotten)


async def run_once(
    runner: JobRunner, sessions: async_sessionmaker[AsyncSession], session_lifetime: int
) -> None:
    """One round; a step that fails is logged and the next still runs."""
    steps: tuple[tuple[str, Callable[[], Awaitable[object]]], ...] = (
        ("heartbeat", runner.heartbeat),
        ("sweeping stale jobs", runner.sweep),
        ("purging login records", lambda: purge_login_records(sessions, session_lifetime)),
        ("purging used signatures", lambda: purge_used_signatures(sessions)),
    )
    for name, step in steps:
        try:
            await step()
        except Exception:
            log.exception("%s failed; will try again", name)


async def run_forever(
    runner: JobRunner, sessions: async_sessionmaker[AsyncSession], session_lifetime: int
) -> None:
    """run_once() every sweep interval (the runner's) until cancelled."""
    while True:
        await asyncio.sleep(runner.ownership.sweep_interval)
        await run_once(runner, sessions, session_lifetime)


async def collect_data_garbage(archives: DataArchives, interval: float) -> None:
    """Delete the zips older than diagnostics.data.max.file.age now and every `interval`
    seconds (diagnostics.data.gc.interval) until cancelled."""
    while True:
        try:
            removed = await asyncio.to_thread(archives.collect_garbage)
            if removed:
                log.info(
                    "deleted %d diagnostics data zips older than %d s", removed, archives.max_age
                )
        except OSError as exc:
            log.warning("could not delete old diagnostics data zips: %s", exc)
        await asyncio.sleep(interval)
