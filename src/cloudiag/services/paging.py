"""One page of a query, as CloudStack's list commands page their rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.domain import InvalidInput

#: Rows per page when the caller gives no `pagesize` (CloudStack's default.page.size), so
#: that no list answers with every row of a large table.
DEFAULT_PAGESIZE: Final = 500
#: `pagesize=-1`: every row, as CloudStack's PAGESIZE_UNLIMITED (then `page` is refused).
UNLIMITED: Final = -1


@dataclass(frozen=True)
class Paging:
    """Which page of a list the caller asks for; `number` None when it names none."""

    number: int | None = None
    size: int = DEFAULT_PAGESIZE

    def check(self) -> None:
        """Refuse what CloudStack refuses: a page of an unlimited list, a size of 0."""
        if self.size == UNLIMITED and self.number is not None:
            raise InvalidInput(
                "Can't specify page parameter when pagesize is -1 (Unlimited)", param="page"
            )
        if self.size == 0:
            raise InvalidInput(
                "Page size can't be 0: give 1 to 10000, or -1 for all", param="pagesize"
            )

    def slice(self, rows: list[Any]) -> list[Any]:
        """This page of rows already fetched (for a filter the database cannot apply)."""
        self.check()
        if self.size == UNLIMITED:
            return rows
        start = ((self.number or 1) - 1) * self.size
        return rows[start : start + self.size]


async def page(
    db: AsyncSession, query: Select[Any], paging: Paging, *, rows: bool = False
) -> tuple[list[Any], int]:
    """One page of a query's results and the total count of its rows: its first column's
    values (the entities of an ORM query), or with `rows` its whole rows."""
    paging.check()
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    if paging.size != UNLIMITED:
        query = query.limit(paging.size).offset(((paging.number or 1) - 1) * paging.size)
    result = await db.execute(query)
    return list(result.all() if rows else result.scalars()), total
