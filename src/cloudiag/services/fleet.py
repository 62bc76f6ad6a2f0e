"""The fleet as the database knows it: management servers, agents and pending jobs.

`cloudiag status` shows it and `/metrics` counts it; both read it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.db.models import AsyncJob, Host, ManagementServer, VirtualMachine, utcnow
from cloudiag.domain import SYSTEM_VM_TYPES, JobStatus
from cloudiag.jobs.ownership import SERVER_TIMEOUT
from cloudiag.services.inventory import host_state


@dataclass(frozen=True)
class ServerRow:
    """A management server and whether its heartbeat is fresh."""

    id: str
    name: str
    started: datetime
    last_seen: datetime
    #: Up while its heartbeat is fresh; Stopped once other servers take over its jobs.
    state: str


@dataclass(frozen=True)
class AgentRow:
    """A host's agent, its state by heartbeats, and how many system VMs it reports."""

    id: str
    name: str
    state: str
    last_heartbeat: datetime | None
    version: str
    system_vms: int


async def servers(db: AsyncSession, now: datetime | None = None) -> list[ServerRow]:
    """Every management server that ever beat, by name."""
    now = now or utcnow()
    stale = now - timedelta(seconds=SERVER_TIMEOUT)
    rows = await db.execute(select(ManagementServer).order_by(ManagementServer.name))
    return [
        ServerRow(s.id, s.name, s.started, s.last_seen, "Up" if s.last_seen > stale else "Stopped")
        for s in rows.scalars()
    ]


async def agents(
    db: AsyncSession, heartbeat_interval: float, now: datetime | None = None
) -> list[AgentRow]:
    """Every host's agent, by host name, Up or Disconnected as its heartbeats say."""
    now = now or utcnow()
    running = await db.execute(
        select(VirtualMachine.host_id, func.count())
        .where(
            VirtualMachine.vm_type.in_(list(SYSTEM_VM_TYPES)),
            VirtualMachine.state == "Running",
        )
        .group_by(VirtualMachine.host_id)
    )
    counts = {host_id: int(n) for host_id, n in running}
    hosts = (await db.execute(select(Host).order_by(Host.name, Host.id))).scalars()
    return [
        AgentRow(
            h.id,
            h.name,
            host_state(h, heartbeat_interval, now),
            h.last_heartbeat,
            h.agent_version,
            int(counts.get(h.id, 0)),
        )
        for h in hosts
    ]


async def pending_jobs(db: AsyncSession) -> int:
    """Jobs queued or running on an agent (parent jobs, which follow them, not counted)."""
    count = await db.scalar(
        select(func.count())
        .select_from(AsyncJob)
        .where(AsyncJob.status == JobStatus.PENDING, AsyncJob.host_id.is_not(None))
    )
    return int(count or 0)
