"""The login lockout under parallel guessing: no more guesses reach a password check than
the limits allow, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.accounts import passwords
from cloudiag.accounts.secret_box import SecretBox
from cloudiag.api.commands.auth import login
from cloudiag.api.context import AppState, RequestContext
from cloudiag.api.errors import ApiError
from cloudiag.db.engine import create_engine, session_factory
from cloudiag.db.migrate import upgrade
from cloudiag.domain import DomainError
from cloudiag.services import accounts
from cloudiag.settings import Settings
from tests.databases import create_pg_database, drop_pg_database, sqlite_url

PASSWORD = "the-right-password"
LOCKED = "Too many failed login attempts"
WRONG = "please provide valid credentials"


@pytest.fixture(params=["sqlite", "postgresql"])
async def sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A migrated, empty database of each kind (PostgreSQL skipped when unreachable)."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
    else:
        url = await create_pg_database("cloudiag_unit_")
    engine = create_engine(url)
    try:
        await upgrade(engine)
        yield session_factory(engine)
    finally:
        await engine.dispose()
        if request.param == "postgresql":
            await drop_pg_database(url)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password verification, recorded; each takes a while, as argon2 does."""
    done: list[str] = []
    real = passwords.verify_password_async

    async def counted(stored_hash: str | None, password: str) -> bool:
        done.append(password)
        await asyncio.sleep(0.05)  # Long enough for every parallel attempt to be in flight.
        return await real(stored_hash, password)

    monkeypatch.setattr(passwords, "verify_password_async", counted)
    return done


async def _user(sessions: async_sessionmaker[AsyncSession]) -> str:
    name = "victim" + secrets.token_hex(3)
    async with sessions.begin() as db:
        await accounts.create_user(db, name, "user", PASSWORD, box=SecretBox.generate())
    return name


async def _login(
    sessions: async_sessionmaker[AsyncSession], username: str, password: str, source: str
) -> str:
    """'ok', or the error text of the refusal."""
    app = AppState(Settings(), sessions, runner=None, nc=None, secrets=SecretBox.generate())  # type: ignore[arg-type]
    ctx = RequestContext(app=app, caller=None, client_ip=source)
    try:
        await login(ctx, {"username": username, "password": password})
    except DomainError as refusal:
        answer = ApiError.from_domain(refusal)  # As the API endpoint reports it.
        assert answer.errorcode == 531
        return answer.errortext
    return "ok"


def _tally(answers: list[Any]) -> tuple[int, int]:
    assert all(isinstance(a, str) for a in answers), answers
    return sum(WRONG in a for a in answers), sum(LOCKED in a for a in answers)


async def test_parallel_guesses_from_one_source_get_five(
    sessions: async_sessionmaker[AsyncSession], checks: list[str]
) -> None:
    name = await _user(sessions)
    answers = await asyncio.gather(
        *(_login(sessions, name, f"guess{i}", "192.0.2.7") for i in range(30))
    )
    assert len(checks) == 5, checks
    assert _tally(answers) == (5, 25)
    # Locked from there: even the right password is refused, and not even checked.
    assert LOCKED in await _login(sessions, name, PASSWORD, "192.0.2.7")
    assert len(checks) == 5
    # Not locked everywhere yet (5 of the 20 allowed over all sources).
    assert await _login(sessions, name, PASSWORD, "192.0.2.8") == "ok"


async def test_parallel_guesses_from_many_sources_get_twenty(
    sessions: async_sessionmaker[AsyncSession], checks: list[str]
) -> None:
    name = await _user(sessions)
    answers = await asyncio.gather(
        *(_login(sessions, name, f"guess{i}", f"192.0.2.{i + 1}") for i in range(30))
    )
    assert len(checks) == 20, checks
    assert _tally(answers) == (20, 10)
    assert LOCKED in await _login(sessions, name, PASSWORD, "198.51.100.1")
    assert len(checks) == 20


async def test_a_right_password_is_not_counted_as_a_failure(
    sessions: async_sessionmaker[AsyncSession], checks: list[str]
) -> None:
    name = await _user(sessions)
    for i in range(19):
        assert WRONG in await _login(sessions, name, "wrong", f"192.0.2.{i + 1}")
    # The 20th attempt over all sources is the owner's: it succeeds, and neither it nor
    # the lock it took while in flight stays behind.
    assert await _login(sessions, name, PASSWORD, "198.51.100.1") == "ok"
    assert await _login(sessions, name, PASSWORD, "198.51.100.2") == "ok"
    # The failures still count: one more is the 20th, and that locks the user everywhere.
    assert WRONG in await _login(sessions, name, "wrong", "203.0.113.5")
    assert LOCKED in await _login(sessions, name, PASSWORD, "203.0.113.6")


async def test_a_right_password_clears_its_source(
    sessions: async_sessionmaker[AsyncSession], checks: list[str]
) -> None:
    name = await _user(sessions)
    for _ in range(2):
        for _ in range(4):
            assert WRONG in await _login(sessions, name, "wrong", "192.0.2.1")
        assert await _login(sessions, name, PASSWORD, "192.0.2.1") == "ok"
