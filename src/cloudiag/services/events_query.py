"""The audit trail as callers may read it (jobs/events.py writes it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.models import Event
from cloudiag.domain import Caller
from cloudiag.services.accounts import ROLES
from cloudiag.services.paging import Paging, page


def _scope(query: Select[Any], caller: Caller, wider: bool) -> Select[Any]:
    """The events a caller may list, as CloudStack scopes them.

    Its own account's, unless it asks wider (listall=true, or one event by id): then a root
    admin sees every event and a domain admin those of its domain; a user, its own still
    (CloudStack's AccountManager.buildACLSearchParameters).
    """
    if wider and caller.is_admin:
        return query
    if wider and caller.role == ROLES["domainadmin"]:
        return query.where(Event.domain_id == caller.domain_id)
    return query.where(Event.account_id == caller.account_id)


async def list_events(
    sessions: async_sessionmaker[AsyncSession],
    caller: Caller,
    paging: Paging,
    *,
    listall: bool = False,
    event_id: str | None = None,
    event_type: str | None = None,
    level: str | None = None,
    resource_id: str | None = None,
    keyword: str | None = None,
) -> tuple[list[Event], int]:
    """One page of the events, newest first: the caller's own, or (listall) all it may see."""
    query = select(Event).order_by(Event.created.desc(), Event.id)
    query = _scope(query, caller, listall or event_id is not None)
    for column, value in (
        (Event.id, event_id),
        (Event.type, event_type),
        (Event.level, level),
        (Event.resource_id, resource_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if keyword:
        query = query.where(
            or_(Event.description.ilike(f"%{keyword}%"), Event.type.ilike(f"%{keyword}%"))
        )
    async with sessions() as db:
        return await page(db, query, paging)
