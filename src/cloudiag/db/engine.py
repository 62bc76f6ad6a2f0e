"""Engine and session factory for SQLite (default) or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
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
        kwargs.update(pool_size=10, max_overflow=20)
    engine = create_async_engine(url, **kwargs)
    if not url.startswith("sqlite"):
        _ping_when_idle(engine)
    else:

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


#: Seconds a pooled PostgreSQL connection may rest before it is tested at its next checkout.
IDLE_PING = 1.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Test a pooled connection before it is handed out, if it rested over IDLE_PING.

    A connection that a database restart or a failover cut is replaced before anyone uses it,
    as pool_pre_ping would, but without pre_ping's three round trips (BEGIN, ping, ROLLBACK
    with asyncpg) for a connection in steady use: one that fails in use is replaced as well
    (SQLAlchemy then renews the whole pool), the API answers that call "unavailable", and
    the results consumer tries again.
    """
    pool = engine.sync_engine

    @event.listens_for(pool, "checkin")
    def _rested_from(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        # Not there for a connection just made (the pool clears info with a new connection).
        checked_in = record.info.get("checked_in")
        if checked_in is None or time.monotonic() - checked_in <= IDLE_PING:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # The pool drops this connection and checks out another (a fresh one, at worst).
            raise DisconnectionError(str(exc)) from exc


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


@contextlib.asynccontextmanager
async def reading(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for a read that needs no transaction around it (one statement).

    On PostgreSQL its statements run in autocommit: no BEGIN and no ROLLBACK, two round
    trips fewer for one SELECT. SQLite opens no transaction for a read anyway.
    """
    async with sessions() as db:
        if not is_sqlite(db):
            await db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield db
