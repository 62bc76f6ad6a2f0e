"""Migrations: they build the schema the models declare, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import secrets
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

PG_ADMIN_URL = os.environ.get("CLOUDIAG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An empty database of each backend (PostgreSQL: a fresh database, dropped after)."""
    if request.param == "sqlite":
        eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
        yield eng
        await eng.dispose()
        return
    name = "cloudiag_mig_" + secrets.token_hex(4)
    try:
        await _pg(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"CI must run the PostgreSQL tests, but {PG_ADMIN_URL} failed: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    eng = create_engine(f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}")
    try:
        yield eng
    finally:
        await eng.dispose()
        await _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
