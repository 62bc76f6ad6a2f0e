"""Login throttling and lockout, and secrets kept out of logs and events."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import httpx
import nats
import pytest

from cloudiag.bus.nkey_files import new_seed
from tests.integration.stack import Stack, _create_account


def test_failures_slow_down_then_lock_that_user(stack: Stack) -> None:
    name = "victim" + secrets.token_hex(3)
    victim = _create_account(stack.database_url, stack.data_dir, name, "user")
    timings = []
    for _ in range(5):
        started = time.monotonic()
        r = stack.login(name, "wrong-password")
        timings.append(time.monotonic() - started)
        assert r.status_code == 531
        assert "please provide valid credentials" in r.json()["loginresponse"]["errortext"]
    # Each failure answered more slowly than the first (0.25 s more per earlier failure).
    assert timings[4] - timings[0] >= 0.8, timings
    # Locked now: even the right password is refused, with a clear text and no session.
    r = stack.login(name, victim.password)
    assert r.status_code == 531
    assert "Too many failed login attempts" in r.json()["loginresponse"]["errortext"]
    assert "sessionkey" not in r.cookies
    # Other users are not affected.
    assert stack.login(stack.user.username, stack.user.password).status_code == 200


async def _parallel_bad_logins(stack: Stack, username: str, n: int) -> list[str]:
    async with httpx.AsyncClient(timeout=60) as web:
        answers = await asyncio.gather(
            *(
                web.post(
                    stack.api,
                    data={
                        "command": "login",
                        "username": username,
                        "password": f"guess{i}",
                        "response": "json",
                    },
                )
                for i in range(n)
            )
        )
    assert all(r.status_code == 531 for r in answers)
    return [str(r.json()["loginresponse"]["errortext"]) for r in answers]


def test_parallel_guesses_get_no_more_than_the_limit(stack: Stack) -> None:
    name = "victim" + secrets.token_hex(3)
    victim = _create_account(stack.database_url, stack.data_dir, name, "user")
    texts = asyncio.run(_parallel_bad_logins(stack, name, 30))
    # Only 5 guesses from one address reached a password check; the rest were locked out.
    assert sum("please provide valid credentials" in t for t in texts) == 5, texts
    assert sum("Too many failed login attempts" in t for t in texts) == 25, texts
    r = stack.login(name, victim.password)
    assert r.status_code == 531
    assert "Too many failed login attempts" in r.json()["loginresponse"]["errortext"]


def test_no_secret_reaches_the_logs_or_events(stack: Stack) -> None:
    web = httpx.Client()
    r = stack.login(stack.admin.username, stack.admin.password, web)
    key = r.json()["loginresponse"]["sessionkey"]
    web.get(stack.api, params={"command": "listZones", "response": "json", "sessionkey": key})
    signed = stack.call("listZones")
    assert signed.status_code == 200
    stack.run("router", "ping", stack.lab["targets"]["web"], "-c 1")
    events = str(stack.ok("listEvents"))
    logs = "".join((stack.data_dir / name).read_text() for name in ("server.log", "agent.log"))
    signature = str(signed.request.url.params["signature"])
    for secret in (stack.admin.password, stack.admin.secretkey, key, signature):
        assert secret not in logs
        assert secret not in events


async def _connect(url: str, **options: Any) -> None:
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=3, **options)
    await nc.close()


def test_the_bus_needs_a_registered_key(stack: Stack) -> None:
    """Without a key the bus knows no local user can talk to the agents behind the API's
    back (what a registered agent may do is tests/unit/test_bus_permissions.py's)."""
    with pytest.raises(Exception, match=r"(?i)authorization"):
        asyncio.run(_connect(stack.nats_url))
    with pytest.raises(Exception, match=r"(?i)authorization"):
        asyncio.run(_connect(stack.nats_url, nkeys_seed_str=new_seed()))
    asyncio.run(_connect(stack.nats_url, **stack.bus_options()))
