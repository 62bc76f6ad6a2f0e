"""Jobs failed by recovery and by the sweep get their Completed event, as the engine writes it
for a job it ends (jobs/completion.py), on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.models import AsyncJob, Event, utcnow
from cloudiag.domain import Caller, JobStatus
from cloudiag.jobs import completion, outcomes
from cloudiag.jobs.diagnostics_job import DiagnosticsJob
from cloudiag.jobs.final_state import failed
from cloudiag.jobs.ownership import ORPHAN_GRACE, OUTCOME_LOST, Ownership
from cloudiag.services.runs import CreatedRun, Limits, create_jobs, find_targets, plan_run
from tests.databases import migrated
from tests.unit.zone_rows import add_zone

CALLER = Caller(id="user-1", username="u", role="Admin", account_id="acct", domain_id="dom")
#: VM name -> (its type, the event type of its diagnostics, the resource type of its events)
VMS = {
    "r-1-VM": ("domainrouter", "ROUTER.DIAGNOSTICS", "DomainRouter"),
    "s-2-VM": ("secondarystoragevm", "SSVM.DIAGNOSTICS", "SystemVm"),
    "v-3-VM": ("consoleproxy", "PROXY.DIAGNOSTICS", "SystemVm"),
}


@pytest.fixture(params=["sqlite", "postgresql"])
async def sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A migrated database of each backend: one host, its three system VMs, one user."""
    async with migrated(request.param, tmp_path) as factory:
        await add_zone(
            factory,
            CALLER,
            {name: vm_type for name, (vm_type, _, _) in VMS.items()},
            host_name="host-one",
        )
        yield factory


async def _run(
    sessions: async_sessionmaker[AsyncSession], server_id: str, vms: list[str]
) -> CreatedRun:
    """Pending jobs of `server_id` on these VMs (a parent over them if more than one)."""
    async with sessions.begin() as s:
        targets = await find_targets(s, vms)
        plan = plan_run(
            targets,
            type_name="ping",
            address="192.0.2.1",
            params="-c 1",
            limits=Limits(time_limit=None),
        )
        return await create_jobs(s, CALLER, plan, server_id=server_id)


def _owner(sessions: async_sessionmaker[AsyncSession], server_id: str) -> Ownership:
    """A server whose runner holds no job (its jobs are the previous run's)."""
    return Ownership(sessions, server_id=server_id, server_label="test", holds=lambda _: False)


async def _completed(sessions: async_sessionmaker[AsyncSession], job_id: str) -> list[Event]:
    async with sessions() as s:
        rows = await s.scalars(
            select(Event).where(Event.job_id == job_id, Event.state == "Completed")
        )
        return list(rows)


async def _status(sessions: async_sessionmaker[AsyncSession], job_id: str) -> int:
    async with sessions() as s:
        job = await s.get(AsyncJob, job_id)
    assert job is not None
    return job.status


def _expected(job: DiagnosticsJob, errortext: str) -> dict[str, Any]:
    """The Completed event of a failed job, field by field."""
    _, event_type, resource_type = VMS[job.vm_name]
    return {
        "type": event_type,
        "state": "Completed",
        "level": "ERROR",
        "description": (
            f"Diagnostics ping 192.0.2.1 on system vm {job.vm_name} ({job.vm_name}): "
            f"failed: {errortext}"
        ),
        "user_id": CALLER.id,
        "username": CALLER.username,
        "account_id": CALLER.account_id,
        "domain_id": CALLER.domain_id,
        "resource_type": resource_type,
        "resource_id": job.vm_name,
        "job_id": job.job_id,
    }


#: The fields of an event that tell what happened (not its own id and time).
FIELDS = (
    "type",
    "state",
    "level",
    "description",
    "user_id",
    "username",
    "account_id",
    "domain_id",
    "resource_type",
    "resource_id",
    "job_id",
)


def _fields(event: Event) -> dict[str, Any]:
    return {key: getattr(event, key) for key in FIELDS}


