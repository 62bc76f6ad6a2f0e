"""Agent reports stored in batches, on SQLite and PostgreSQL: a repeated report only
refreshes its host's heartbeat, a changed one is applied whole, and with several servers a
report is judged against the database, not against one server's memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus.messages import AgentReport, NetnsAccess, VmReport
from cloudiag.db.models import Host, VirtualMachine
from cloudiag.services.heartbeats import ReportIntake
from tests.databases import migrated


@pytest.fixture(params=["sqlite", "postgresql"])
async def sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with migrated(request.param, tmp_path) as factory:
        yield factory


def _report(
    host: str, vms: list[str], *, session: str = "s1", connected: bool = True
) -> AgentReport:
    return AgentReport(
        host_id=host,
        host_name=f"name-{host}",
        zone_id="zone-1",
        zone_name="zone",
        agent_version="1",
        session=session,
        connected=connected,
        vms=[
            VmReport(
                id=f"{host}-{vm}",
                name=vm,
                vm_type="domainrouter",
                state="Running",
                access=NetnsAccess(namespace=vm),
            )
            for vm in vms
        ],
    )


def _offer(intake: ReportIntake, report: AgentReport) -> None:
    intake.offer(report, report.encode())


async def _host(db: async_sessionmaker[AsyncSession], host: str) -> Host:
    async with db() as s:
        row = await s.get(Host, host)
        assert row is not None
        return row


async def _vm_states(db: async_sessionmaker[AsyncSession], host: str) -> dict[str, str]:
    async with db() as s:
        rows = await s.execute(
            select(VirtualMachine.name, VirtualMachine.state).where(
                VirtualMachine.id.startswith(f"{host}-")
            )
        )
        return {name: state for name, state in rows}


def _beat(row: Host) -> datetime:
    assert row.last_heartbeat is not None
    return row.last_heartbeat


async def test_a_repeated_report_only_refreshes_the_heartbeat(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    intake = ReportIntake(sessions)
    _offer(intake, _report("h1", ["r-1-VM", "s-2-VM"]))
    assert await intake.flush() == 1
    first = _beat(await _host(sessions, "h1"))
    _offer(intake, _report("h1", ["r-1-VM", "s-2-VM"]))
    assert await intake.flush() == 0
    assert _beat(await _host(sessions, "h1")) > first
    assert await _vm_states(sessions, "h1") == {"r-1-VM": "Running", "s-2-VM": "Running"}


async def test_a_changed_report_is_applied_whole(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    intake = ReportIntake(sessions)
    _offer(intake, _report("h1", ["r-1-VM", "s-2-VM"]))
    await intake.flush()
    _offer(intake, _report("h1", ["r-1-VM"]))
    assert await intake.flush() == 1
    assert await _vm_states(sessions, "h1") == {"r-1-VM": "Running", "s-2-VM": "Stopped"}


async def test_many_hosts_in_one_flush(sessions: async_sessionmaker[AsyncSession]) -> None:
    intake = ReportIntake(sessions)
    hosts = [f"h{n}" for n in range(60)]
    for host in hosts:
        _offer(intake, _report(host, ["r-1-VM"]))
    assert await intake.flush() == 60
    before = {host: _beat(await _host(sessions, host)) for host in hosts}
    for host in hosts:
        _offer(intake, _report(host, ["r-1-VM"]))
    _offer(intake, _report("h7", []))  # The newest report of a host wins within a batch.
    assert await intake.flush() == 1
    for host in hosts:
        assert _beat(await _host(sessions, host)) > before[host]
    assert await _vm_states(sessions, "h7") == {"r-1-VM": "Stopped"}


async def test_another_servers_store_is_what_a_report_is_judged_against(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Server 1 stored R1, server 2 then R2; R1 again at server 1 is a change, not a beat."""
    one, two = ReportIntake(sessions), ReportIntake(sessions)
    _offer(one, _report("h1", ["r-1-VM", "s-2-VM"]))
    await one.flush()
    _offer(two, _report("h1", ["r-1-VM"]))
    await two.flush()
    assert await _vm_states(sessions, "h1") == {"r-1-VM": "Running", "s-2-VM": "Stopped"}
    _offer(one, _report("h1", ["r-1-VM", "s-2-VM"]))
    assert await one.flush() == 1
    assert await _vm_states(sessions, "h1") == {"r-1-VM": "Running", "s-2-VM": "Running"}


async def test_a_goodbye_then_the_same_hello_reconnects_the_host(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    intake = ReportIntake(sessions)
    _offer(intake, _report("h1", ["r-1-VM"]))
    await intake.flush()
    _offer(intake, _report("h1", ["r-1-VM"], connected=False))
    await intake.flush()
    assert not (await _host(sessions, "h1")).connected
    _offer(intake, _report("h1", ["r-1-VM"]))
    assert await intake.flush() == 1
    assert (await _host(sessions, "h1")).connected
