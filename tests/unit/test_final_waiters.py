"""queryAsyncJobResult with `wait`: answered the moment the job's outcome is stored here, on
time without it, and from the row for an outcome stored elsewhere (no wake-up)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus.messages import RunResult
from cloudiag.db.models import utcnow
from cloudiag.domain import Caller, JobStatus, NotFound
from cloudiag.jobs import outcomes
from cloudiag.jobs.diagnostics_job import DiagnosticsJob
from cloudiag.jobs.final_state import of_result
from cloudiag.jobs.final_waiters import FinalWaiters, Stored
from cloudiag.services import jobs_query
from cloudiag.services.runs import Limits, start_diagnostics
from tests.databases import migrated
from tests.unit.zone_rows import CommitsOnly, add_zone

CALLER = Caller(id="user-1", username="u", role="Admin", account_id="acct", domain_id="dom")
OTHER = Caller(id="user-2", username="o", role="User", account_id="acct2", domain_id="dom")


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with migrated("sqlite", tmp_path) as factory:
        await add_zone(factory, CALLER, {"r-1-VM": "domainrouter"}, host_name="host")
        yield factory


async def _job(sessions: async_sessionmaker[AsyncSession]) -> DiagnosticsJob:
    run = await start_diagnostics(
        sessions,
        CommitsOnly(),  # type: ignore[arg-type]
        CALLER,
        target_ids=["r-1-VM"],
        type_name="ping",
        address="192.0.2.1",
        params="-c 1",
        limits=Limits(time_limit=None),
    )
    return run.jobs[0]


async def _store(sessions: async_sessionmaker[AsyncSession], job: DiagnosticsJob) -> None:
    result = RunResult(job_id=job.job_id, stdout="pong", stderr="", exitcode="0")
    assert await outcomes.store_once(sessions, job, of_result("ping", result, "host"))


async def test_a_waiting_reader_answers_when_the_outcome_is_stored(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    waiters = FinalWaiters()
    job = await _job(sessions)
    reader = asyncio.create_task(jobs_query.wait_final(sessions, waiters, CALLER, job.job_id, 30))
    await asyncio.sleep(0.2)
    assert not reader.done()
    await _store(sessions, job)
    stored = time.monotonic()
    waiters.notify(job.job_id)
    answer = await reader
    assert answer.status == JobStatus.SUCCEEDED
    assert time.monotonic() - stored < 0.2
    assert waiters.waiting() == 0


async def test_a_final_job_is_answered_at_once_and_a_pending_one_after_the_wait(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    waiters = FinalWaiters()
    job = await _job(sessions)
    started = time.monotonic()
    pending = await jobs_query.wait_final(sessions, waiters, CALLER, job.job_id, 0.3)
    assert pending.status == JobStatus.PENDING and 0.3 <= time.monotonic() - started < 1.0
    await _store(sessions, job)
    started = time.monotonic()
    final = await jobs_query.wait_final(sessions, waiters, CALLER, job.job_id, 30)
    assert final.status == JobStatus.SUCCEEDED and time.monotonic() - started < 0.2
    with pytest.raises(NotFound):
        await jobs_query.wait_final(sessions, waiters, OTHER, job.job_id, 30)


async def test_an_outcome_stored_elsewhere_is_found_in_the_row(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_query, "RECHECK", 0.1)
    waiters = FinalWaiters()  # Nobody notifies: another server stored the outcome.
    job = await _job(sessions)
    reader = asyncio.create_task(jobs_query.wait_final(sessions, waiters, CALLER, job.job_id, 30))
    await asyncio.sleep(0.15)
    await _store(sessions, job)
    answer = await asyncio.wait_for(reader, 1.0)
    assert answer.status == JobStatus.SUCCEEDED


async def test_closing_answers_every_waiting_reader_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    waiters = FinalWaiters()
    job = await _job(sessions)
    readers = [
        asyncio.create_task(jobs_query.wait_final(sessions, waiters, CALLER, job.job_id, 30))
        for _ in range(3)
    ]
    await asyncio.sleep(0.2)
    waiters.close()
    answers = await asyncio.wait_for(asyncio.gather(*readers), 1.0)
    assert all(a.status == JobStatus.PENDING for a in answers)
    started = time.monotonic()
    await jobs_query.wait_final(sessions, waiters, CALLER, job.job_id, 30)
    assert time.monotonic() - started < 0.2


async def test_a_wake_up_with_the_stored_outcome_answers_without_reading_the_row(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    waiters = FinalWaiters()
    job = await _job(sessions)
    reader = asyncio.create_task(jobs_query.wait_final(sessions, waiters, CALLER, job.job_id, 30))
    await asyncio.sleep(0.2)
    completed = utcnow()
    payload = {"diagnostics": {"exitcode": "0"}}
    waiters.notify(job.job_id, Stored(JobStatus.SUCCEEDED, 0, payload, completed))
    answer = await reader
    assert (answer.status, answer.result, answer.completed) == (
        JobStatus.SUCCEEDED,
        payload,
        completed,
    )
