"""Fresh test databases: a SQLite file, or a new PostgreSQL database dropped afterwards.

PostgreSQL is the local one (CLOUDIAG_TEST_PG, default postgres@127.0.0.1:5432/test); when it
cannot be reached its tests skip, except under CI=true where they must run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NoReturn

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.engine import create_engine, session_factory
from cloudiag.db.migrate import upgrade

PG_ADMIN_URL = os.environ.get("CLOUDIAG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def sqlite_url(folder: Path) -> str:
    """A SQLite database file in `folder`."""
    return f"sqlite+aiosqlite:///{folder / 'db.sqlite'}"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _unavailable(exc: BaseException) -> NoReturn:
    if IN_CI:
        pytest.fail(f"CI must run the PostgreSQL tests, but {PG_ADMIN_URL} failed: {exc}")
    pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")


async def create_pg_database(prefix: str = "cloudiag_test_") -> str:
    """A new, empty PostgreSQL database; its URL."""
    name = prefix + secrets.token_hex(4)
    try:
        await _admin(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        _unavailable(exc)
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"


async def drop_pg_database(url: str) -> None:
    """Drop a database made by create_pg_database, even with connections still open."""
    name = url.rsplit("/", 1)[1]
    with contextlib.suppress(OSError, asyncpg.PostgresError):
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stored_password_hash(data_dir: Path, username: str) -> str:
    """The password hash a data directory's SQLite database holds for `username`."""
    import asyncio

    from sqlalchemy import select

    from cloudiag.db.engine import create_engine, session_factory
    from cloudiag.db.models import User

    async def read() -> str:
        engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'cloudiag.db'}")
        try:
            async with session_factory(engine)() as db:
                query = select(User.password_hash).where(User.username == username)
                return str((await db.execute(query)).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(read())


@contextlib.asynccontextmanager
async def migrated(backend: str, folder: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A migrated database of that backend ("sqlite": a file in `folder`; "postgresql": a
    fresh database, dropped after)."""
    url = sqlite_url(folder) if backend == "sqlite" else await create_pg_database()
    engine = create_engine(url)
    try:
        await upgrade(engine)
        yield session_factory(engine)
    finally:
        await engine.dispose()
        if backend == "postgresql":
            await drop_pg_database(url)
