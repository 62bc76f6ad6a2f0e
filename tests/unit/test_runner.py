"""The job runner against a real (SQLite) database and a real nats-server with JetStream,
the host's agent played by a stand-in that takes requests and sends results on the bus."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from nats.aio.client import Client
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus import subjects
from cloudiag.bus.messages import JobRecord, RunRequest, RunResult
from cloudiag.db.models import AsyncJob, Event, Host, User, VirtualMachine, Zone, utcnow
from cloudiag.jobs import outcomes, result_intake
from cloudiag.jobs import runner as runner_module
from cloudiag.jobs.agent_protocol import RESULT_GRACE, WITHDRAWN, AgentClient
from cloudiag.jobs.diagnostics_job import DiagnosticsJob
from cloudiag.jobs.final_state import RESTART_BY, RESTARTED, SHUTDOWN_BY, SHUTDOWN_TEXT
from cloudiag.jobs.ownership import ORPHAN_GRACE, OUTCOME_LOST, SERVER_TIMEOUT
from cloudiag.jobs.runner import JobRunner
from tests.unit.fake_agents import FakeAgents

Runners = Callable[..., Awaitable[JobRunner]]
Agents = Callable[..., Awaitable[FakeAgents]]


@pytest.fixture
async def db(
    db: async_sessionmaker[AsyncSession],
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The test's database with the user, host and VM every job here belongs to."""
    sessions = db
    async with sessions.begin() as s:
        s.add(Zone(id="zone-1", name="z"))
        await s.flush()
        s.add(Host(id="host-1", name="host", zone_id="zone-1"))
        await s.flush()
        s.add(VirtualMachine(id="vm-1", name="r-1-VM", vm_type="domainrouter", zone_id="zone-1"))
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


@pytest.fixture
async def agents(bus: Client) -> AsyncIterator[Agents]:
    """Starts stand-ins for host-1's agent; stops them."""
    made: list[FakeAgents] = []

    async def make(**options: Any) -> FakeAgents:
        agent = FakeAgents(bus, **options)
        made.append(agent)
        return await agent.start()

    yield make
    for agent in made:
        await agent.close()


@pytest.fixture
async def runners(
    db: async_sessionmaker[AsyncSession], bus: Client, agents: Agents
) -> AsyncIterator[Runners]:
    """Starts runners on the test's bus (streams, result intake, recovery); closes them
    before the agents stop (a shutdown asks them to stop their jobs)."""
    made: list[JobRunner] = []

    async def make(server_id: str = "me", start_timeout: float = 60.0) -> JobRunner:
        runner = JobRunner(db, bus, server_id=server_id, start_timeout=start_timeout)
        made.append(runner)
        await runner.start()
        return runner

    yield make
    for runner in made:
        await runner.close()


