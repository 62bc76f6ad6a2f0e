"""db/transient.py judges real errors: from asyncpg and SQLAlchemy against a PostgreSQL of
the test's own (stopped, starting, full, racing), and from SQLite (a locked file)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudiag.db.engine import create_engine
from cloudiag.db.transient import is_transient
from tests.databases import sqlite_url
from tests.pg_server import PgServer, free_port, pg_server

#: Few connections, none kept for superusers: the test can exhaust them.
MAX_CONNECTIONS = 8


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    """One spare PostgreSQL for the module; a test that stops it starts it again."""
    settings = {
        "max_connections": str(MAX_CONNECTIONS),
        "superuser_reserved_connections": "0",
        "deadlock_timeout": "'100ms'",
    }
    with pg_server(settings) as server:
        yield server


@pytest.fixture
async def engine(pg: PgServer) -> AsyncIterator[AsyncEngine]:
    """An engine as the server makes it (create_engine), on the spare PostgreSQL."""
    engine = create_engine(pg.url)
    yield engine
    await engine.dispose()


async def _raised(action: Callable[[], Awaitable[Any]]) -> BaseException:
    """The error `action` raises (the test fails if it raises none)."""
    try:
        await action()
    except Exception as exc:
        return exc
    pytest.fail("no error raised")


async def _select_one(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


# --- connection refused, lost, server shut down -------------------------------------------


async def test_a_closed_port_is_transient() -> None:
    port = free_port()
    exc = await _raised(lambda: asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/x"))
    assert isinstance(exc, ConnectionRefusedError)
    assert is_transient(exc)
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/x")
    try:
        assert is_transient(await _raised(lambda: _select_one(engine)))
    finally:
        await engine.dispose()


async def test_a_stopped_server_is_transient(pg: PgServer, engine: AsyncEngine) -> None:
    await _select_one(engine)  # a pooled connection, which the stop breaks
    conn = await asyncpg.connect(pg.dsn)
    pg.stop("fast")
    try:
        lost = await _raised(lambda: conn.fetchval("SELECT 1"))
        assert isinstance(lost, asyncpg.ConnectionDoesNotExistError)  # 57P01 inside
        assert is_transient(lost)
        closed = await _raised(lambda: conn.fetchval("SELECT 1"))
        assert type(closed) is asyncpg.InterfaceError  # "connection is closed"
        assert is_transient(closed)
        assert is_transient(await _raised(lambda: _select_one(engine)))
        assert is_transient(await _raised(lambda: asyncpg.connect(pg.dsn)))
    finally:
        pg.start()
    await _select_one(engine)  # and the engine heals


async def test_a_crashed_server_is_transient(pg: PgServer, engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        pg.stop("immediate")
        try:
            exc = await _raised(lambda: conn.execute(text("SELECT 1")))
            assert isinstance(exc, DBAPIError) and exc.connection_invalidated
            assert is_transient(exc)
        finally:
            pg.start()


async def test_a_server_starting_up_is_transient(pg: PgServer, engine: AsyncEngine) -> None:
    # A standby without hot standby refuses connections with 57P03, as a server starting up
    # does, but for as long as the test needs.
    pg.stop("fast")
    standby = pg.data_dir / "standby.signal"
    standby.write_text("")
    conf = pg.data_dir / "postgresql.auto.conf"
    before = conf.read_text()
    conf.write_text(before + "hot_standby = off\n")
    try:
        pg.start(wait=False)
        exc = await _retry_until_refused(pg)
        assert isinstance(exc, asyncpg.CannotConnectNowError) and exc.sqlstate == "57P03"
        assert is_transient(exc)
        wrapped = await _raised(lambda: _select_one(engine))
        assert isinstance(wrapped, DBAPIError) and not wrapped.connection_invalidated
        assert is_transient(wrapped)
    finally:
        pg.stop("fast")
        standby.unlink()
        conf.write_text(before)
        pg.start()


async def _retry_until_refused(pg: PgServer) -> BaseException:
    """The first error other than "connection refused" (the server not yet listening)."""
    for _ in range(200):
        exc = await _raised(lambda: asyncpg.connect(pg.dsn))
        if not isinstance(exc, ConnectionRefusedError):
            return exc
        await asyncio.sleep(0.05)
    pytest.fail("the server never answered")


# --- a server that is full or busy ----------------------------------------------------------


async def test_too_many_connections_is_transient(pg: PgServer) -> None:
    conns = [await asyncpg.connect(pg.dsn) for _ in range(MAX_CONNECTIONS)]
    try:
        exc = await _raised(lambda: asyncpg.connect(pg.dsn))
        assert isinstance(exc, asyncpg.TooManyConnectionsError)
        assert is_transient(exc)
    finally:
        for conn in conns:
            await conn.close()


@pytest.fixture
async def counter(pg: PgServer) -> AsyncIterator[None]:
    """Two rows, a and b, to race on."""
    conn = await asyncpg.connect(pg.dsn)
    await conn.execute("CREATE TABLE counter (name text PRIMARY KEY, n int)")
    await conn.execute("INSERT INTO counter VALUES ('a', 0), ('b', 0)")
    yield
    await conn.execute("DROP TABLE counter")
    await conn.close()


@pytest.mark.usefixtures("counter")
async def test_a_serialization_failure_is_transient(engine: AsyncEngine) -> None:
    first = await engine.connect()
    second = await engine.connect()
    try:
        for conn in (first, second):
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            await conn.begin()
            await conn.execute(text("SELECT n FROM counter WHERE name = 'a'"))
        await first.execute(text("UPDATE counter SET n = n + 1 WHERE name = 'a'"))
        await first.commit()
        update = text("UPDATE counter SET n = n + 1 WHERE name = 'a'")
        exc = await _raised(lambda: second.execute(update))
        assert isinstance(exc, DBAPIError) and exc.orig.sqlstate == "40001"  # type: ignore[union-attr]
        assert is_transient(exc)
    finally:
        await first.close()
        await second.close()


@pytest.mark.usefixtures("counter")
async def test_a_deadlock_is_transient(pg: PgServer) -> None:
    first, second = await asyncpg.connect(pg.dsn), await asyncpg.connect(pg.dsn)
    try:
        lock = "UPDATE counter SET n = n + 1 WHERE name = $1"
        tx1, tx2 = first.transaction(), second.transaction()
        await tx1.start()
        await tx2.start()
        await first.execute(lock, "a")
        await second.execute(lock, "b")
        results = await asyncio.gather(
            first.execute(lock, "b"), second.execute(lock, "a"), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], asyncpg.DeadlockDetectedError)
        assert is_transient(errors[0])
    finally:
        await first.close()
        await second.close()


# --- errors of the statement: not transient -----------------------------------------------


async def test_statement_errors_are_not_transient(pg: PgServer, engine: AsyncEngine) -> None:
    async def run(sql: str) -> None:
        async with engine.begin() as conn:
            await conn.execute(text(sql))

    for sql in ("SELECT * FROM nosuch", "SELEC 1", "SELECT 1/0", "SELECT 'x'::int"):
        exc = await _raised(lambda sql=sql: run(sql))  # type: ignore[misc]
        assert isinstance(exc, DBAPIError)
        assert not is_transient(exc), sql
    assert not is_transient(ValueError("no database involved"))


async def test_a_unique_violation_is_not_transient(pg: PgServer) -> None:
    conn = await asyncpg.connect(pg.dsn)
    try:
        await conn.execute("CREATE TEMP TABLE once (id int PRIMARY KEY)")
        await conn.execute("INSERT INTO once VALUES (1)")
        exc = await _raised(lambda: conn.execute("INSERT INTO once VALUES (1)"))
        assert isinstance(exc, asyncpg.UniqueViolationError)
        assert not is_transient(exc)
    finally:
        await conn.close()


# --- SQLite ---------------------------------------------------------------------------------


async def test_a_locked_sqlite_file_is_transient(tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    holder.execute("CREATE TABLE t (x int)")
    holder.execute("BEGIN IMMEDIATE")  # holds the write lock
    engine = create_engine(sqlite_url(tmp_path))
    try:

        async def write() -> None:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("PRAGMA busy_timeout = 0")
                await conn.execute(text("INSERT INTO t VALUES (1)"))

        exc = await _raised(write)
        assert isinstance(exc, DBAPIError) and "locked" in str(exc)
        assert is_transient(exc)
        holder.execute("ROLLBACK")
        missing = await _raised(lambda: _select_nosuch(engine))
        assert "no such table" in str(missing)
        assert not is_transient(missing)  # an OperationalError too, but of the statement
    finally:
        holder.close()
        await engine.dispose()


async def _select_nosuch(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT * FROM nosuch"))


def test_an_unopenable_sqlite_file_is_transient(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError) as caught:
        sqlite3.connect(tmp_path / "no" / "such" / "dir" / "db.sqlite")
    assert is_transient(caught.value)
