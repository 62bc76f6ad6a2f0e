"""listZones, listHosts, listSystemVms, listRouters: the infrastructure as agents report it."""

from __future__ import annotations

from typing import Any

from cloudiag.api.context import RequestContext
from cloudiag.api.listing import cs_date, list_payload, paging
from cloudiag.api.registry import (
    ADMIN,
    DOMAIN_ADMIN,
    LIST_PARAMS,
    REGISTRY,
    Command,
    Param,
    ResponseField,
)
from cloudiag.db.models import VirtualMachine
from cloudiag.domain import VmType
from cloudiag.services import inventory
from cloudiag.sysvm import collect, registry

ZONEID = Param("zoneid", "uuid", "the ID of the availability zone", related="listZones")
HOSTID = Param("hostid", "uuid", "the host ID", related="listHosts")
VM_STATES = ("Running", "Stopped")
#: The VM types listSystemVms shows (routers have listRouters).
SYSTEM_VMS = (VmType.CONSOLE_PROXY, VmType.SECONDARY_STORAGE)


async def list_zones(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Zones known from the agents' reports."""
    zones, total = await inventory.list_zones(
        ctx.app.db,
        paging(params),
        zone_id=params.get("id"),
        name=params.get("name"),
        keyword=params.get("keyword"),
    )
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


async def list_hosts(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Hosts with their agent's state: Up while heartbeats arrive, else Disconnected."""
    found = await inventory.list_hosts(
        ctx.app.db,
        paging(params),
        ctx.app.settings.heartbeat_interval,
        host_id=params.get("id"),
        zone_id=params.get("zoneid"),
        name=params.get("name"),
        state=params.get("state"),
        keyword=params.get("keyword"),
    )
    items = [
        {
            "id": h.id,
            "name": h.name,
            "type": "Routing",
            "state": state,
            "resourcestate": "Enabled",
            "hypervisor": "KVM",
            "zoneid": h.zone_id,
            "zonename": found.zone_names.get(h.zone_id, ""),
            "ipaddress": h.addresses[0] if h.addresses else "",
            "version": h.agent_version,
            "lastpinged": cs_date(h.last_heartbeat),
            "created": cs_date(h.created),
        }
        for h, state in found.hosts
    ]
    return list_payload("host", items, found.total)


async def _list_vms(
    ctx: RequestContext, params: dict[str, Any], vm_types: tuple[VmType, ...]
) -> inventory.VmPage:
    return await inventory.list_vms(
        ctx.app.db,
        paging(params),
        vm_types,
        vm_id=params.get("id"),
        name=params.get("name"),
        state=params.get("state"),
        host_id=params.get("hostid"),
        zone_id=params.get("zoneid"),
        vm_type=params.get("systemvmtype"),
        keyword=params.get("keyword"),
    )


def _vm_common(vm: VirtualMachine, found: inventory.VmPage) -> dict[str, Any]:
    addresses = vm.addresses or {}
    return {
        "id": vm.id,
        "name": vm.name,
        "state": vm.state,
        "hostid": vm.host_id,
        "hostname": found.host_names.get(vm.host_id or "", None),
        "zoneid": vm.zone_id,
        "zonename": found.zone_names.get(vm.zone_id, ""),
        "publicip": addresses.get("public"),
        "linklocalip": addresses.get("control"),
        "privateip": addresses.get("control"),
        "created": cs_date(vm.created),
        "diagnosticstypes": ",".join(t.name for t in registry.types_for_vm(vm.vm_type)),
        "diagnosticsdatafiles": ",".join(collect.DEFAULTS.get(vm.vm_type, ())),
    }


async def list_system_vms(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Secondary storage and console proxy VMs."""
    found = await _list_vms(ctx, params, SYSTEM_VMS)
    items = [{**_vm_common(vm, found), "systemvmtype": vm.vm_type} for vm in found.vms]
    return list_payload("systemvm", items, found.total)


async def list_routers(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Virtual routers."""
    found = await _list_vms(ctx, params, (VmType.DOMAIN_ROUTER,))
    items = [
        {
            **_vm_common(vm, found),
            "guestipaddress": (vm.addresses or {}).get("guest"),
            "role": "VIRTUAL_ROUTER",
            "requiresupgrade": False,
            "healthchecksfailed": False,
        }
        for vm in found.vms
    ]
    return list_payload("router", items, found.total)


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
    ResponseField(
        "diagnosticsdatafiles", "string", "the items getDiagnosticsData collects here by default"
    ),
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
                choices=SYSTEM_VMS,
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
