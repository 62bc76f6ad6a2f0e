"""Password hashing from async code: in the bounded argon2 pool; old hashes upgraded."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.accounts import passwords
from cloudiag.accounts.secret_box import SecretBox
from cloudiag.db.models import User
from cloudiag.services import accounts

BOX = SecretBox.generate()


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
            await accounts.create_user(s, f"user{n}", "user", f"password-{n}", box=BOX)

    await asyncio.gather(*(create(n) for n in range(4 * passwords._MAX_WORKERS + 4)))
    assert 1 <= peak[0] <= passwords._MAX_WORKERS


async def _stored_hash(db: async_sessionmaker[AsyncSession], username: str) -> str:
    async with db() as s:
        user = (await s.execute(select(User).where(User.username == username))).scalar_one()
    return user.password_hash


async def test_a_weak_hash_is_upgraded_at_login(db: async_sessionmaker[AsyncSession]) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("right password")
    async with db.begin() as s:
        await accounts.create_user(s, "old", "user", "placeholder", box=BOX)
    async with db.begin() as s:
        await s.execute(update(User).where(User.username == "old").values(password_hash=weak))
    assert passwords.needs_rehash(weak)
    async with db() as s:  # As login does: a session that only reads.
        assert await accounts.check_password(s, "old", "wrong password") is None
        assert await _stored_hash(db, "old") == weak  # never on a wrong password
        assert await accounts.check_password(s, "old", "right password") is not None
    upgraded = await _stored_hash(db, "old")
    assert upgraded != weak and not passwords.needs_rehash(upgraded)
    assert passwords.verify_password(upgraded, "right password")


async def test_a_current_hash_is_left_alone(db: async_sessionmaker[AsyncSession]) -> None:
    async with db.begin() as s:
        await accounts.create_user(s, "new", "user", "right password", box=BOX)
    before = await _stored_hash(db, "new")
    async with db() as s:
        assert await accounts.check_password(s, "new", "right password") is not None
    assert await _stored_hash(db, "new") == before
