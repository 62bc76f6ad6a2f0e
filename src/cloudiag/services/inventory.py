"""Zones, hosts and VMs: stored as the agents report them, listed as the API shows them.

A host is Up or Disconnected by its agent's heartbeats.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus.messages import AgentReport
from cloudiag.db.models import Host, VirtualMachine, Zone, utcnow
from cloudiag.domain import SYSTEM_VM_TYPES, NotFound
from cloudiag.services.paging import Paging, page

#: A host whose agent missed this many heartbeats is shown Disconnected.
MISSED_BEATS = 3


def host_state(host: Host, heartbeat_interval: float, now: datetime | None = None) -> str:
    """Up while the agent is connected and its heartbeats are fresh, else Disconnected."""
    beat = host.last_heartbeat if host.connected else None
    return "Up" if heartbeat_fresh(beat, heartbeat_interval, now) else "Disconnected"


def heartbeat_fresh(
    last_heartbeat: datetime | None, heartbeat_interval: float, now: datetime | None = None
) -> bool:
    """Whether a connected agent's last heartbeat (None: gone or never seen) is recent
    enough for its host to be Up."""
    if last_heartbeat is None:
        return False
    now = now or utcnow()
    return now - last_heartbeat <= timedelta(seconds=heartbeat_interval * MISSED_BEATS)


async def apply_report(
    db: AsyncSession, report: AgentReport, report_hash: str | None = None
) -> None:
    """Upsert the zone, the host and its VMs; VMs the agent no longer reports are Stopped.

    ``report_hash``: the report's fingerprint, kept on the host's row so that a heartbeat
    repeating it needs no more than a refreshed last_heartbeat.
    """
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
    host.report_hash = report_hash
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


def _matching(query: Select[Any], column: Any, value: object | None) -> Select[Any]:
    return query if value is None else query.where(column == value)


def _keyword(query: Select[Any], keyword: str | None, column: Any) -> Select[Any]:
    return query.where(column.ilike(f"%{keyword}%")) if keyword else query


async def list_zones(
    sessions: async_sessionmaker[AsyncSession],
    paging: Paging,
    *,
    zone_id: str | None = None,
    name: str | None = None,
    keyword: str | None = None,
) -> tuple[list[Zone], int]:
    """One page of the zones, by name, and how many there are in all."""
    query = select(Zone).order_by(Zone.name, Zone.id)
    query = _matching(_matching(query, Zone.id, zone_id), Zone.name, name)
    async with sessions() as db:
        return await page(db, _keyword(query, keyword, Zone.name), paging)


@dataclass(frozen=True)
class HostPage:
    """One page of hosts, each with its state, and the names of their zones."""

    hosts: list[tuple[Host, str]]
    total: int
    zone_names: dict[str, str]


async def list_hosts(
    sessions: async_sessionmaker[AsyncSession],
    paging: Paging,
    heartbeat_interval: float,
    *,
    host_id: str | None = None,
    zone_id: str | None = None,
    name: str | None = None,
    state: str | None = None,
    keyword: str | None = None,
) -> HostPage:
    """One page of the hosts, by name; `state` (Up, Disconnected) as their heartbeats say."""
    query = select(Host).order_by(Host.name, Host.id)
    for column, value in ((Host.id, host_id), (Host.zone_id, zone_id), (Host.name, name)):
        query = _matching(query, column, value)
    query = _keyword(query, keyword, Host.name)
    async with sessions() as db:
        zones = await _zone_names(db)
        if state is None:
            hosts, total = await page(db, query, paging)
        else:
            # The state is derived from heartbeats, so the filter runs after it is computed.
            every = list((await db.execute(query)).scalars())
            hosts = [h for h in every if host_state(h, heartbeat_interval) == state]
            total = len(hosts)
            hosts = paging.slice(hosts)
    return HostPage([(h, host_state(h, heartbeat_interval)) for h in hosts], total, zones)


@dataclass(frozen=True)
class VmPage:
    """One page of VMs and the names of their zones and hosts."""

    vms: list[VirtualMachine]
    total: int
    zone_names: dict[str, str]
    host_names: dict[str, str]


async def list_vms(
    sessions: async_sessionmaker[AsyncSession],
    paging: Paging,
    vm_types: Collection[str],
    *,
    vm_id: str | None = None,
    name: str | None = None,
    state: str | None = None,
    host_id: str | None = None,
    zone_id: str | None = None,
    vm_type: str | None = None,
    keyword: str | None = None,
) -> VmPage:
    """One page of the VMs of `vm_types`, by name."""
    query = select(VirtualMachine).where(VirtualMachine.vm_type.in_(vm_types))
    for column, value in (
        (VirtualMachine.id, vm_id),
        (VirtualMachine.name, name),
        (VirtualMachine.state, state),
        (VirtualMachine.host_id, host_id),
        (VirtualMachine.zone_id, zone_id),
        (VirtualMachine.vm_type, vm_type),
    ):
        query = _matching(query, column, value)
    query = _keyword(query, keyword, VirtualMachine.name)
    query = query.order_by(VirtualMachine.name, VirtualMachine.id)
    async with sessions() as db:
        vms, total = await page(db, query, paging)
        zones = await _zone_names(db)
        hosts = {h.id: h.name for h in (await db.execute(select(Host))).scalars()}
    return VmPage(vms, total, zones, hosts)


async def find_system_vm(sessions: async_sessionmaker[AsyncSession], vm_id: str) -> VirtualMachine:
    """The system VM of that id, or NotFound (a user VM is not one)."""
    async with sessions() as db:
        vm = await db.get(VirtualMachine, vm_id)
    if vm is None or vm.vm_type not in SYSTEM_VM_TYPES:
        raise NotFound(f"Unable to find a system vm with id {vm_id}")
    return vm


async def _zone_names(db: AsyncSession) -> dict[str, str]:
    return {z.id: z.name for z in (await db.execute(select(Zone))).scalars()}
