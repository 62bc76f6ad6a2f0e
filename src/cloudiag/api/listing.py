"""What every list command shares: pagination, keyword search, dates, the list envelope."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

#: Rows per page when the caller gives no `pagesize` (CloudStack's default.page.size), so
#: that no list answers with every row of a large table.
DEFAULT_PAGESIZE = 500


def cs_date(value: datetime | None) -> str | None:
    """A date as CloudStack writes it: 2026-11-25T06:00:00+0000."""
    return value.strftime("%Y-%m-%dT%H:%M:%S%z") if value else None


def list_payload(item_key: str, items: Sequence[dict[str, Any]], count: int) -> dict[str, Any]:
    """`{"count": N, "<item>": [...]}`, or `{}` when there is nothing (as CloudStack)."""
    if count == 0 or not items:
        return {"count": count} if count else {}
    return {"count": count, item_key: list(items)}


async def page(
    db: AsyncSession, query: Select[Any], params: dict[str, Any]
) -> tuple[list[Any], int]:
    """One page of a query (the first, of DEFAULT_PAGESIZE rows, unless the params say
    otherwise) and the total count of rows."""
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    size = params.get("pagesize", DEFAULT_PAGESIZE)
    query = query.limit(size).offset((params.get("page", 1) - 1) * size)
    rows = list((await db.execute(query)).scalars())
    return rows, total
