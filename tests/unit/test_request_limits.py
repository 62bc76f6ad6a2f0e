"""Request size limits, enforced while the parameters are read (before authentication):
413 with CloudStack's error body for a large body or too many parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cloudiag.accounts.secret_box import SecretBox
from cloudiag.api.app import create_app
from cloudiag.api.auth import MAX_BODY, MAX_FIELDS
from cloudiag.api.context import AppState
from cloudiag.settings import Settings

TOO_LARGE = f"The request body is larger than {MAX_BODY} bytes, the most allowed"
TOO_MANY = f"The request has more than {MAX_FIELDS} parameters, the most allowed"


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    """The API app in process; nothing here gets as far as the database or the bus."""
    state = AppState(Settings(), db=None, runner=None, nc=None, secrets=SecretBox.generate())  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


def _error(r: httpx.Response, status: int, envelope: str = "loginresponse") -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()[envelope]
    assert body["errorcode"] == status and body["cserrorcode"] == 9999
    assert body["uuidList"] == []
    assert r.headers["X-Description"] == body["errortext"]
    return str(body["errortext"])


async def test_a_body_over_the_limit_is_413(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/client/api?command=login&response=json",
        data={"username": "admin", "password": "x" * MAX_BODY},
    )
    assert _error(r, 413) == TOO_LARGE


async def test_a_body_without_a_length_is_read_no_further_than_the_limit(
    api: httpx.AsyncClient,
) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b"username=admin&password="
        for _ in range(1000):
            sent += 1
            yield b"x" * 8192

    r = await api.post(
        "/client/api?command=login&response=json",
        content=endless(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert _error(r, 413) == TOO_LARGE
    assert sent <= MAX_BODY // 8192 + 1  # Refused as it went over, not after 8 MB.


async def test_a_multipart_body_over_the_limit_is_413(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/client/api?command=login&response=json",
        data={"username": "admin", "password": "x" * MAX_BODY},
        files={"f": ("f.txt", b"")},
    )
    assert _error(r, 413) == TOO_LARGE


def _fields(n: int) -> dict[str, str]:
    return {f"p{i}": "" for i in range(n)}


@pytest.mark.parametrize("where", ["query", "form", "multipart", "query and form"])
async def test_too_many_parameters_are_413(api: httpx.AsyncClient, where: str) -> None:
    query = "command=login&response=json"
    kw: dict[str, Any] = {}
    if where == "query":
        query += "".join(f"&p{i}=" for i in range(MAX_FIELDS))
    elif where == "form":
        kw["data"] = _fields(MAX_FIELDS)
    elif where == "multipart":
        # A short boundary, so that this many parts still fit within MAX_BODY.
        parts = [
            f'--b\r\nContent-Disposition: form-data; name="p{i}"\r\n\r\n\r\n'.encode()
            for i in range(MAX_FIELDS)
        ]
        kw.update(
            content=b"".join(parts) + b"--b--\r\n",
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
    else:
        query += "".join(f"&q{i}=" for i in range(MAX_FIELDS // 2))
        kw["data"] = _fields(MAX_FIELDS // 2)
    r = await api.post(f"/client/api?{query}", **kw)
    assert _error(r, 413) == TOO_MANY


async def test_the_error_has_the_envelope_and_format_the_query_asks_for(
    api: httpx.AsyncClient,
) -> None:
    big = {"password": "x" * MAX_BODY}
    r = await api.post("/client/api?command=nonsense&response=json", data=big)
    assert _error(r, 413, "errorresponse") == TOO_LARGE
    r = await api.post("/client/api", data=big)  # No response=json: CloudStack's XML.
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("text/xml")
    assert "<errorcode>413</errorcode>" in r.text and TOO_LARGE in r.text


async def test_a_form_at_the_limits_is_read(api: httpx.AsyncClient) -> None:
    # MAX_FIELDS parameters in all and a body just under MAX_BODY: read, then refused for
    # what it is, a call without credentials.
    data = {"command": "listZones", "response": "json", **_fields(MAX_FIELDS - 3)}
    data["p0"] = "x" * (MAX_BODY - 10_000)
    r = await api.post("/client/api?x=1", data=data)
    assert len(r.request.content) <= MAX_BODY
    assert r.status_code == 401, r.text
    assert r.json()["listzonesresponse"]["errorcode"] == 401


async def test_a_multipart_form_within_the_limits_is_read(api: httpx.AsyncClient) -> None:
    data = {"command": "listZones", "response": "json", "p": "x" * (MAX_BODY - 2_000)}
    r = await api.post("/client/api", data=data, files={"f": ("f.txt", b"ignored")})
    assert r.status_code == 401, r.text
    assert r.json()["listzonesresponse"]["errorcode"] == 401


async def test_a_malformed_multipart_body_is_431(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/client/api?command=login&response=json",
        content=b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n",
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert "Malformed form body" in _error(r, 431)
