"""Concurrency and rate limits: 429 with a clear text and a retry hint; with PostgreSQL they
hold across two management servers sharing the database."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.stack import (
    Account,
    Stack,
    _create_account,
    start_server,
    stop,
)

LIMITS = {
    "CLOUDIAG_LIMIT_PER_VM": "2",
    "CLOUDIAG_LIMIT_PER_USER": "3",
    "CLOUDIAG_RATE_LIMIT": "6",
    "CLOUDIAG_RATE_INTERVAL": "600",
}


@pytest.fixture
def servers(stack: Stack) -> Iterator[list[str]]:
    """Management servers with small limits: two on PostgreSQL (shared limits), one on SQLite."""
    count = 2 if stack.backend == "postgresql" else 1
    procs = []
    try:
        urls = []
        for i in range(count):
            proc, port = start_server(
                stack.database_url, stack.nats_url, stack.data_dir, f"limited-{i}.log", LIMITS
            )
            procs.append(proc)
            url = f"http://127.0.0.1:{port}"
            stack.wait_for(lambda u=url: httpx.get(f"{u}/client/api").status_code == 401, "API")
            urls.append(url)
        yield urls
    finally:
        for proc in procs:
            stop(proc)


def _fresh_admin(stack: Stack) -> Account:
    return _create_account(
        stack.database_url, stack.data_dir, "quota" + secrets.token_hex(3), "admin"
    )


def test_concurrency_per_vm_holds_across_servers(stack: Stack, servers: list[str]) -> None:
    vm = stack.vm("secondarystoragevm")["uuid"]
    accounts = [_fresh_admin(stack), _fresh_admin(stack)]  # per-user limits stay out of it
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def fire(i: int) -> None:
        r = stack.call_at(
            servers[i % len(servers)],
            "runDiagnostics",
            accounts[i % 2],
            targetid=vm,
            type="ping",
            ipaddress=stack.lab["targets"]["web"],
            params="-c 4 -i 0.5",
        )
        with lock:
            results.append(r)

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    accepted = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code == 429]
    assert len(accepted) == 2, [r.text for r in results]
    assert len(refused) == 4
    text = refused[0].json()["rundiagnosticsresponse"]["errortext"]
    assert "s-2-VM" in text and "limit" in text and "retry" in text
    for r in accepted:
        job = stack.wait_job(r.json()["rundiagnosticsresponse"]["jobid"])
        assert job["jobstatus"] == 1


def test_rate_limit_per_user_gives_a_retry_hint(stack: Stack, servers: list[str]) -> None:
    account = _fresh_admin(stack)
    vm = stack.vm("router")["uuid"]
    for i in range(6):
        r = stack.call_at(
            servers[i % len(servers)],
            "runDiagnostics",
            account,
            targetid=vm,
            type="ping",
            ipaddress=stack.lab["targets"]["web"],
            params="-c 1",
        )
        assert r.status_code == 200, r.text
        stack.wait_job(r.json()["rundiagnosticsresponse"]["jobid"])
    r = stack.call_at(
        servers[-1],
        "runDiagnostics",
        account,
        targetid=vm,
        type="ping",
        ipaddress=stack.lab["targets"]["web"],
        params="-c 1",
    )
    assert r.status_code == 429
    body = r.json()["rundiagnosticsresponse"]
    assert body["errorcode"] == 429
    assert "6 diagnostics per 600 s" in body["errortext"] and "retry after" in body["errortext"]
    assert r.headers["X-Description"] == body["errortext"]
