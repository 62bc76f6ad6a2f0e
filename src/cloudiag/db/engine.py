"""Engine and session factory for SQLite (default) or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from cloudiag.db import sqlite_driver


def normalize_url(url: str) -> str:
    """Pick the asyncio driver when the URL names only the database kind."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+asyncpg")
    elif u.drivername == "sqlite":
        u = u.set(drivername="sqlite+aiosqlite")
    return u.render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL and a busy timeout so the API and jobs don't collide."""
    url = normalize_url(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        db = make_url(url).database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        # One trip to the connection's thread per statement (db/sqlite_driver.py).
        kwargs["connect_args"] = {"timeout": 30, "async_creator_fn": sqlite_driver.connect}
    else:
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


_sqlite_writers = asyncio.Lock()


def is_sqlite(db: AsyncSession) -> bool:
    """Whether the session's database is SQLite (no row locks: see locked_transaction)."""
    return db.get_bind().dialect.name == "sqlite"


@contextlib.asynccontextmanager
async def locked_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A transaction whose SELECT … FOR UPDATE really serializes its callers.

    PostgreSQL locks the rows. SQLite has no row locks (and serves one server only), so
    there an in-process lock stands in, around the whole transaction, taken before the
    transaction's connection. SQLite lets one writer in at a time anyway: queued here, its
    writers wait in order on the event loop rather than in SQLite's busy handler, which
    sleeps. Keep such transactions to their writes (read before).
    """
    bind = sessions.kw.get("bind")
    sqlite = bind is not None and bind.dialect.name == "sqlite"
    async with _sqlite_writers if sqlite else contextlib.nullcontext(), sessions.begin() as db:
        yield db