async def _new_job(
    db: async_sessionmaker[AsyncSession],
    n: int,
    server_id: str = "me",
    timelimit: float = 120.0,
    start_timeout: float = 60.0,
    address: str = "192.0.2.1",
) -> DiagnosticsJob:
    """A pending job row owned by `server_id`, and what the runner needs to run it."""
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
                request={"type": "ping", "ipaddress": address, "timelimit": timelimit},
                server_id=server_id,
            )
        )
    return DiagnosticsJob(
        job_id=job_id,
        host_id="host-1",
        host_name="host",
        vm_name="r-1-VM",
        vm_type="domainrouter",
        request=RunRequest(
            job_id=job_id,
            start_by=time.time() + start_timeout,
            vm_id="vm-1",
            type="ping",
            address=address,
            params=[],
            time_limit=timelimit,
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


async def _completed(db: async_sessionmaker[AsyncSession], job_id: str) -> int:
    """How many Completed events the job has."""
    async with db() as s:
        rows = await s.scalars(
            select(Event.id).where(Event.job_id == job_id, Event.state == "Completed")
        )
        return len(list(rows))


async def _until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def _final(db: async_sessionmaker[AsyncSession], job_id: str, timeout: float = 5) -> AsyncJob:
    """The job's row once it is final."""
    async with asyncio.timeout(timeout):
        while (row := await _job(db, job_id)).status == 0:
            await asyncio.sleep(0.02)
    return row


async def _results_left(bus: Client) -> int:
    """Results in the stream no server has acknowledged yet."""
    info = await bus.jetstream().stream_info(subjects.RESULTS_STREAM)
    return info.state.messages


async def test_a_job_runs_on_its_agent_and_its_result_is_stored_with_its_event(
    db: async_sessionmaker[AsyncSession], runners: Runners, agents: Agents
) -> None:
    agent = await agents()
    runner = await runners()
    job = await _new_job(db, 1)
    runner.submit(job)
    await _until(lambda: job.job_id in agent.running)
    await agent.finish(job.job_id, stdout="64 bytes\n")
    await _until(lambda: not runner._tasks)
    row = await _job(db, job.job_id)
    assert row.status == 1 and row.result is not None
    assert row.result["diagnostics"]["stdout"] == "64 bytes\n"
    assert await _completed(db, job.job_id) == 1
    assert [r.job_id for r in agent.runs] == [job.job_id]


async def test_the_stored_summary_names_the_target_the_job_asked_for(
    db: async_sessionmaker[AsyncSession], runners: Runners, agents: Agents
) -> None:
    agent = await agents()
    runner = await runners()
    job = await _new_job(db, 1, address="web.lab.test")
    runner.submit(job)
    await _until(lambda: job.job_id in agent.running)
    # With denied networks the VM pins the name to the address it checked: ping never
    # sees the name, so its output names only the address.
    await agent.finish(
        job.job_id,
        stdout="PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data.\n"
        "64 bytes from 198.51.100.10: icmp_seq=1 ttl=63 time=0.052 ms\n",
    )
    await _until(lambda: not runner._tasks)
    row = await _job(db, job.job_id)
    assert row.result is not None
    parsed = row.result["diagnostics"]["parsed"]
    assert (parsed["dst_addr"], parsed["dst_name"]) == ("198.51.100.10", "web.lab.test")


async def test_a_result_delivered_twice_is_stored_once(
    db: async_sessionmaker[AsyncSession], runners: Runners, agents: Agents, bus: Client
) -> None:
    agent = await agents()
    runner = await runners()
    job = await _new_job(db, 1)
    runner.submit(job)
    await _until(lambda: job.job_id in agent.running)
    await agent.finish(job.job_id, stdout="first\n")
    # A second copy the stream does not drop as a duplicate (another message id), as after
    # its duplicate window, and different, to see which one the row keeps.
    again = RunResult(job_id=job.job_id, stdout="second\n", stderr="", exitcode="1")
    await bus.jetstream().publish(
        subjects.job_result(job.host_id, job.job_id), again.encode(), stream=subjects.RESULTS_STREAM
    )
    await _until(lambda: not runner._tasks)
    async with asyncio.timeout(5):
        while await _results_left(bus):
            await asyncio.sleep(0.02)
    row = await _job(db, job.job_id)
    assert row.status == 1 and row.result is not None
    assert row.result["diagnostics"]["stdout"] == "first\n"
    assert await _completed(db, job.job_id) == 1


async def test_a_result_whose_store_fails_on_a_transient_error_is_stored_on_redelivery(
    db: async_sessionmaker[AsyncSession],
    runners: Runners,
    agents: Agents,
    bus: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(result_intake, "NAK_FIRST", 0.05)
    real_store_once = outcomes.store_once
    calls = 0

    async def blip_once(*args: Any, **kwargs: Any) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            locked = sqlite3.OperationalError("database is locked")
            locked.sqlite_errorcode = sqlite3.SQLITE_BUSY  # as SQLite sets it
            raise OperationalError("UPDATE async_jobs", {}, locked)
        return await real_store_once(*args, **kwargs)

    monkeypatch.setattr(outcomes, "store_once", blip_once)
    agent = await agents()
    await runners()
    # Nobody follows this job but the intake (its server's task would store it from the
    # agent's table after a while): only a redelivery of the result can store it.
    job = await _new_job(db, 1)
    await agent.finish(job.job_id, stdout="64 bytes\n")
    row = await _final(db, job.job_id, timeout=3)
    assert row.status == 1 and row.result is not None
    assert row.result["diagnostics"]["stdout"] == "64 bytes\n"
    assert calls == 2
    assert await _completed(db, job.job_id) == 1
    async with asyncio.timeout(5):
        while await _results_left(bus):  # Acked once stored, not before.
            await asyncio.sleep(0.02)


async def test_a_job_whose_host_has_no_agent_fails_and_never_runs_later(
    db: async_sessionmaker[AsyncSession], runners: Runners, agents: Agents
) -> None:
    runner = await runners()
    job = await _new_job(db, 1)
    runner.submit(job)
    row = await _final(db, job.job_id)
    assert row.result == {
        "errorcode": 530,
        "errortext": "The agent for host host (host-1) is not connected",
    }
    agent = await agents()  # The agent connects at last: the request was withdrawn.
    await asyncio.sleep(1.5)
    assert agent.runs == []


async def test_a_job_on_a_silent_host_fails_at_once_and_is_never_sent(
    db: async_sessionmaker[AsyncSession], runners: Runners, agents: Agents
) -> None:
    """Its heartbeats stopped and its agent, still connected, does not answer: the job fails
    in about a second rather than at its start deadline, and its request is not queued."""
    agent = await agents(taking=False, silent=True)
    runner = await runners()
    job = dataclasses.replace(await _new_job(db, 1), host_up=False)
    runner.submit(job)
    row = await _final(db, job.job_id, timeout=3)
    assert row.result == {
        "errorcode": 530,
        "errortext": "The agent for host host (host-1) is not connected: its heartbeats "
        "stopped and it does not answer",
    }
    assert await _completed(db, job.job_id) == 1
    agent.take()
    await asyncio.sleep(1)
    assert agent.runs == []


async def test_a_job_on_a_silent_host_whose_agent_answers_runs(
    db: async_sessionmaker[AsyncSession], runners: Runners, agents: Agents
) -> None:
    """Heartbeats can lag (a busy database) while the agent is there: it answers, so the job
    runs."""
    agent = await agents()
    runner = await runners()
    job = dataclasses.replace(await _new_job(db, 1), host_up=False)
    runner.submit(job)
    await _until(lambda: job.job_id in agent.running)
    await agent.finish(job.job_id, stdout="64 bytes\n")
    row = await _final(db, job.job_id)
    assert row.status == 1


async def test_a_request_no_agent_takes_before_its_deadline_is_withdrawn(
    db: async_sessionmaker[AsyncSession],
    runners: Runners,
    agents: Agents,
    bus: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner_module, "CHECK_INTERVAL", 0.1)
    agent = await agents(taking=False)  # Connected, but paused: it takes nothing.
    runner = await runners(start_timeout=0.5)
    job = await _new_job(db, 1, start_timeout=0.5)
    runner.submit(job)
    row = await _final(db, job.job_id)
    assert row.result is not None
    assert "did not take the job within 0.5 s" in row.result["errortext"]
    agent.take()  # The agent resumes: the request is gone, and its record says withdrawn.
    await asyncio.sleep(1.5)
    assert agent.runs == []
    record = await agent.table.get(job.job_id)
    assert record is not None and record.session == ""
    assert record.result is not None and record.result.refused == WITHDRAWN


async def test_withdraw_and_the_agents_claim_race_whoever_records_first_wins(
    db: async_sessionmaker[AsyncSession], runners: Runners, bus: Client
) -> None:
    runner = await runners()
    client = AgentClient(bus, runner._bus)
    taken, withdrawn = await _new_job(db, 1), await _new_job(db, 2)
    agent = FakeAgents(bus)
    # The agent records the first job before the server tries to withdraw it.
    assert await agent.table.claim(taken.job_id, JobRecord(state="running", session="s")) is None
    assert await client.withdraw(taken, WITHDRAWN) is False
    # The server withdraws the second before the agent takes it.
    assert await client.withdraw(withdrawn, WITHDRAWN) is True
    known = await agent.table.claim(withdrawn.job_id, JobRecord(state="running", session="s"))
    assert known is not None and known.session == ""  # The agent's cue not to run it.
    assert await client.withdraw(withdrawn, WITHDRAWN) is True  # Asked again: still so.


async def test_shutdown_asks_the_agents_to_stop_and_keeps_the_output(
    db: async_sessionmaker[AsyncSession], runners: Runners, agents: Agents
) -> None:
    agent = await agents()
    runner = await runners()
    job = await _new_job(db, 1)
    runner.submit(job)
    await _until(lambda: job.job_id in agent.running)
    await runner.close()
    assert [(c.job_id, c.by) for c in agent.cancels] == [(job.job_id, SHUTDOWN_BY)]
    assert agent.running == set()
    result = (await _job(db, job.job_id)).result
    assert result is not None
    assert result["errortext"] == SHUTDOWN_TEXT and result["cancelled"] is True
    assert result["diagnostics"]["stdout"] == "partial\n"
    assert await _completed(db, job.job_id) == 1


async def test_shutdown_ends_the_job_even_when_its_agent_does_not_answer(
    db: async_sessionmaker[AsyncSession],
    runners: Runners,
    agents: Agents,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner_module, "SHUTDOWN_GRACE", 0.2)
    agent = await agents(answers=False)
    runner = await runners()
    job = await _new_job(db, 1)
    runner.submit(job)
    await _until(lambda: job.job_id in agent.running)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await runner.close()
    assert loop.time() - started < 2 * 0.2 + 1  # a cancel's wait, then the output's
    result = (await _job(db, job.job_id)).result
    assert result == {"errorcode": 530, "errortext": SHUTDOWN_TEXT}


async def test_recovery_takes_over_the_jobs_the_previous_run_left(
    db: async_sessionmaker[AsyncSession], runners: Runners, agents: Agents, bus: Client
) -> None:
    """Finished on the agent → stored; running → cancelled, its output kept; queued → runs."""
    agent = await agents(taking=False)
    finished, running, queued = [await _new_job(db, n) for n in (1, 2, 3)]
    done = RunResult(job_id=finished.job_id, stdout="done before\n", stderr="", exitcode="0")
    await agent.table.claim(
        finished.job_id, JobRecord(state="finished", session="old", result=done, published=True)
    )
    await agent.table.claim(running.job_id, JobRecord(state="running", session="fake-agent"))
    agent.running.add(running.job_id)
    await bus.jetstream().publish(
        subjects.agent_request("host-1", queued.job_id),
        queued.request.encode(),
        stream=subjects.REQUESTS_STREAM,
    )

    runner = await runners()  # The same server id as the jobs': its previous run's.
    assert len(runner._tasks) == 3
    row = await _final(db, finished.job_id)
    assert row.status == 1 and row.result is not None
    assert row.result["diagnostics"]["stdout"] == "done before\n"

    row = await _final(db, running.job_id)
    assert [(c.job_id, c.by) for c in agent.cancels] == [(running.job_id, RESTART_BY)]
    assert row.status == 2 and row.result is not None
    assert row.result["errortext"] == RESTARTED and row.result["cancelled"] is True
    assert row.result["diagnostics"]["stdout"] == "partial\n"

    assert (await _job(db, queued.job_id)).status == 0
    agent.take()
    await _until(lambda: queued.job_id in agent.running)
    await agent.finish(queued.job_id)
    row = await _final(db, queued.job_id)
    assert row.status == 1
    await _until(lambda: not runner._tasks)
    for job in (finished, running, queued):
        assert await _completed(db, job.job_id) == 1, job.job_id


async def test_a_live_servers_running_job_is_not_swept_by_another(
    db: async_sessionmaker[AsyncSession], runners: Runners, agents: Agents
) -> None:
    agent = await agents()
    busy = await runners("busy")
    other = JobRunner(db, nc=None, server_id="other")  # type: ignore[arg-type]
    job = await _new_job(db, 1, server_id="busy", timelimit=1)
    busy.submit(job)
    await _until(lambda: job.job_id in agent.running)
    later = utcnow() + timedelta(seconds=ORPHAN_GRACE + 30)  # far past the 1 s time limit
    await busy.heartbeat(later)
    assert await other.sweep(later) == 0
    assert (await _job(db, job.job_id)).status == 0
    assert await busy.sweep(later) == 0  # Nor by its own: it holds the job.


async def test_a_job_of_a_server_that_stopped_beating_is_taken_over_to_its_end(
    db: async_sessionmaker[AsyncSession], runners: Runners, agents: Agents
) -> None:
    """Its server died after sending it: another server's sweep takes it over, and stores
    the result its agent sends, rather than fail a job that is still running fine."""
    agent = await agents()
    me = await runners("me")
    job = await _new_job(db, 1, server_id="gone")
    await me.agents.send(job)  # As the server "gone" did, before it died.
    await _until(lambda: job.job_id in agent.running)
    gone = JobRunner(db, nc=None, server_id="gone")  # type: ignore[arg-type]
    await gone.heartbeat(utcnow() - timedelta(days=1))
    soon = utcnow() + timedelta(seconds=max(SERVER_TIMEOUT, ORPHAN_GRACE) + 1)
    assert await me.sweep(soon) == 0  # Nothing failed...
    assert (await _job(db, job.job_id)).server_id == "me"  # ...it is this server's now.
    await agent.finish(job.job_id, stdout="64 bytes\n")
    row = await _final(db, job.job_id)
    assert row.status == 1 and row.result is not None
    assert row.result["diagnostics"]["stdout"] == "64 bytes\n"
    assert await _completed(db, job.job_id) == 1


async def test_an_own_job_this_runner_no_longer_holds_is_swept(
    db: async_sessionmaker[AsyncSession],
) -> None:
    me = JobRunner(db, nc=None, server_id="me")  # type: ignore[arg-type]
    job = await _new_job(db, 1)  # as if storing its outcome had failed for good
    await me.heartbeat()
    assert await me.sweep(utcnow() + timedelta(seconds=ORPHAN_GRACE + 1)) == 1
    assert (await _job(db, job.job_id)).result == {"errorcode": 530, "errortext": OUTCOME_LOST}


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