async def test_the_sweep_writes_every_failed_jobs_completed_event(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mine = await _run(sessions, "me", ["s-2-VM", "v-3-VM"])  # its runner holds neither
    alive = (await _run(sessions, "alive", ["r-1-VM"])).jobs[0]
    later = utcnow() + timedelta(seconds=ORPHAN_GRACE + 1)
    await _owner(sessions, "alive").heartbeat(later)

    me = _owner(sessions, "me")
    assert await me.sweep(later) == 2

    for job in mine.jobs:
        assert [_fields(e) for e in await _completed(sessions, job.job_id)] == [
            _expected(job, OUTCOME_LOST)
        ]
    assert mine.parent_id is not None
    [group] = await _completed(sessions, mine.parent_id)
    assert group.description == "Diagnostics on 2 system vms: 2 of 2 jobs failed"
    assert await _status(sessions, alive.job_id) == JobStatus.PENDING
    assert await _completed(sessions, alive.job_id) == []
    assert await me.sweep(later) == 0  # nothing twice
    for job in mine.jobs:
        assert len(await _completed(sessions, job.job_id)) == 1


async def test_a_dead_servers_jobs_are_taken_over_not_failed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    theirs = await _run(sessions, "gone", ["s-2-VM", "v-3-VM"])
    alive = (await _run(sessions, "alive", ["r-1-VM"])).jobs[0]
    await _owner(sessions, "gone").heartbeat(utcnow() - timedelta(days=1))
    later = utcnow() + timedelta(seconds=ORPHAN_GRACE + 1)
    await _owner(sessions, "alive").heartbeat(later)

    me, other = _owner(sessions, "me"), _owner(sessions, "other")
    taken = await me.adopt_orphans(later)
    assert sorted(taken) == sorted(job.job_id for job in theirs.jobs)
    assert await other.adopt_orphans(later) == []  # Each job goes to one server.
    async with sessions() as s:
        owners = await s.execute(select(AsyncJob.id, AsyncJob.server_id, AsyncJob.status))
        rows = {job_id: (owner, status) for job_id, owner, status in owners}
    for job in theirs.jobs:
        assert rows[job.job_id] == ("me", JobStatus.PENDING)
        assert await _completed(sessions, job.job_id) == []
    assert rows[alive.job_id] == ("alive", JobStatus.PENDING)


async def test_the_event_is_the_one_the_engine_writes(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Failed by the engine (outcomes.store) or here, a job's Completed event reads the same."""
    by_engine = (await _run(sessions, "me", ["r-1-VM"])).jobs[0]
    by_sweep = (await _run(sessions, "me", ["r-1-VM"])).jobs[0]
    await outcomes.store(sessions, by_engine, failed("gone"))
    async with sessions.begin() as s:
        [ended] = await completion.fail_pending(s, {by_sweep.job_id: "gone"})
    assert (ended.job_id, ended.errortext, ended.host_name) == (by_sweep.job_id, "gone", "host-one")
    [engine_event] = await _completed(sessions, by_engine.job_id)
    [event] = await _completed(sessions, by_sweep.job_id)
    assert {**_fields(event), "job_id": None} == {**_fields(engine_event), "job_id": None}


async def test_only_pending_jobs_are_failed(sessions: async_sessionmaker[AsyncSession]) -> None:
    job = (await _run(sessions, "me", ["r-1-VM"])).jobs[0]
    await outcomes.store(sessions, job, failed("first"))
    async with sessions.begin() as s:
        assert await completion.fail_pending(s, {job.job_id: "second", "no-such-job": "x"}) == []
    [event] = await _completed(sessions, job.job_id)
    assert event.description.endswith("failed: first")


def _failed_pings() -> tuple[float, float]:
    """The metrics' count of failed pings, and of timed ones."""
    count = REGISTRY.get_sample_value("cloudiag_jobs_total", {"type": "ping", "outcome": "failed"})
    timed = REGISTRY.get_sample_value("cloudiag_job_duration_seconds_count", {"type": "ping"})
    return count or 0.0, timed or 0.0


async def test_the_sweep_counts_every_failed_job_once_in_the_metrics(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _run(sessions, "me", ["s-2-VM", "v-3-VM"])
    later = utcnow() + timedelta(seconds=ORPHAN_GRACE + 1)
    count, timed = _failed_pings()
    me = _owner(sessions, "me")
    assert await me.sweep(later) == 2
    # Counted after the commit, each with its duration from its row's creation time.
    assert _failed_pings() == (count + 2, timed + 2)
    assert await me.sweep(later) == 0
    assert _failed_pings() == (count + 2, timed + 2)
