"""PostgreSQL's pool and reads: a connection that rested is tested before use, one in steady
use is not; a read runs without a transaction.

The local PostgreSQL (tests/databases.py); a cut connection is a real one, its backend
terminated by the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cloudiag.db import engine as engine_module
from cloudiag.db.engine import create_engine, reading, session_factory
from tests.databases import PG_ADMIN_URL, create_pg_database, drop_pg_database

#: Seconds a connection must rest here before it is tested (the real bound is longer).
RESTED = 0.2


@pytest.fixture
async def pg(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[AsyncEngine, list[str]]]:
    """An engine on a fresh database with a pool of one, and the pings it made."""
    monkeypatch.setattr(engine_module, "IDLE_PING", RESTED)
    url = await create_pg_database()
    engine = create_engine(url)
    # One connection: every checkout is the same pooled connection (or its replacement).
    engine.sync_engine.pool._pool.maxsize = 1  # type: ignore[attr-defined]
    pings: list[str] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_conn: Any) -> bool:
        pings.append("ping")
        return ping(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    try:
        yield engine, pings
    finally:
        await engine.dispose()
        await drop_pg_database(url)


async def _backend(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(pid: int) -> None:
    admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        # Gone once the server no longer lists it.
        for _ in range(100):
            if not await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
            ):
                return
            await asyncio.sleep(0.02)
    finally:
        await admin.close()


async def test_a_connection_in_steady_use_is_not_tested(pg: tuple[AsyncEngine, list[str]]) -> None:
    engine, pings = pg
    first = await _backend(engine)
    for _ in range(5):
        assert await _backend(engine) == first
    assert pings == []


async def test_a_rested_connection_that_was_cut_is_replaced_before_use(
    pg: tuple[AsyncEngine, list[str]],
) -> None:
    engine, pings = pg
    first = await _backend(engine)
    await _terminate(first)
    await asyncio.sleep(RESTED * 2)
    # The pooled connection is dead: its test finds it so, and the pool makes another.
    second = await _backend(engine)
    assert second != first
    assert pings == ["ping"]
    # That one is new: not tested at its first checkout.
    assert await _backend(engine) == second
    assert pings == ["ping"]


async def _two_clock_readings(db: AsyncSession) -> tuple[Any, Any]:
    """now() twice, apart: the same inside one transaction, not in autocommit."""
    first = (await db.execute(text("SELECT now()"))).scalar_one()
    await asyncio.sleep(0.05)
    return first, (await db.execute(text("SELECT now()"))).scalar_one()


async def test_a_read_runs_without_a_transaction_on_postgresql(
    pg: tuple[AsyncEngine, list[str]],
) -> None:
    engine, _ = pg
    sessions = session_factory(engine)
    async with sessions() as db:
        first, second = await _two_clock_readings(db)
    assert first == second  # One transaction (BEGIN … ROLLBACK) around them.
    async with reading(sessions) as db:
        first, second = await _two_clock_readings(db)
    assert first != second  # Each statement on its own: no BEGIN, no ROLLBACK.
    # The connection went back to the pool as it was: in transactions again.
    async with sessions() as db:
        first, second = await _two_clock_readings(db)
    assert first == second
