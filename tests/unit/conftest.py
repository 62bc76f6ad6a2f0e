"""Fixtures shared by the unit tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus import subjects
from cloudiag.bus.embedded import MAX_PAYLOAD
from cloudiag.bus.streams import ensure_jetstream, stream_configs
from cloudiag.db.engine import create_engine, session_factory
from cloudiag.db.migrate import upgrade
from tests.databases import sqlite_url
from tests.unit.nats_servers import nats_process


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """An empty, migrated SQLite database of this test's own (override to add rows)."""
    engine = create_engine(sqlite_url(tmp_path))
    await upgrade(engine)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="module")
async def nats_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A nats-server with JetStream of this test module's own, with the private one's
    message limit but without authorization (the tests of the bus's permissions make
    servers of their own, with it)."""
    async with nats_process(tmp_path_factory.mktemp("nats"), f"max_payload: {MAX_PAYLOAD}") as url:
        yield url


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Client]:
    """A client of the module's nats-server, its streams and job table made afresh for
    this test (what an earlier test left in them would be taken for this one's)."""
    nc = await nats.connect(nats_url, allow_reconnect=False)
    try:
        js = nc.jetstream()
        for config in stream_configs():
            assert config.name is not None
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(config.name)
        with contextlib.suppress(NotFoundError):
            await js.delete_key_value(subjects.JOBS_BUCKET)
        await ensure_jetstream(nc)
        yield nc
    finally:
        await nc.close()
