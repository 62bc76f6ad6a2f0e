"""listEvents: the audit trail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, or_, select

from cloudiag.api.context import RequestContext
from cloudiag.api.listing import cs_date, list_payload, page
from cloudiag.api.registry import (
    ADMIN,
    DOMAIN_ADMIN,
    LIST_PARAMS,
    LISTALL,
    REGISTRY,
    Command,
    Param,
    ResponseField,
)
from cloudiag.db.models import Event
from cloudiag.domain import Caller


def _scope(query: Select[Any], caller: Caller, params: dict[str, Any]) -> Select[Any]:
    """The events a caller may list, as CloudStack scopes them.

    Its own account's, unless it asks wider (listall=true, or one event by id): then a root
    admin sees every event and a domain admin those of its domain; a user, its own still
    (CloudStack's AccountManager.buildACLSearchParameters).
    """
    wider = bool(params.get("listall")) or "id" in params
    if wider and caller.role == ADMIN:
        return query
    if wider and caller.role == DOMAIN_ADMIN:
        return query.where(Event.domain_id == caller.domain_id)
    return query.where(Event.account_id == caller.account_id)


async def list_events(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Events, newest first: the caller's own, or (listall=true) all it may see."""
    query = _scope(select(Event).order_by(Event.created.desc(), Event.id), ctx.user, params)
    for key, column in (("id", Event.id), ("type", Event.type), ("level", Event.level)):
        if key in params:
            query = query.where(column == params[key])
    if "resourceid" in params:
        query = query.where(Event.resource_id == params["resourceid"])
    if kw := params.get("keyword"):
        query = query.where(or_(Event.description.ilike(f"%{kw}%"), Event.type.ilike(f"%{kw}%")))
    async with ctx.app.db() as db:
        rows, total = await page(db, query, params)
    items = [
        {
            "id": e.id,
            "type": e.type,
            "level": e.level,
            "state": e.state,
            "description": e.description,
            "username": e.username,
            "account": e.username,
            "userid": e.user_id,
            "domainid": e.domain_id,
            "domain": "ROOT",
            "resourceid": e.resource_id,
            "resourcetype": e.resource_type,
            "jobid": e.job_id,
            "created": cs_date(e.created),
        }
        for e in rows
    ]
    return list_payload("event", items, total)


REGISTRY.add(
    Command(
        "listEvents",
        "A command to list events.",
        list_events,
        params=(
            Param("id", "uuid", "the ID of the event"),
            Param("type", "string", "the event type (see event types)"),
            Param("level", "string", "the event level", choices=("INFO", "WARN", "ERROR")),
            Param("resourceid", "uuid", "the ID of the resource the event concerns"),
            LISTALL,
            *LIST_PARAMS,
        ),
        response=(
            ResponseField("id", "string", "the ID of the event"),
            ResponseField("type", "string", "the type of the event"),
            ResponseField("level", "string", "the event level (INFO, WARN, ERROR)"),
            ResponseField("state", "state", "the state of the event"),
            ResponseField("description", "string", "a brief description of the event"),
            ResponseField("username", "string", "the user who did it"),
            ResponseField("created", "date", "the date the event was created"),
        ),
        cmd_class="org.apache.cloudstack.api.command.user.event.ListEventsCmd",
    )
)
