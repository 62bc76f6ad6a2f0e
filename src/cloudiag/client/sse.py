"""Server-Sent Events read from a response's lines (the subset /client/stream sends)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

__all__ = ["ServerSentEvent", "read_events"]


@dataclass(frozen=True)
class ServerSentEvent:
    """One event: its name (``message`` when the server gave none) and its data."""

    event: str
    data: str


async def read_events(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    """The events in ``lines`` (without line ends), each yielded at the blank line ending it.

    Comments (``: keepalive``) are skipped; several ``data`` lines join with a line break, as
    the SSE specification says; fields other than ``event`` and ``data`` are ignored.
    """
    name, data = "", list[str]()
    async for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(name or "message", "\n".join(data))
            name, data = "", []
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
