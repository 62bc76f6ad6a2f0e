"""What every list command shares: its paging parameters, dates, the list envelope."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cloudiag.services.paging import DEFAULT_PAGESIZE, Paging


def cs_date(value: datetime | None) -> str | None:
    """A date as CloudStack writes it: 2026-11-25T06:00:00+0000."""
    return value.strftime("%Y-%m-%dT%H:%M:%S%z") if value else None


def list_payload(item_key: str, items: Sequence[dict[str, Any]], count: int) -> dict[str, Any]:
    """`{"count": N, "<item>": [...]}`, or `{}` when there is nothing (as CloudStack)."""
    if count == 0 or not items:
        return {"count": count} if count else {}
    return {"count": count, item_key: list(items)}


def paging(params: dict[str, Any]) -> Paging:
    """The page a list command's validated `page` and `pagesize` ask for."""
    return Paging(params.get("page"), params.get("pagesize", DEFAULT_PAGESIZE))
