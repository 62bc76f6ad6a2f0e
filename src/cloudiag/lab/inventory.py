"""The lab as an agent's inventory: its zone, its host and its VMs with their access.

Plain JSON-ready data in the shape of an inventory file (see the agent's inventory source),
taken from the declaration alone: it reads nothing from the system, so it is the same
whether the lab is up or not. Which VMs run is for the agent to see.
"""

from __future__ import annotations

from typing import Any

from cloudiag.lab.topology import (
    NODES,
    VM_ROLES,
    ZONE_NAME,
    namespace,
    stable_uuid,
    validate_prefix,
    zone_uuid,
)


def host_id(prefix: str) -> str:
    """A stable id for the host that runs the lab of this prefix."""
    return stable_uuid(prefix, "host")


def inventory(prefix: str) -> dict[str, Any]:
    """The lab of this prefix as an inventory; raises ValueError for a bad prefix."""
    prefix = validate_prefix(prefix)
    vms: list[dict[str, Any]] = []
    for n in NODES:
        if n.role not in VM_ROLES:
            continue
        addresses = {seg: n.address_on(seg) for seg in ("public", "control", "guest")}
        vms.append(
            {
                "id": stable_uuid(prefix, n.name),
                "name": n.name,
                # A user VM has no system VM type; CloudStack calls its kind "uservm".
                "vm_type": n.systemvmtype or "uservm",
                "addresses": {k: str(v) for k, v in addresses.items() if v is not None},
                "access": {"kind": "netns", "namespace": namespace(prefix, n)},
            }
        )
    return {
        "zone": {"id": zone_uuid(prefix), "name": ZONE_NAME},
        "host": {"id": host_id(prefix)},
        "vms": vms,
    }
