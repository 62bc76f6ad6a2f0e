"""Migrations: they build the schema the models declare, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from cloudiag.db.engine import create_engine
from cloudiag.db.migrate import alembic_config, upgrade
from cloudiag.db.models import AsyncJob, Base, utcnow
from tests.databases import create_pg_database, drop_pg_database, sqlite_url


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An empty database of each backend (PostgreSQL: a fresh database, dropped after)."""
    if request.param == "sqlite":
        eng = create_engine(sqlite_url(tmp_path))
        yield eng
        await eng.dispose()
        return
    url = await create_pg_database("cloudiag_mig_")
    eng = create_engine(url)
    try:
        yield eng
    finally:
        await eng.dispose()
        await drop_pg_database(url)


def _indexes(conn: Connection, table: str) -> dict[str, list[Any]]:
    return {ix["name"]: ix["column_names"] for ix in inspect(conn).get_indexes(table)}


async def test_migrations_build_what_the_models_declare(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    assert diff == []


async def test_jobs_are_indexed_by_user_and_time(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with engine.connect() as conn:
        indexes = await conn.run_sync(_indexes, "async_jobs")
    assert indexes["ix_async_jobs_user_created"] == ["user_id", "created"]


async def test_0003_downgrades_and_upgrades_again(engine: AsyncEngine) -> None:
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0002"))
        assert "ix_async_jobs_user_created" not in await conn.run_sync(_indexes, "async_jobs")
    await upgrade(engine)
    async with engine.connect() as conn:
        assert "ix_async_jobs_user_created" in await conn.run_sync(_indexes, "async_jobs")


async def test_rate_limit_query_uses_the_index(tmp_path: Path) -> None:
    """SQLite's plan for the per-user count over a time window (quotas.check) searches it."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'plan.sqlite'}")
    try:
        await upgrade(engine)
        query = select(AsyncJob.id).where(AsyncJob.user_id == "u", AsyncJob.created > utcnow())
        sql = str(query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True}))
        async with engine.connect() as conn:
            plan = " ".join(
                str(row) for row in await conn.execute(text("EXPLAIN QUERY PLAN " + sql))
            )
        assert "ix_async_jobs_user_created" in plan
    finally:
        await engine.dispose()
