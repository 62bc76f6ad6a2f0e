"""List commands page their rows: 500 (CloudStack's default.page.size) unless asked otherwise,
and `count` is always the total."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import cloudiag.api.commands  # noqa: F401  (registers the commands)
from cloudiag.accounts.secret_box import SecretBox
from cloudiag.api.context import AppState, Caller, RequestContext
from cloudiag.api.errors import ApiError
from cloudiag.api.registry import REGISTRY
from cloudiag.db.models import Event, Zone
from cloudiag.domain import DomainError
from cloudiag.services.paging import DEFAULT_PAGESIZE
from cloudiag.settings import Settings

ZONES = 1201
EVENTS = 600
ADMIN = Caller("u1", "admin", "Admin", "a1", "d1")


@pytest.fixture
async def sessions(
    db: async_sessionmaker[AsyncSession],
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A database with more zones and events than one default page holds."""
    async with db.begin() as s:
        s.add_all(Zone(id=f"z{i:05}", name=f"zone-{i:05}") for i in range(ZONES))
        s.add_all(
            Event(
                type="ROUTER.DIAGNOSTICS",
                state="Completed",
                description=f"event {i}",
                user_id="u1",
                username="admin",
                account_id="a1",
                domain_id="d1",
            )
            for i in range(EVENTS)
        )
    yield db


async def _list(
    sessions: async_sessionmaker[AsyncSession], command: str, **params: str
) -> dict[str, Any]:
    cmd = REGISTRY.get(command)
    assert cmd is not None
    app = AppState(
        Settings(),
        sessions,
        runner=None,  # type: ignore[arg-type]
        nc=None,  # type: ignore[arg-type]
        secrets=SecretBox.generate(),
    )
    try:
        return await cmd.handler(RequestContext(app=app, caller=ADMIN), cmd.validate(params))
    except DomainError as refusal:  # As the API endpoint reports a service's refusal.
        raise ApiError.from_domain(refusal) from refusal


@pytest.mark.parametrize(
    ("params", "first", "rows"),
    [
        ({}, 0, DEFAULT_PAGESIZE),
        ({"page": "2"}, 500, 500),
        ({"page": "3"}, 1000, 201),
        ({"pagesize": "1000"}, 0, 1000),
        ({"page": "2", "pagesize": "1000"}, 1000, 201),
        ({"page": "5"}, None, 0),
    ],
)
async def test_zones_come_a_page_at_a_time(
    sessions: async_sessionmaker[AsyncSession],
    params: dict[str, str],
    first: int | None,
    rows: int,
) -> None:
    listed = await _list(sessions, "listZones", **params)
    assert listed["count"] == ZONES
    zones = listed.get("zone", [])
    assert len(zones) == rows
    if first is not None:
        assert zones[0]["name"] == f"zone-{first:05}"


async def test_events_without_paging_are_the_newest_default_page(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    listed = await _list(sessions, "listEvents")
    assert listed["count"] == EVENTS
    assert len(listed["event"]) == DEFAULT_PAGESIZE


async def test_pagesize_minus_one_is_every_row_as_in_cloudstack(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    answer = await _list(sessions, "listZones", pagesize="-1")
    assert answer["count"] == ZONES and len(answer["zone"]) == ZONES
    for bad in ({"pagesize": "-1", "page": "1"}, {"pagesize": "0"}, {"pagesize": "-2"}):
        with pytest.raises(ApiError) as refused:
            await _list(sessions, "listZones", **bad)
        assert refused.value.errorcode == 431
