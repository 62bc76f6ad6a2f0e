"""The SQLite driver: SQLAlchemy's statements, each in one trip to the connection's thread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudiag.db import sqlite_driver
from cloudiag.db.engine import create_engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


async def test_rows_counts_and_ids_come_back(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        assert inserted.rowcount == 1 and inserted.lastrowid == 1
        many = await conn.execute(
            text("INSERT INTO t (name) VALUES (:n)"), [{"n": "b"}, {"n": "c"}]
        )
        assert many.rowcount == 2
        returned = await conn.execute(text("INSERT INTO t (name) VALUES ('d') RETURNING id"))
        assert returned.scalar_one() == 4
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, name FROM t ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
        first = (await conn.execute(text("SELECT name FROM t ORDER BY id"))).first()
        assert first is not None and first[0] == "a"
        updated = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id > 2"))
        assert updated.rowcount == 2
        await conn.rollback()
        names = (await conn.execute(text("SELECT name FROM t WHERE id > 2"))).scalars().all()
        assert names == ["c", "d"]


async def test_errors_are_the_drivers(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))


async def test_a_statement_is_one_trip(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[str] = []
    run = sqlite_driver.OneTripConnection.run

    async def counted(self: sqlite_driver.OneTripConnection, function: Any, *args: Any) -> Any:
        trips.append(args[0])
        return await run(self, function, *args)

    monkeypatch.setattr(sqlite_driver.OneTripConnection, "run", counted)
    async with engine.connect() as conn:
        trips.clear()
        await conn.execute(text("SELECT 1"))
        await conn.execute(text("SELECT 2"))
    assert trips == ["SELECT 1", "SELECT 2"]


async def test_reads_end_without_a_trip_writes_end_with_one(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every trip goes through aiosqlite's queue to the connection's thread.
    trips: list[str] = []
    execute = sqlite_driver.OneTripConnection._execute

    async def counted(self: sqlite_driver.OneTripConnection, fn: Any, *args: Any) -> Any:
        trips.append(getattr(fn, "__name__", "statement"))
        return await execute(self, fn, *args)

    monkeypatch.setattr(sqlite_driver.OneTripConnection, "_execute", counted)
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        trips.clear()
    # The pool's rollback of a connection that only read: no transaction, no trip.
    assert trips == []
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES ('x')"))
        trips.clear()
    assert trips == ["rollback"]
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES ('y')"))
        trips.clear()
    assert trips == ["commit"]
    async with engine.connect() as conn:
        names = (await conn.execute(text("SELECT name FROM t"))).scalars().all()
    assert names == ["y"]
