"""The API client: signed or session calls, async jobs waited on, live output streamed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from cloudiag.client.credentials import ApiKey
from cloudiag.client.errors import ApiCallError, JobTimeout
from cloudiag.client.models import (
    AsyncJob,
    DiagnosticsType,
    Host,
    Login,
    OutputLine,
    SystemVm,
    Zone,
)
from cloudiag.client.responses import read_body
from cloudiag.client.sse import read_events

__all__ = ["AsyncClient"]

_Model = TypeVar("_Model", bound=BaseModel)

#: The header a session's key travels in (the server also takes it as a parameter; a header
#: keeps it out of URLs and access logs).
SESSIONKEY_HEADER = "sessionkey"


def _text(value: object) -> str:
    # The API reads booleans as true/false, not Python's True/False.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: The longest one queryAsyncJobResult of ``wait_job`` asks the server to wait (seconds):
#: well inside the default HTTP timeout.
WAIT_STEP = 10


class AsyncClient:
    """A client of one management server's ``/client/api`` and ``/client/stream``.

    Calls are signed with ``credentials`` when given; after ``login`` they ride on the session
    (its cookie, kept by the HTTP client, and its key). ``http`` lets the caller choose the
    transport, limits and timeouts; the client then leaves closing it to the caller.
    """

    def __init__(
        self,
        url: str,
        credentials: ApiKey | None = None,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        """A client of the server at ``url`` (``http://host:port``)."""
        self.url = url.rstrip("/")
        self.credentials = credentials
        self.sessionkey: str | None = None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client, if the client made it."""
        if self._owns_http:
            await self._http.aclose()

    def _query(self, params: Mapping[str, object]) -> dict[str, str]:
        query = {"response": "json", **{k: _text(v) for k, v in params.items()}}
        if self.credentials is None or self.sessionkey:
            return query
        return self.credentials.sign(query)

    def _headers(self) -> dict[str, str]:
        return {SESSIONKEY_HEADER: self.sessionkey} if self.sessionkey else {}

    async def request(self, command: str, /, **params: object) -> httpx.Response:
        """The GET of ``command`` with its credentials; the answer as it came.

        For callers that look at the HTTP answer itself (status, headers); ``call`` reads it.
        """
        query = self._query({"command": command, **params})
        return await self._http.get(f"{self.url}/client/api", params=query, headers=self._headers())

    async def call(self, command: str, /, **params: object) -> dict[str, Any]:
        """Call ``command``; the body of its answer. Raises ``ApiCallError`` on a refusal."""
        return read_body(command, await self.request(command, **params))

    async def login(self, username: str, password: str, domain: str | None = None) -> Login:
        """Open a session (a form POST, as CloudStack requires); later calls use it, unsigned."""
        form = {"command": "login", "username": username, "password": password, "response": "json"}
        if domain is not None:
            form["domain"] = domain
        login = Login.model_validate(
            read_body("login", await self._http.post(f"{self.url}/client/api", data=form))
        )
        self.sessionkey = login.sessionkey
        return login

    async def logout(self) -> None:
        """End the session."""
        await self.call("logout")
        self.sessionkey = None

    async def query_job(self, jobid: str, *, wait: int = 0) -> AsyncJob:
        """An async job's state (queryAsyncJobResult); with ``wait``, the server answers as
        soon as the job is final, or after that many seconds (a cloudiag extension)."""
        extra = {"wait": wait} if wait > 0 else {}
        return AsyncJob.model_validate(await self.call("queryAsyncJobResult", jobid=jobid, **extra))

    async def wait_job(
        self, jobid: str, *, timeout: float = 120.0, interval: float = 0.1
    ) -> AsyncJob:
        """The job once it is final; ``JobTimeout`` if it is still pending ``timeout`` seconds
        from now.

        Each call asks the server to answer when the job is final (``wait``, at most
        WAIT_STEP seconds, within the HTTP timeout), so the result comes as it is stored,
        not a poll later. A server that answers at once anyway is polled every ``interval``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            asked = loop.time()
            job = await self.query_job(jobid, wait=int(min(WAIT_STEP, deadline - asked)))
            if job.done:
                return job
            if loop.time() >= deadline:
                raise JobTimeout(jobid, timeout)
            if loop.time() - asked < interval:
                await asyncio.sleep(interval)

    async def run_diagnostics(
        self, targetid: str, type: str, ipaddress: str, params: str = "", **extra: object
    ) -> str:
        """Start runDiagnostics on a system VM; its job id (wait on it with ``wait_job``)."""
        options = {"params": params} if params else {}
        body = await self.call(
            "runDiagnostics",
            targetid=targetid,
            type=type,
            ipaddress=ipaddress,
            **options,
            **extra,
        )
        return str(body["jobid"])

    async def stream(self, jobid: str) -> AsyncGenerator[OutputLine | AsyncJob, None]:
        """A job's output as it is printed (replayed from the first line), then the job once
        final; ends when the server closes the stream. Raises ``ApiCallError`` on a refusal."""
        query = self._query({"jobid": jobid})
        async with self._http.stream(
            "GET", f"{self.url}/client/stream", params=query, headers=self._headers()
        ) as response:
            if not response.is_success:
                await response.aread()
                read_body("stream", response)
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                raise ApiCallError("stream", response.status_code, "the answer is no event stream")
            async for event in read_events(response.aiter_lines()):
                if event.event == "line":
                    yield OutputLine.model_validate_json(event.data)
                elif event.event == "end":
                    yield AsyncJob.model_validate_json(event.data)

    async def _list(
        self, command: str, key: str, model: type[_Model], filters: Mapping[str, object]
    ) -> list[_Model]:
        body = await self.call(command, **filters)
        return [model.model_validate(item) for item in body.get(key, [])]

    async def list_async_jobs(self, **filters: object) -> list[AsyncJob]:
        """The caller's jobs, newest first (listAsyncJobs; ``listall=True``: everyone's)."""
        return await self._list("listAsyncJobs", "asyncjobs", AsyncJob, filters)

    async def list_zones(self, **filters: object) -> list[Zone]:
        """Zones (listZones), filtered by its parameters."""
        return await self._list("listZones", "zone", Zone, filters)

    async def list_hosts(self, **filters: object) -> list[Host]:
        """Hosts (listHosts), filtered by its parameters."""
        return await self._list("listHosts", "host", Host, filters)

    async def list_system_vms(self, **filters: object) -> list[SystemVm]:
        """Secondary storage and console proxy VMs (listSystemVms)."""
        return await self._list("listSystemVms", "systemvm", SystemVm, filters)

    async def list_routers(self, **filters: object) -> list[SystemVm]:
        """Virtual routers (listRouters)."""
        return await self._list("listRouters", "router", SystemVm, filters)

    async def list_diagnostics_types(self, targetid: str | None = None) -> list[DiagnosticsType]:
        """The diagnostics types (those a VM offers, with ``targetid``) and their options."""
        filters = {"targetid": targetid} if targetid else {}
        return await self._list("listDiagnosticsTypes", "diagnosticstype", DiagnosticsType, filters)
