"""What every list command shares: pagination, keyword search, dates, the list envelope."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.api.errors import ApiError

#: Rows per page when the caller gives no `pagesize` (CloudStack's default.page.size), so
#: that no list answers with every row of a large table.
DEFAULT_PAGESIZE = 500
#: `pagesize=-1`: every row, as CloudStack's PAGESIZE_UNLIMITED (then `page` is refused).
UNLIMITED = -1


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
    size = params.get("pagesize", DEFAULT_PAGESIZE)
    if size == UNLIMITED and "page" in params:
        raise ApiError.param(
            "Can't specify page parameter when pagesize is -1 (Unlimited)", name="page"
        )
    if size == 0:
        raise ApiError.param(
            "Page size can't be 0: give 1 to 10000, or -1 for all", name="pagesize"
        )
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    if size != UNLIMITED:
        query = query.limit(size).offset((params.get("page", 1) - 1) * size)
    rows = list((await db.execute(query)).scalars())
    return rows, total
