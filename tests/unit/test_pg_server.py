"""tests/pg_server.py: a PostgreSQL of the test's own that stops, starts, keeps its data
and leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from cloudiag.db.engine import create_engine
from tests.pg_server import PgServer, pg_server


def _postmaster_pid(pg: PgServer) -> int:
    return int((pg.data_dir / "postmaster.pid").read_text().split()[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM kept"))
    finally:
        await conn.close()


def test_serves_stops_starts_and_keeps_its_data() -> None:
    with pg_server({"max_connections": "12"}) as pg:
        assert pg.url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")
        assert pg.port != 5432  # never the machine's own PostgreSQL

        async def scenario() -> None:
            engine = create_engine(pg.url)
            try:
                async with engine.begin() as conn:
                    assert (await conn.execute(text("SHOW max_connections"))).scalar() == "12"
                    await conn.execute(text("CREATE TABLE kept (x int)"))
                    await conn.execute(text("INSERT INTO kept VALUES (1)"))
            finally:
                await engine.dispose()
            for mode in ("fast", "immediate"):
                pg.stop(mode)  # type: ignore[arg-type]
                assert not pg.running()
                with pytest.raises(OSError):
                    await asyncpg.connect(pg.dsn)
                pg.start()
                assert await _count(pg.dsn) == 1  # committed data survives even a crash

        asyncio.run(scenario())
        # Served over the socket in its own directory, too.
        assert (pg.socket_dir / f".s.PGSQL.{pg.port}").exists()


def test_removes_everything_even_when_the_test_fails() -> None:
    root: Path | None = None
    pid = 0
    with pytest.raises(RuntimeError, match="the test failed"):
        with pg_server() as pg:
            root, pid = pg.root, _postmaster_pid(pg)
            assert _alive(pid)
            raise RuntimeError("the test failed")
    assert root is not None and not root.exists()
    assert not _alive(pid)


def test_removes_everything_when_the_test_left_it_stopped() -> None:
    with pg_server() as pg:
        root = pg.root
        pg.stop()
    assert not root.exists()
