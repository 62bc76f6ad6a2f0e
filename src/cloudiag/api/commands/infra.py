"""listZones, listHosts, listSystemVms, listRouters: the infrastructure as agents report it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, or_, select

from cloudiag.api.context import RequestContext
from cloudiag.api.listing import DEFAULT_PAGESIZE, cs_date, list_payload, page
from cloudiag.api.registry import (
    ADMIN,
    DOMAIN_ADMIN,
    LIST_PARAMS,
    REGISTRY,
    Command,
    Param,
    ResponseField,
)
from cloudiag.db.models import Host, VirtualMachine, Zone
from cloudiag.services.inventory import host_state
from cloudiag.sysvm import registry

ZONEID = Param("zoneid", "uuid", "the ID of the availability zone", related="listZones")
HOSTID = Param("hostid", "uuid", "the host ID", related="listHosts")
VM_STATES = ("Running", "Stopped")


def _keyword(query: Select[Any], params: dict[str, Any], *columns: Any) -> Select[Any]:
    if kw := params.get("keyword"):
        like = f"%{kw}%"
        query = query.where(or_(*(c.ilike(like) for c in columns)))
    return query


async def list_zones(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Zones known from the agents' reports."""
    query = select(Zone).order_by(Zone.name, Zone.id)
    if "id" in params:
        query = query.where(Zone.id == params["id"])
    if "name" in params:
        query = query.where(Zone.name == params["name"])
    query = _keyword(query, params, Zone.name)
    async with ctx.app.db() as db:
        zones, total = await page(db, query, params)
    items = [
        {
            "id": z.id,
            "name": z.name,
            "description": f"{z.name} (reported by cloudiag agents)",
            "networktype": "Advanced",
            "allocationstate": "Enabled",
            "securitygroupsenabled": False,
            "localstorageenabled": False,
            "created": cs_date(z.created),
        }
        for z in zones
    ]
    return list_payload("zone", items, total)


async def _zone_names(db: Any) -> dict[str, str]:
    return {z.id: z.name for z in (await db.execute(select(Zone))).scalars()}


