"""Every request gets a response over real HTTP (uvicorn and h11), whatever it held.

The ASGI app alone cannot show this: h11 refuses a header value with whitespace at either
end, and the connection is then dropped with no response at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.accounts.secret_box import SecretBox
from cloudiag.api.context import AppState
from cloudiag.db.models import Host, VirtualMachine, Zone
from cloudiag.domain import VmType
from cloudiag.server import listen_socket, serve_http, url_of
from cloudiag.services import accounts
from cloudiag.settings import Settings
from tests.integration.stack import cs_signature

VM_ID = "7d4c5c5e-3c5b-4a48-9a8a-7f1f7e0f2a11"


@dataclass
class Api:
    """A signed client of the server under test."""

    http: httpx.AsyncClient
    url: str
    key: str
    secret: str

    async def call(self, command: str, **params: str) -> httpx.Response:
        query = {"command": command, "response": "json", "apiKey": self.key, **params}
        query["signature"] = cs_signature(query, self.secret)
        return await self.http.get(self.url, params=query)


@pytest.fixture
async def api(db: async_sessionmaker[AsyncSession]) -> AsyncIterator[Api]:
    """`cloudiag serve`'s HTTP server on loopback, with an admin and one running router."""
    box = SecretBox.generate()
    async with db.begin() as s:
        admin = await accounts.create_user(s, "admin", "admin", box=box)
        s.add(Zone(id="z1", name="zone"))
        await s.flush()
        s.add(Host(id="h1", name="host", zone_id="z1", connected=True))
        await s.flush()
        s.add(
            VirtualMachine(
                id=VM_ID,
                name="r-1-VM",
                vm_type=VmType.DOMAIN_ROUTER,
                state="Running",
                host_id="h1",
                zone_id="z1",
            )
        )
    # No runner and no bus: every request here is refused before a job would start.
    state = AppState(Settings(), db=db, runner=None, nc=None, secrets=box)  # type: ignore[arg-type]
    sock, stop, ready = listen_socket("127.0.0.1", 0), asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(serve_http(state, sock, stop, ready))
    await asyncio.wait_for(ready.wait(), 10)
    async with httpx.AsyncClient(timeout=10) as http:
        yield Api(http, f"{url_of(sock)}/client/api", admin.apikey, admin.secretkey)
    stop.set()
    await server
    sock.close()


def _refusal(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 431, r.text
    body: dict[str, Any] = r.json()["rundiagnosticsresponse"]
    assert r.headers["X-Description"] == body["errortext"].replace("\t", " ").strip()
    return body


@pytest.mark.parametrize("value", ["", " ", "\t"])
async def test_an_empty_type_is_refused_as_empty(api: Api, value: str) -> None:
    r = await api.call("runDiagnostics", targetid=VM_ID, ipaddress="198.51.100.10", type=value)
    body = _refusal(r)
    assert body["errortext"] == "Parameter type must not be empty"
    assert body["cserrorcode"] == 9999
    assert r.headers["X-Cloudiag-Param"] == "type"


@pytest.mark.parametrize("value", [" nmap", "nmap ", " ping", "ping\t"])
async def test_an_error_text_with_whitespace_at_its_ends_still_gets_its_answer(
    api: Api, value: str
) -> None:
    started = time.monotonic()
    r = await api.call("runDiagnostics", targetid=VM_ID, ipaddress="198.51.100.10", type=value)
    assert "not a valid diagnostics command type" in _refusal(r)["errortext"]
    assert time.monotonic() - started < 5
