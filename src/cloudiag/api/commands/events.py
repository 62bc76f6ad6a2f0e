"""listEvents: the audit trail."""

from __future__ import annotations

from typing import Any

from cloudiag.api.context import RequestContext
from cloudiag.api.listing import cs_date, list_payload, paging
from cloudiag.api.registry import (
    LIST_PARAMS,
    LISTALL,
    REGISTRY,
    Command,
    Param,
    ResponseField,
)
from cloudiag.services import events_query


async def list_events(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Events, newest first: the caller's own, or (listall=true) all it may see."""
    rows, total = await events_query.list_events(
        ctx.app.db,
        ctx.user,
        paging(params),
        listall=bool(params.get("listall")),
        event_id=params.get("id"),
        event_type=params.get("type"),
        level=params.get("level"),
        resource_id=params.get("resourceid"),
        keyword=params.get("keyword"),
    )
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
