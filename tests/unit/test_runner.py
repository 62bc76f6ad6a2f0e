"""The job runner against a real (SQLite) database and an in-process stand-in for the bus."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any
from unittest.mock import ANY

import pytest
from nats.errors import TimeoutError as NatsTimeout
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus.messages import RunRequest
from cloudiag.db.models import AsyncJob, User, utcnow
from cloudiag.jobs import outcomes
from cloudiag.jobs import runner as runner_module
from cloudiag.jobs.agent_protocol import RESULT_GRACE
from cloudiag.jobs.diagnostics_job import DiagnosticsJob
from cloudiag.jobs.final_state import SHUTDOWN_BY, SHUTDOWN_TEXT
from cloudiag.jobs.ownership import ORPHAN_GRACE, OUTCOME_LOST, OWNER_GONE, SERVER_TIMEOUT
from cloudiag.jobs.runner import JobRunner
from tests.unit.fake_agents import FakeAgents, FakeMsg


@pytest.fixture
async def db(
    db: async_sessionmaker[AsyncSession],
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The test's database with the user every job here belongs to."""
    sessions = db
    async with sessions.begin() as s:
        s.add(
            User(
                id="user-1",
                username="u",
                role="Admin",
                password_hash="x",
                api_key="k",
                secret_key="s",
                domain_id="d",
            )
        )
    yield sessions


async def _new_job(
    db: async_sessionmaker[AsyncSession], runner: JobRunner, n: int, timelimit: float = 120.0
) -> DiagnosticsJob:
    """A pending job row owned by `runner`, and what the runner needs to run it."""
    job_id = f"00000000-0000-0000-0000-{n:012d}"
    async with db.begin() as s:
        s.add(
            AsyncJob(
                id=job_id,
                user_id="user-1",
                account_id="a",
                cmd="c",
                instance_type="DomainRouter",
                instance_id="vm-1",
                host_id="host-1",
                request={"type": "ping", "timelimit": timelimit},
                server_id=runner.server_id,
            )
        )
    return DiagnosticsJob(
        job_id=job_id,
        host_id="host-1",
        host_name="host",
        vm_name="r-1-VM",
        vm_type="domainrouter",
        request=RunRequest(
            job_id=job_id, vm_id="vm-1", type="ping", address="192.0.2.1", params=[], time_limit=120
        ),
        user_id="user-1",
        username="u",
        account_id="a",
        domain_id="d",
    )


async def _job(db: async_sessionmaker[AsyncSession], job_id: str) -> AsyncJob:
    async with db() as s:
        job = await s.get(AsyncJob, job_id)
    assert job is not None
    return job


async def _until(predicate: Callable[[], bool], what: str, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def _one_running_one_queued(
    db: async_sessionmaker[AsyncSession],
) -> tuple[FakeAgents, JobRunner, DiagnosticsJob, DiagnosticsJob]:
    """A runner with one slot: its first job runs on the agents, the second waits."""
    agents = FakeAgents()
    runner = JobRunner(db, agents, server_id="me", concurrency=1)  # type: ignore[arg-type]
    running, queued = await _new_job(db, runner, 1), await _new_job(db, runner, 2)
    runner.submit(running)
    runner.submit(queued)
    await _until(lambda: len(agents.runs) == 1, "the first job to run")
    return agents, runner, running, queued


async def test_a_job_still_queued_at_shutdown_is_failed(
    db: async_sessionmaker[AsyncSession],
) -> None:
    agents, runner, first, queued = await _one_running_one_queued(db)
    await runner.close()
    for job in (first, queued):
        row = await _job(db, job.job_id)
        assert row.status == 2, job.job_id
        assert row.result is not None and row.result["errortext"] == SHUTDOWN_TEXT
    assert [r.job_id for r in agents.runs] == [first.job_id]  # the queued one never ran


class FlakyDb:
    """The session factory with the first `failures` transactions failing as a blip would."""

    def __init__(self, db: async_sessionmaker[AsyncSession], failures: int) -> None:
        self.db, self.failures, self.attempts = db, failures, 0

    def __call__(self) -> AsyncSession:
        return self.db()

    def begin(self) -> Any:
        self.attempts += 1
        if self.attempts <= self.failures:
            locked = sqlite3.OperationalError("database is locked")
            locked.sqlite_errorcode = sqlite3.SQLITE_BUSY  # as SQLite sets it
            raise OperationalError("UPDATE async_jobs", {}, locked)
        return self.db.begin()


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outcomes, "FINISH_BACKOFF", 0.01)