async def list_hosts(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Hosts with their agent's state: Up while heartbeats arrive, else Disconnected."""
    interval = ctx.app.settings.heartbeat_interval
    query = select(Host).order_by(Host.name, Host.id)
    for key, column in (("id", Host.id), ("zoneid", Host.zone_id), ("name", Host.name)):
        if key in params:
            query = query.where(column == params[key])
    query = _keyword(query, params, Host.name)
    async with ctx.app.db() as db:
        zones = await _zone_names(db)
        if "state" in params:
            # State is derived from heartbeats, so filter after computing it.
            hosts = [h for h in (await db.execute(query)).scalars()]
            hosts = [h for h in hosts if host_state(h, interval) == params["state"]]
            total = len(hosts)
            size = params.get("pagesize", DEFAULT_PAGESIZE)
            start = (params.get("page", 1) - 1) * size
            hosts = hosts[start : start + size]
        else:
            hosts, total = await page(db, query, params)
    items = [
        {
            "id": h.id,
            "name": h.name,
            "type": "Routing",
            "state": host_state(h, interval),
            "resourcestate": "Enabled",
            "hypervisor": "KVM",
            "zoneid": h.zone_id,
            "zonename": zones.get(h.zone_id, ""),
            "ipaddress": h.addresses[0] if h.addresses else "",
            "version": h.agent_version,
            "lastpinged": cs_date(h.last_heartbeat),
            "created": cs_date(h.created),
        }
        for h in hosts
    ]
    return list_payload("host", items, total)


def _vm_query(params: dict[str, Any], types: tuple[str, ...]) -> Select[tuple[VirtualMachine]]:
    query = select(VirtualMachine).where(VirtualMachine.vm_type.in_(types))
    for key, column in (
        ("id", VirtualMachine.id),
        ("name", VirtualMachine.name),
        ("state", VirtualMachine.state),
        ("hostid", VirtualMachine.host_id),
        ("zoneid", VirtualMachine.zone_id),
        ("systemvmtype", VirtualMachine.vm_type),
    ):
        if key in params:
            query = query.where(column == params[key])
    return _keyword(query, params, VirtualMachine.name).order_by(
        VirtualMachine.name, VirtualMachine.id
    )


def _vm_common(vm: VirtualMachine, zones: dict[str, str], hosts: dict[str, str]) -> dict[str, Any]:
    addresses = vm.addresses or {}
    return {
        "id": vm.id,
        "name": vm.name,
        "state": vm.state,
        "hostid": vm.host_id,
        "hostname": hosts.get(vm.host_id or "", None),
        "zoneid": vm.zone_id,
        "zonename": zones.get(vm.zone_id, ""),
        "publicip": addresses.get("public"),
        "linklocalip": addresses.get("control"),
        "privateip": addresses.get("control"),
        "created": cs_date(vm.created),
        "diagnosticstypes": ",".join(t.name for t in registry.types_for_vm(vm.vm_type)),
    }


async def _list_vms(
    ctx: RequestContext, params: dict[str, Any], types: tuple[str, ...]
) -> tuple[list[VirtualMachine], int, dict[str, str], dict[str, str]]:
    async with ctx.app.db() as db:
        vms, total = await page(db, _vm_query(params, types), params)
        zones = await _zone_names(db)
        hosts = {h.id: h.name for h in (await db.execute(select(Host))).scalars()}
    return vms, total, zones, hosts


async def list_system_vms(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Secondary storage and console proxy VMs."""
    vms, total, zones, hosts = await _list_vms(ctx, params, ("secondarystoragevm", "consoleproxy"))
    items = [{**_vm_common(vm, zones, hosts), "systemvmtype": vm.vm_type} for vm in vms]
    return list_payload("systemvm", items, total)


async def list_routers(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Virtual routers."""
    vms, total, zones, hosts = await _list_vms(ctx, params, ("domainrouter",))
    items = [
        {
            **_vm_common(vm, zones, hosts),
            "guestipaddress": (vm.addresses or {}).get("guest"),
            "role": "VIRTUAL_ROUTER",
            "requiresupgrade": False,
            "healthchecksfailed": False,
        }
        for vm in vms
    ]
    return list_payload("router", items, total)


_VM_RESPONSE = (
    ResponseField("id", "string", "the ID of the VM"),
    ResponseField("name", "string", "the name of the VM"),
    ResponseField("state", "string", "Running or Stopped"),
    ResponseField("hostid", "string", "the host the VM runs on"),
    ResponseField("hostname", "string", "the name of that host"),
    ResponseField("zoneid", "string", "the zone of the VM"),
    ResponseField("zonename", "string", "the name of the zone"),
    ResponseField("publicip", "string", "the public address"),
    ResponseField("linklocalip", "string", "the control (link-local) address"),
    ResponseField("diagnosticstypes", "string", "diagnostics types runDiagnostics offers here"),
    ResponseField("created", "date", "when the VM was first reported"),
)

REGISTRY.add(
    Command(
        "listZones",
        "Lists zones",
        list_zones,
        params=(
            Param("id", "uuid", "the ID of the zone"),
            Param("name", "string", "the name of the zone"),
            Param("available", "boolean", "true to list only zones available to the caller"),
            *LIST_PARAMS,
        ),
        response=(
            ResponseField("id", "string", "Zone id"),
            ResponseField("name", "string", "Zone name"),
            ResponseField("networktype", "string", "the network type of the zone"),
            ResponseField("allocationstate", "string", "the allocation state of the zone"),
        ),
        cmd_class="org.apache.cloudstack.api.command.user.zone.ListZonesCmd",
    )
)
REGISTRY.add(
    Command(
        "listHosts",
        "Lists hosts.",
        list_hosts,
        params=(
            Param("id", "uuid", "the id of the host"),
            Param("name", "string", "the name of the host"),
            Param("state", "string", "the state of the host", choices=("Up", "Disconnected")),
            Param("type", "string", "the host type"),
            ZONEID,
            *LIST_PARAMS,
        ),
        response=(
            ResponseField("id", "string", "the ID of the host"),
            ResponseField("name", "string", "the name of the host"),
            ResponseField("state", "status", "Up or Disconnected, from the agent's heartbeats"),
            ResponseField("lastpinged", "date", "the last heartbeat of the host's agent"),
            ResponseField("zoneid", "string", "the Zone ID of the host"),
        ),
        roles=frozenset({ADMIN}),
        cmd_class="org.apache.cloudstack.api.command.admin.host.ListHostsCmd",
    )
)
REGISTRY.add(
    Command(
        "listSystemVms",
        "List system virtual machines.",
        list_system_vms,
        params=(
            Param("id", "uuid", "the ID of the system virtual machine"),
            Param("name", "string", "the name of the system virtual machine"),
            Param("state", "string", "the state of the system virtual machine", choices=VM_STATES),
            Param(
                "systemvmtype",
                "string",
                "the system VM type. Possible types are consoleproxy and secondarystoragevm.",
                choices=("consoleproxy", "secondarystoragevm"),
            ),
            HOSTID,
            ZONEID,
            *LIST_PARAMS,
        ),
        response=(*_VM_RESPONSE, ResponseField("systemvmtype", "string", "the system VM type")),
        roles=frozenset({ADMIN}),
        related="runDiagnostics",
        cmd_class="org.apache.cloudstack.api.command.admin.systemvm.ListSystemVMsCmd",
    )
)
REGISTRY.add(
    Command(
        "listRouters",
        "List routers.",
        list_routers,
        params=(
            Param("id", "uuid", "the ID of the disk router"),
            Param("name", "string", "the name of the router"),
            Param("state", "string", "the state of the router", choices=VM_STATES),
            HOSTID,
            ZONEID,
            *LIST_PARAMS,
        ),
        response=(*_VM_RESPONSE, ResponseField("guestipaddress", "string", "the guest address")),
        roles=frozenset({ADMIN, DOMAIN_ADMIN}),
        related="runDiagnostics",
        cmd_class="org.apache.cloudstack.api.command.admin.router.ListRoutersCmd",
    )
)
