"""Password hashing from async code: in the bounded argon2 pool; weak hashes upgraded."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.accounts import passwords
from cloudiag.db.engine import create_engine, session_factory
from cloudiag.db.migrate import upgrade
from cloudiag.services import accounts


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.sqlite'}")
    await upgrade(engine)
    yield session_factory(engine)
    await engine.dispose()


async def test_creating_users_hashes_in_the_bounded_pool(
    db: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each hash holds 64 MiB: a burst of user creations runs at most _MAX_WORKERS at once."""
    lock, running, peak = threading.Lock(), [0], [0]

    def slow_hash(password: str) -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return f"hash-of-{password}"

    monkeypatch.setattr(passwords, "hash_password", slow_hash)

    async def create(n: int) -> None:
        async with db.begin() as s:
            await accounts.create_user(s, f"user{n}", "user", f"password-{n}")

    await asyncio.gather(*(create(n) for n in range(4 * passwords._MAX_WORKERS + 4)))
    assert 1 <= peak[0] <= passwords._MAX_WORKERS
