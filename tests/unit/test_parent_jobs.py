"""A run over many VMs: its jobs created in one transaction under a parent whose status
follows theirs, on SQLite and on PostgreSQL, with the real engine on a real nats-server
and a stand-in agent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from nats.aio.client import Client
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus.messages import RunResult
from cloudiag.db.models import AsyncJob, Event, VirtualMachine, utcnow
from cloudiag.domain import Caller, InvalidInput, JobStatus, NotFound
from cloudiag.jobs import outcomes
from cloudiag.jobs.diagnostics_job import DiagnosticsJob
from cloudiag.jobs.final_state import of_result
from cloudiag.jobs.ownership import ORPHAN_GRACE
from cloudiag.jobs.runner import JobRunner
from cloudiag.services.runs import (
    CreatedRun,
    Limits,
    create_jobs,
    find_targets,
    plan_run,
    start_diagnostics,
)
from tests.databases import migrated
from tests.unit.fake_agents import FakeAgents
from tests.unit.zone_rows import add_zone

CALLER = Caller(id="user-1", username="u", role="Admin", account_id="acct", domain_id="dom")
VMS = {"r-1-VM": "domainrouter", "s-2-VM": "secondarystoragevm", "v-3-VM": "consoleproxy"}
LIMITS = Limits(time_limit=None)


@pytest.fixture(params=["sqlite", "postgresql"])
async def sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A migrated database of each backend holding one host with three system VMs."""
    async with migrated(request.param, tmp_path) as factory:
        await add_zone(factory, CALLER, VMS, host_name="host")
        yield factory


@pytest.fixture
async def agent(bus: Client) -> AsyncIterator[FakeAgents]:
    """host-1's agent, taking its requests."""
    agent = await FakeAgents(bus).start()
    yield agent
    await agent.close()


@pytest.fixture
async def runner(
    sessions: async_sessionmaker[AsyncSession], bus: Client, agent: FakeAgents
) -> AsyncIterator[JobRunner]:
    """A started runner of server "me"."""
    runner = JobRunner(sessions, bus, server_id="me")
    await runner.start()
    yield runner
    await runner.close()


class DiesAtOnce:
    """A server that commits its jobs and dies before it sends any (as a runner to
    start_diagnostics)."""

    server_id = "me"

    def submit(self, job: DiagnosticsJob) -> None:
        return None


async def _until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def _start(
    sessions: async_sessionmaker[AsyncSession], runner: JobRunner | DiesAtOnce, targets: list[str]
) -> CreatedRun:
    return await start_diagnostics(
        sessions,
        runner,  # type: ignore[arg-type]
        CALLER,
        target_ids=targets,
        type_name="ping",
        address="192.0.2.1",
        params="-c 1",
        limits=LIMITS,
    )


async def _job(sessions: async_sessionmaker[AsyncSession], job_id: str) -> AsyncJob:
    async with sessions() as s:
        job = await s.get(AsyncJob, job_id)
    assert job is not None
    return job


async def _events(sessions: async_sessionmaker[AsyncSession], job_id: str) -> list[str]:
    async with sessions() as s:
        rows = await s.scalars(select(Event.state).where(Event.job_id == job_id))
        return list(rows)


async def test_a_parent_succeeds_when_its_last_child_succeeds(
    sessions: async_sessionmaker[AsyncSession], runner: JobRunner, agent: FakeAgents
) -> None:
    agents = agent
    run = await _start(sessions, runner, list(VMS))
    assert run.parent_id is not None and run.job_id == run.parent_id
    assert len(run.jobs) == 3
    await _until(lambda: len(agents.running) == 3)
    parent = await _job(sessions, run.parent_id)
    assert parent.request["targetids"] == list(VMS)
    for child in run.jobs:
        assert (await _job(sessions, child.job_id)).parent_id == run.parent_id
    *first, last = run.jobs
    for child in first:
        await agents.finish(child.job_id)
    await _until(lambda: len(runner._tasks) == 1)
    assert (await _job(sessions, run.parent_id)).status == JobStatus.PENDING
    await agents.finish(last.job_id)
    await _until(lambda: not runner._tasks)
    parent = await _job(sessions, run.parent_id)
    assert parent.status == JobStatus.SUCCEEDED and parent.completed is not None
    assert parent.result == {"jobs": {"total": 3, "succeeded": 3, "failed": 0}}
    assert await _events(sessions, run.parent_id) == ["Started", "Completed"]


async def test_a_parent_fails_when_any_child_fails(
    sessions: async_sessionmaker[AsyncSession], runner: JobRunner, agent: FakeAgents
) -> None:
    agents = agent
    run = await _start(sessions, runner, ["r-1-VM", "s-2-VM"])
    assert run.parent_id is not None
    await _until(lambda: len(agents.running) == 2)
    await agents.finish(run.jobs[0].job_id)
    await agents.finish(run.jobs[1].job_id, error="The VM s-2-VM stopped during the diagnostic")
    await _until(lambda: not runner._tasks)
    parent = await _job(sessions, run.parent_id)
    assert parent.status == JobStatus.FAILED
    assert parent.result == {
        "errorcode": 530,
        "errortext": "1 of 2 jobs failed",
        "jobs": {"total": 2, "succeeded": 1, "failed": 1},
    }


