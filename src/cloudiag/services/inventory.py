"""Hosts and VMs as the agents report them; Up/Disconnected from heartbeats."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.bus.messages import AgentReport
from cloudiag.db.models import Host, VirtualMachine, Zone, utcnow

#: A host whose agent missed this many heartbeats is shown Disconnected.
MISSED_BEATS = 3


def host_state(host: Host, heartbeat_interval: float, now: datetime | None = None) -> str:
    """Up while the agent is connected and its heartbeats are fresh, else Disconnected."""
    now = now or utcnow()
    if not host.connected or host.last_heartbeat is None:
        return "Disconnected"
    if now - host.last_heartbeat > timedelta(seconds=heartbeat_interval * MISSED_BEATS):
        return "Disconnected"
    return "Up"


async def apply_report(db: AsyncSession, report: AgentReport) -> None:
    """Upsert the zone, the host and its VMs; VMs the agent no longer reports are Stopped."""
    now = utcnow()
    zone = await db.get(Zone, report.zone_id)
    if zone is None:
        db.add(Zone(id=report.zone_id, name=report.zone_name))
    elif zone.name != report.zone_name:
        zone.name = report.zone_name
    host = await db.get(Host, report.host_id)
    if host is None:
        host = Host(id=report.host_id, name=report.host_name, zone_id=report.zone_id)
        db.add(host)
    host.name = report.host_name
    host.zone_id = report.zone_id
    host.addresses = list(report.addresses)
    host.agent_version = report.agent_version
    host.agent_session = report.session
    host.connected = report.connected
    host.last_heartbeat = now
    await db.flush()
    if not report.connected:
        return
    seen: set[str] = set()
    for vm in report.vms:
        seen.add(vm.id)
        row = await db.get(VirtualMachine, vm.id)
        if row is None:
            row = VirtualMachine(id=vm.id, name=vm.name, vm_type=vm.vm_type, zone_id=report.zone_id)
            db.add(row)
        access = vm.access.model_dump(mode="json")
        changed = (
            row.state != vm.state
            or row.host_id != (report.host_id if vm.state == "Running" else None)
            or row.addresses != vm.addresses
            or row.access != access
            or row.name != vm.name
        )
        if changed:
            row.name = vm.name
            row.vm_type = vm.vm_type
            row.state = vm.state
            row.host_id = report.host_id if vm.state == "Running" else None
            row.zone_id = report.zone_id
            row.addresses = dict(vm.addresses)
            row.access = access
            row.updated = now
    gone = select(VirtualMachine.id).where(
        VirtualMachine.host_id == report.host_id, VirtualMachine.id.not_in(seen)
    )
    await db.execute(
        update(VirtualMachine)
        .where(VirtualMachine.id.in_(gone.scalar_subquery()))
        .values(state="Stopped", host_id=None, updated=now)
        .execution_options(synchronize_session=False)
    )
