"""Sessions end at their absolute lifetime; the periodic round deletes dead login records."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.models import LoginFailure, Session, User, utcnow
from cloudiag.services import accounts, housekeeping, throttle
from cloudiag.settings import Settings

LIFETIME = 3600
TIMEOUT = 1800


async def _user(db: async_sessionmaker[AsyncSession]) -> User:
    async with db.begin() as s:
        user = User(
            username="u", role="User", password_hash="x", api_key="k", secret_key="s", domain_id="d"
        )
        s.add(user)
    return user


async def _login(db: async_sessionmaker[AsyncSession], user: User, age: float) -> tuple[str, str]:
    """A session opened `age` seconds ago (and kept active since)."""
    async with db.begin() as s:
        ids = await accounts.open_session(s, user, TIMEOUT, LIFETIME)
        row = await s.get(Session, accounts._digest(ids[0]))
        assert row is not None
        row.created = utcnow() - timedelta(seconds=age)
    return ids


async def _use(db: async_sessionmaker[AsyncSession], ids: tuple[str, str]) -> User | None:
    async with db.begin() as s:
        return await accounts.session_user(s, *ids, TIMEOUT, LIFETIME)


async def test_an_active_session_ends_at_its_lifetime(db: async_sessionmaker[AsyncSession]) -> None:
    user = await _user(db)
    young, old = await _login(db, user, 60), await _login(db, user, LIFETIME + 1)
    assert await _use(db, young) is not None
    assert await _use(db, old) is None  # used a moment ago, but logged in too long ago
    async with db() as s:
        assert len((await s.execute(select(Session))).all()) == 1


async def test_renewal_stops_at_the_lifetime(db: async_sessionmaker[AsyncSession]) -> None:
    user = await _user(db)
    ids = await _login(db, user, LIFETIME - 60)
    assert await _use(db, ids) is not None
    async with db() as s:
        row = (await s.execute(select(Session))).scalar_one()
    assert row.expires == row.created + timedelta(seconds=LIFETIME)


async def test_a_session_never_outlives_a_short_lifetime(
    db: async_sessionmaker[AsyncSession],
) -> None:
    user = await _user(db)
    async with db.begin() as s:
        await accounts.open_session(s, user, timeout=1800, lifetime=600)
    async with db() as s:
        row = (await s.execute(select(Session))).scalar_one()
    assert row.expires - row.created == timedelta(seconds=600)


async def test_expired_and_too_old_sessions_are_purged(
    db: async_sessionmaker[AsyncSession],
) -> None:
    user = await _user(db)
    live = await _login(db, user, 60)
    await _login(db, user, LIFETIME + 1)
    idle = await _login(db, user, 60)
    async with db.begin() as s:
        row = await s.get(Session, accounts._digest(idle[0]))
        assert row is not None
        row.expires = utcnow() - timedelta(seconds=1)
    async with db.begin() as s:
        assert await housekeeping.purge_sessions(s, lifetime=LIFETIME) == 2
    assert await _use(db, live) is not None


async def test_only_login_failures_that_no_longer_count_are_purged(
    db: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    window = throttle.Policy().window
    rows = {
        "recent|10.0.0.1": (now - timedelta(minutes=1), None),
        "old|10.0.0.1": (now - window - timedelta(minutes=1), None),
        "old-lock-over|*": (now - window - timedelta(minutes=1), now - timedelta(seconds=1)),
        "old-still-locked|*": (now - window - timedelta(minutes=1), now + timedelta(minutes=1)),
    }
    async with db.begin() as s:
        for key, (first, locked_until) in rows.items():
            s.add(LoginFailure(key=key, count=7, first=first, locked_until=locked_until))
    async with db.begin() as s:
        assert await housekeeping.purge_login_failures(s, now) == 2
    async with db() as s:
        left = set((await s.execute(select(LoginFailure.key))).scalars())
    assert left == {"recent|10.0.0.1", "old-still-locked|*"}


class Steps:
    """A runner whose heartbeat fails: the round goes on to the other steps."""

    def __init__(self) -> None:
        self.swept = False

    async def heartbeat(self) -> None:
        raise OSError("database unreachable")

    async def sweep(self) -> int:
        self.swept = True
        return 0


async def test_the_periodic_round_purges_and_survives_a_failing_step(
    db: async_sessionmaker[AsyncSession],
) -> None:
    user = await _user(db)
    await _login(db, user, 2 * 86400)  # past the default 24 h lifetime
    runner = Steps()
    await housekeeping.run_once(runner, db, 86400)  # type: ignore[arg-type]
    assert runner.swept
    async with db() as s:
        assert (await s.execute(select(Session))).first() is None


def test_the_lifetime_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().session_lifetime == 86400
    monkeypatch.setenv("CLOUDIAG_SESSION_LIFETIME", "7200")
    assert Settings().session_lifetime == 7200
    for bad in ("0", "x", str(31 * 86400)):
        monkeypatch.setenv("CLOUDIAG_SESSION_LIFETIME", bad)
        with pytest.raises(ValidationError, match="session_lifetime"):
            Settings()
