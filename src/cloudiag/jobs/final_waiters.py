"""Readers waiting for a job to be final, woken in-process the moment its outcome is stored.

The server that stores an outcome wakes its own readers at once. A job whose outcome another
server (or a sweep) stores wakes nobody here: a reader looks at the job's row again after
at most its recheck interval, so a missed wake-up costs time, never an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Stored:
    """A job's outcome as it was committed: what its row says from then on, so that a
    woken reader need not read the row again."""

    status: int
    result_code: int
    result: dict[str, Any] | None
    completed: datetime


class FinalWaiters:
    """Wake-ups by job id."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Future[Stored | None]]] = {}
        self._closed = False

    def notify(self, job_id: str, stored: Stored | None = None) -> None:
        """The job's outcome was stored (or may have been: `stored` None, the reader reads
        the row): wake whoever waits for it."""
        for waiter in self._waiting.pop(job_id, ()):
            if not waiter.done():
                waiter.set_result(stored)

    @contextlib.contextmanager
    def watching(self, job_id: str) -> Iterator[asyncio.Future[Stored | None]]:
        """A future notify(job_id) resolves, from now until the block ends.

        Watch first, then read the job's row, then wait: an outcome stored in between
        resolves the future rather than slipping past.
        """
        waiter: asyncio.Future[Stored | None] = asyncio.get_running_loop().create_future()
        if self._closed:
            waiter.set_result(None)
        self._waiting.setdefault(job_id, set()).add(waiter)
        try:
            yield waiter
        finally:
            others = self._waiting.get(job_id)
            if others is not None:
                others.discard(waiter)
                if not others:
                    del self._waiting[job_id]

    @property
    def closed(self) -> bool:
        """Whether the server stops (close() was called)."""
        return self._closed

    def close(self) -> None:
        """The server stops: every reader answers now, and none waits from now on (a
        waiting request would hold the HTTP server's shutdown)."""
        self._closed = True
        for job_id in list(self._waiting):
            self.notify(job_id)

    def waiting(self) -> int:
        """How many jobs have readers waiting (for tests and leaks)."""
        return len(self._waiting)
