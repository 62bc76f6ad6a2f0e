"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.engine import create_engine, session_factory
from cloudiag.db.migrate import upgrade
from tests.databases import sqlite_url


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """An empty, migrated SQLite database of this test's own (override to add rows)."""
    engine = create_engine(sqlite_url(tmp_path))
    await upgrade(engine)
    yield session_factory(engine)
    await engine.dispose()
