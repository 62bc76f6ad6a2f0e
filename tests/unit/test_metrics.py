"""/metrics: who may read it, and what the counters count (one layer each; the end-to-end
test with a real stack is tests/integration/test_operations.py)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.accounts.secret_box import SecretBox
from cloudiag.api.app import create_app
from cloudiag.api.context import AppState
from cloudiag.bus.messages import RunResult
from cloudiag.db.engine import create_engine
from cloudiag.jobs import final_state
from cloudiag.metrics import database, jobs
from cloudiag.settings import Settings
from tests.databases import sqlite_url

TOKEN = "a-metrics-token-of-32-characters"


async def _get(
    db: async_sessionmaker[AsyncSession], client: str, settings: Settings, **headers: str
) -> httpx.Response:
    state = AppState(settings, db=db, runner=None, nc=None, secrets=SecretBox.generate())  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=create_app(state), client=(client, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        return await http.get("/metrics", headers=headers)


async def test_without_a_token_only_loopback_may_scrape(
    db: async_sessionmaker[AsyncSession],
) -> None:
    for client in ("127.0.0.1", "::1"):
        r = await _get(db, client, Settings())
        assert r.status_code == 200, client
        assert "cloudiag_agents" in r.text and "cloudiag_jobs_pending 0.0" in r.text
    r = await _get(db, "192.0.2.7", Settings())
    assert r.status_code == 403
    assert "cloudiag_" not in r.text


async def test_with_a_token_every_client_must_send_it(
    db: async_sessionmaker[AsyncSession],
) -> None:
    settings = Settings(metrics_token=TOKEN)
    assert (await _get(db, "192.0.2.7", settings)).status_code == 403
    # Loopback is no exception once a token is set.
    assert (await _get(db, "127.0.0.1", settings)).status_code == 403
    wrong = {"Authorization": f"Bearer {TOKEN[:-1]}x"}
    assert (await _get(db, "192.0.2.7", settings, **wrong)).status_code == 403
    right = {"Authorization": f"Bearer {TOKEN}"}
    r = await _get(db, "192.0.2.7", settings, **right)
    assert r.status_code == 200 and "cloudiag_jobs_pending" in r.text


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ValueError, match="metrics_token"):
        Settings(metrics_token="short")


def _result(**fields: object) -> RunResult:
    return RunResult(job_id="j", stdout="", stderr="", exitcode="0", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("final", "label"),
    [
        (final_state.of_result("ping", _result(), "h"), "succeeded"),
        (final_state.of_result("ping", _result(timed_out=True), "h"), "timedout"),
        (final_state.of_result("ping", _result(cancelled_by="admin"), "h"), "cancelled"),
        (final_state.of_result("ping", _result(error="the VM stopped"), "h"), "failed"),
        (final_state.of_result("ping", _result(refused="stale"), "h"), "failed"),
        (final_state.failed("lost"), "failed"),
    ],
)
def test_outcome_labels(final: final_state.FinalState, label: str) -> None:
    assert final.outcome == label


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_an_ended_job_is_counted_and_timed() -> None:
    def bucket(le: str) -> float:
        return _count("cloudiag_job_duration_seconds_bucket", type="arping", le=le)

    before = _count("cloudiag_jobs_total", type="arping", outcome="failed")
    timed = _count("cloudiag_job_duration_seconds_count", type="arping")
    jobs.ended("arping", "failed", created=0.0)  # Creation unknown: counted, not timed.
    assert _count("cloudiag_jobs_total", type="arping", outcome="failed") == before + 1
    assert _count("cloudiag_job_duration_seconds_count", type="arping") == timed
    under_1, under_10 = bucket("1.0"), bucket("10.0")
    jobs.ended("arping", "failed", created=time.time() - 2)
    assert _count("cloudiag_job_duration_seconds_count", type="arping") == timed + 1
    assert bucket("1.0") == under_1 and bucket("10.0") == under_10 + 1


async def test_database_errors_are_counted_once(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path))
    database.watch(engine)
    other = _count("cloudiag_database_errors_total", kind="other")
    try:
        with pytest.raises(Exception) as raised:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT * FROM no_such_table"))
        assert _count("cloudiag_database_errors_total", kind="other") == other + 1
        # Caught again higher up (the API, the outcome's retry): not counted twice.
        database.caught(raised.value)
        assert _count("cloudiag_database_errors_total", kind="other") == other + 1
    finally:
        await engine.dispose()
    # A refused connection never reaches the driver's error event: counted where caught.
    transient = _count("cloudiag_database_errors_total", kind="transient")
    database.caught(ConnectionRefusedError(111, "Connect call failed"))
    assert _count("cloudiag_database_errors_total", kind="transient") == transient + 1
    # What else a caller catches (a bug of its own) is no database error.
    before = _count("cloudiag_database_errors_total", kind="other")
    database.caught(KeyError("job_id"))
    assert _count("cloudiag_database_errors_total", kind="other") == before
