"""listEvents scopes as CloudStack does: the caller's own events unless it asks for more."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.accounts.secret_box import SecretBox
from cloudiag.api.commands.events import list_events
from cloudiag.api.context import AppState, Caller, RequestContext
from cloudiag.db.models import Event
from cloudiag.settings import Settings

ADMIN = Caller("u-admin", "admin", "Admin", "a-admin", "root")
DOMAIN_ADMIN = Caller("u-dadmin", "dadmin", "DomainAdmin", "a-dadmin", "root")
USER = Caller("u-user", "user", "User", "a-user", "root")
#: Someone of another domain.
STRANGER = Caller("u-far", "far", "User", "a-far", "elsewhere")


@pytest.fixture
async def db(
    db: async_sessionmaker[AsyncSession],
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The test's database with one event of each caller."""
    sessions = db
    async with sessions.begin() as s:
        for who in (ADMIN, DOMAIN_ADMIN, USER, STRANGER):
            s.add(
                Event(
                    id=f"e-{who.username}",
                    type="ROUTER.DIAGNOSTICS",
                    state="Completed",
                    description="d",
                    user_id=who.id,
                    username=who.username,
                    account_id=who.account_id,
                    domain_id=who.domain_id,
                )
            )
    yield sessions


async def _seen(db: async_sessionmaker[AsyncSession], caller: Caller, **params: Any) -> set[str]:
    state = AppState(settings=Settings(), db=db, runner=None, nc=None, secrets=SecretBox.generate())  # type: ignore[arg-type]
    answer = await list_events(RequestContext(app=state, caller=caller), params)
    return {e["username"] for e in answer.get("event", [])}


async def test_without_listall_everyone_sees_their_own(
    db: async_sessionmaker[AsyncSession],
) -> None:
    for caller in (ADMIN, DOMAIN_ADMIN, USER):
        assert await _seen(db, caller) == {caller.username}
        assert await _seen(db, caller, listall=False) == {caller.username}


async def test_listall_widens_to_what_the_role_may_see(
    db: async_sessionmaker[AsyncSession],
) -> None:
    assert await _seen(db, ADMIN, listall=True) == {"admin", "dadmin", "user", "far"}
    assert await _seen(db, DOMAIN_ADMIN, listall=True) == {"admin", "dadmin", "user"}
    assert await _seen(db, USER, listall=True) == {"user"}


async def test_one_event_by_id(db: async_sessionmaker[AsyncSession]) -> None:
    assert await _seen(db, ADMIN, id="e-far") == {"far"}
    assert await _seen(db, DOMAIN_ADMIN, id="e-user") == {"user"}
    assert await _seen(db, DOMAIN_ADMIN, id="e-far") == set()
    assert await _seen(db, USER, id="e-admin") == set()