async def test_a_run_on_one_vm_has_no_parent(
    sessions: async_sessionmaker[AsyncSession], runner: JobRunner, agent: FakeAgents
) -> None:
    agents = agent
    run = await _start(sessions, runner, ["r-1-VM"])
    assert run.parent_id is None and run.job_id == run.jobs[0].job_id
    await _until(lambda: len(agents.running) == 1)
    await agents.finish(run.job_id)
    await _until(lambda: not runner._tasks)
    job = await _job(sessions, run.job_id)
    assert job.status == JobStatus.SUCCEEDED and job.parent_id is None


async def test_one_refused_vm_creates_no_job_at_all(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as s:
        vm = await s.get(VirtualMachine, "v-3-VM")
        assert vm is not None
        vm.state = "Stopped"
    runner = DiesAtOnce()
    with pytest.raises(InvalidInput, match=r"v-3-VM .* is Stopped"):
        await _start(sessions, runner, list(VMS))
    with pytest.raises(NotFound, match="no-such-vm") as found:
        await _start(sessions, runner, ["r-1-VM", "no-such-vm"])
    assert found.value.param == "targetid"
    async with sessions() as s:
        assert list(await s.scalars(select(AsyncJob.id))) == []
        assert list(await s.scalars(select(Event.id))) == []


async def test_the_plan_checks_every_vm_with_the_sysvm_rules(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as s:
        targets = await find_targets(s, list(VMS))
    plan = plan_run(targets, type_name="ping", address="192.0.2.1", params="-c 2", limits=LIMITS)
    assert [(r.target.vm.id, r.type, r.params) for r in plan.runs] == [
        (vm, "ping", ("-c", "2")) for vm in VMS
    ]
    with pytest.raises(InvalidInput, match="ping6 is not available on a secondarystoragevm") as e:
        plan_run(targets, type_name="ping6", address="2001:db8::1", params=None, limits=LIMITS)
    assert e.value.param == "type"


async def test_children_swept_settle_their_parent_and_the_parent_is_not_swept(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # The children's outcomes could not be stored: their runner no longer holds them.
    dead = DiesAtOnce()
    dead.server_id = "me"
    run = await _start(sessions, dead, ["r-1-VM", "s-2-VM"])
    assert run.parent_id is not None
    me = JobRunner(sessions, nc=None, server_id="me")  # type: ignore[arg-type]
    assert await me.sweep(utcnow() + timedelta(seconds=ORPHAN_GRACE + 1)) == 2
    parent = await _job(sessions, run.parent_id)
    assert parent.status == JobStatus.FAILED
    assert parent.result is not None and parent.result["errortext"] == "2 of 2 jobs failed"


async def test_recovery_settles_the_parent_of_the_jobs_it_fails(
    sessions: async_sessionmaker[AsyncSession], bus: Client
) -> None:
    run = await _start(sessions, DiesAtOnce(), ["r-1-VM", "s-2-VM"])
    assert run.parent_id is not None
    restarted = JobRunner(sessions, bus, server_id="me")
    try:
        await restarted.ensure_streams()
        # The bus never had their requests: nobody knows the jobs, they fail at once.
        assert await restarted.recover() == 2  # the children, not their parent
        await _until(lambda: not restarted._tasks)
    finally:
        await restarted.close()
    assert (await _job(sessions, run.parent_id)).status == JobStatus.FAILED
    for child in run.jobs:
        assert await _events(sessions, child.job_id) == ["Started", "Completed"]


async def test_children_ending_at_once_settle_their_parent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Each child's transaction counts its siblings; without a lock on the parent, two
    ending at once could each see the other pending, and the parent would stay pending."""
    for _ in range(5):  # A race: several rounds, to lose it if it can be lost.
        async with sessions.begin() as s:
            targets = await find_targets(s, list(VMS))
            plan = plan_run(
                targets, type_name="ping", address="192.0.2.1", params=None, limits=LIMITS
            )
            run = await create_jobs(s, CALLER, plan, server_id="me")
        assert run.parent_id is not None
        await asyncio.gather(
            *(
                outcomes.store(
                    sessions,
                    job,
                    of_result(
                        "ping",
                        RunResult(job_id=job.job_id, stdout="", stderr="", exitcode="0"),
                        "host",
                    ),
                )
                for job in run.jobs
            )
        )
        assert (await _job(sessions, run.parent_id)).status == JobStatus.SUCCEEDED
        assert await _events(sessions, run.parent_id) == ["Started", "Completed"]
