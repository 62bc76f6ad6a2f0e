"""A blocking face of ``AsyncClient`` for code that is not async (tests, benches, scripts).

The async client runs on an event loop of its own in a background thread, so there is one
implementation of every call, and a blocking caller works even inside a running event loop
or beside another library's (Playwright's sync API runs one in the caller's thread).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from cloudiag.client.async_client import AsyncClient
from cloudiag.client.credentials import ApiKey
from cloudiag.client.models import AsyncJob, Login, OutputLine

__all__ = ["Client"]

_T = TypeVar("_T")


class Client:
    """``AsyncClient``'s calls, blocking; safe to use from several threads at once."""

    def __init__(
        self,
        url: str,
        credentials: ApiKey | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        """A client of the server at ``url``; see ``AsyncClient``."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="cloudiag-client", daemon=True
        )
        self._thread.start()
        self.aio = AsyncClient(url, credentials, http=http, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the background loop."""
        if self._loop.is_closed():
            return
        self._run(self.aio.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def url(self) -> str:
        """The server's URL."""
        return self.aio.url

    def request(self, command: str, /, **params: object) -> httpx.Response:
        """See ``AsyncClient.request``."""
        return self._run(self.aio.request(command, **params))

    def call(self, command: str, /, **params: object) -> dict[str, Any]:
        """See ``AsyncClient.call``."""
        return self._run(self.aio.call(command, **params))

    def login(self, username: str, password: str, domain: str | None = None) -> Login:
        """See ``AsyncClient.login``."""
        return self._run(self.aio.login(username, password, domain))

    def wait_job(self, jobid: str, *, timeout: float = 120.0, interval: float = 0.1) -> AsyncJob:
        """See ``AsyncClient.wait_job``."""
        return self._run(self.aio.wait_job(jobid, timeout=timeout, interval=interval))

    def run_diagnostics(
        self, targetid: str, type: str, ipaddress: str, params: str = "", **extra: object
    ) -> str:
        """See ``AsyncClient.run_diagnostics``."""
        return self._run(self.aio.run_diagnostics(targetid, type, ipaddress, params, **extra))

    def stream(self, jobid: str) -> Iterator[OutputLine | AsyncJob]:
        """See ``AsyncClient.stream``; each item as it arrives."""
        events = self.aio.stream(jobid)
        try:
            while True:
                try:
                    yield self._run(_next(events))
                except StopAsyncIteration:
                    return
        finally:
            self._run(events.aclose())


async def _next(items: AsyncIterator[_T]) -> _T:
    # run_coroutine_threadsafe takes a coroutine; anext() gives a bare awaitable.
    return await anext(items)