@pytest.mark.usefixtures("fast_retries")
async def test_outcome_is_stored_after_transient_database_errors(
    db: async_sessionmaker[AsyncSession],
) -> None:
    agents = FakeAgents()
    runner = JobRunner(db, agents, server_id="me")  # type: ignore[arg-type]
    job = await _new_job(db, runner, 1)
    flaky = FlakyDb(db, failures=outcomes.FINISH_ATTEMPTS - 1)
    runner.db = flaky  # type: ignore[assignment]
    runner.submit(job)
    await _until(lambda: job.job_id in agents.running, "the job to run")
    agents.finish(job.job_id)
    await _until(lambda: not runner._tasks, "the job to end")
    row = await _job(db, job.job_id)
    assert row.status == 1 and row.result == {"diagnostics": ANY}
    assert flaky.attempts == outcomes.FINISH_ATTEMPTS


@pytest.mark.usefixtures("fast_retries")
async def test_outcome_retries_are_bounded(db: async_sessionmaker[AsyncSession]) -> None:
    agents = FakeAgents()
    runner = JobRunner(db, agents, server_id="me")  # type: ignore[arg-type]
    job = await _new_job(db, runner, 1)
    flaky = FlakyDb(db, failures=1000)
    runner.db = flaky  # type: ignore[assignment]
    runner.submit(job)
    await _until(lambda: job.job_id in agents.running, "the job to run")
    agents.finish(job.job_id)
    await _until(lambda: not runner._tasks, "the runner to give up")
    assert flaky.attempts == outcomes.FINISH_ATTEMPTS
    assert (await _job(db, job.job_id)).status == 0  # left to the sweep


async def test_queued_and_running_jobs_are_not_swept_by_their_own_server(
    db: async_sessionmaker[AsyncSession],
) -> None:
    agents, runner, running, queued = await _one_running_one_queued(db)
    # A day later (the first job still runs, the second still waits for its slot).
    assert await runner.sweep(utcnow() + timedelta(days=1)) == 0
    agents.finish(running.job_id)
    await _until(lambda: len(agents.runs) == 2, "the queued job to run")
    agents.finish(queued.job_id)
    await _until(lambda: not runner._tasks, "both to end")
    assert [(await _job(db, j.job_id)).status for j in (running, queued)] == [1, 1]


async def test_a_live_servers_queued_job_is_not_swept_by_another(
    db: async_sessionmaker[AsyncSession],
) -> None:
    agents = FakeAgents()
    busy = JobRunner(db, agents, server_id="busy", concurrency=1)  # type: ignore[arg-type]
    other = JobRunner(db, FakeAgents(), server_id="other")  # type: ignore[arg-type]
    running = await _new_job(db, busy, 1, timelimit=1)
    queued = await _new_job(db, busy, 2, timelimit=1)
    busy.submit(running)
    busy.submit(queued)
    await _until(lambda: len(agents.runs) == 1, "the first job to run")
    later = utcnow() + timedelta(seconds=ORPHAN_GRACE + 30)  # far past the 1 s time limit
    await busy.heartbeat(later)
    assert await other.sweep(later) == 0
    assert (await _job(db, queued.job_id)).status == 0
    await busy.close()


async def test_jobs_of_a_server_that_stopped_beating_are_swept(
    db: async_sessionmaker[AsyncSession],
) -> None:
    gone = JobRunner(db, FakeAgents(), server_id="gone")  # type: ignore[arg-type]
    me = JobRunner(db, FakeAgents(), server_id="me")  # type: ignore[arg-type]
    job = await _new_job(db, gone, 1)  # time limit 120 s: not what fails it
    await gone.heartbeat()
    soon = utcnow() + timedelta(seconds=max(SERVER_TIMEOUT, ORPHAN_GRACE) + 1)
    assert await me.sweep(soon) == 1
    row = await _job(db, job.job_id)
    assert row.status == 2 and row.result == {"errorcode": 530, "errortext": OWNER_GONE}


async def test_an_own_job_this_runner_no_longer_holds_is_swept(
    db: async_sessionmaker[AsyncSession],
) -> None:
    me = JobRunner(db, FakeAgents(), server_id="me")  # type: ignore[arg-type]
    job = await _new_job(db, me, 1)  # as if storing its outcome had failed for good
    await me.heartbeat()
    assert await me.sweep(utcnow() + timedelta(seconds=ORPHAN_GRACE + 1)) == 1
    assert (await _job(db, job.job_id)).result == {"errorcode": 530, "errortext": OUTCOME_LOST}


async def test_a_job_swept_while_queued_never_runs(db: async_sessionmaker[AsyncSession]) -> None:
    agents, runner, running, queued = await _one_running_one_queued(db)
    swept = {"errorcode": 530, "errortext": OWNER_GONE}
    async with db.begin() as s:  # What another server's sweep does.
        await s.execute(
            update(AsyncJob).where(AsyncJob.id == queued.job_id).values(status=2, result=swept)
        )
    agents.finish(running.job_id)
    await _until(lambda: not runner._tasks, "both tasks to end")
    assert [r.job_id for r in agents.runs] == [running.job_id]
    assert (await _job(db, queued.job_id)).result == swept


async def test_shutdown_asks_the_agents_to_stop_and_keeps_the_output(
    db: async_sessionmaker[AsyncSession],
) -> None:
    agents = FakeAgents()
    runner = JobRunner(db, agents, server_id="me")  # type: ignore[arg-type]
    job = await _new_job(db, runner, 1)
    runner.submit(job)
    await _until(lambda: job.job_id in agents.running, "the job to run")
    await runner.close()
    assert [(c.job_id, c.by) for c in agents.cancels] == [(job.job_id, SHUTDOWN_BY)]
    assert agents.running == set()
    result = (await _job(db, job.job_id)).result
    assert result is not None
    assert result["errortext"] == SHUTDOWN_TEXT and result["cancelled"] is True
    assert result["diagnostics"]["stdout"] == "partial\n"


class SilentAgents(FakeAgents):
    """Agents that take a job and then never answer again."""

    async def request(self, subject: str, data: bytes, timeout: float) -> FakeMsg:
        if subject.endswith(".cancel"):
            await asyncio.sleep(timeout)
            raise NatsTimeout
        return await super().request(subject, data, timeout)


async def test_shutdown_ends_the_job_even_when_its_agent_does_not_answer(
    db: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "SHUTDOWN_GRACE", 0.2)
    agents = SilentAgents()
    runner = JobRunner(db, agents, server_id="me")  # type: ignore[arg-type]
    job = await _new_job(db, runner, 1)
    runner.submit(job)
    await _until(lambda: job.job_id in agents.running, "the job to run")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await runner.close()
    assert loop.time() - started < 2 * 0.2 + 1  # a cancel's wait, then the output's
    result = (await _job(db, job.job_id)).result
    assert result == {"errorcode": 530, "errortext": SHUTDOWN_TEXT}


async def test_a_job_of_a_server_that_never_beat_is_swept_past_its_limit(
    db: async_sessionmaker[AsyncSession],
) -> None:
    """Jobs whose server never came back are failed once they are well past their limit."""
    now = utcnow()
    age_of = {"fresh": 30, "running": 100, "orphan": 120 + RESULT_GRACE + ORPHAN_GRACE + 5}
    async with db.begin() as s:
        for name, age in age_of.items():
            s.add(
                AsyncJob(
                    id=f"00000000-0000-0000-0000-00000000000{len(name)}",
                    user_id="user-1",
                    account_id="a",
                    cmd="c",
                    instance_type="SystemVm",
                    instance_id=name,
                    request={"type": "ping", "timelimit": 120.0},
                    created=now - timedelta(seconds=age),
                )
            )
    runner = JobRunner(db, nc=None, server_id="gone")  # type: ignore[arg-type]
    assert await runner.sweep(now) == 1
    async with db() as s:
        jobs = {j.instance_id: j for j in (await s.execute(AsyncJob.__table__.select())).all()}
    assert jobs["orphan"].status == 2
    assert "No management server finished the job" in jobs["orphan"].result["errortext"]
    assert jobs["fresh"].status == 0 and jobs["running"].status == 0
    assert await runner.sweep(now) == 0  # nothing twice
