"""What runs on this host: the system VMs (and user VMs) the agent reports."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from cloudiag.bus.messages import VmReport
from cloudiag.lab import manager as lab
from cloudiag.lab.topology import stable_uuid

_ROLE_TO_TYPE = {
    "router": "domainrouter",
    "secondarystoragevm": "secondarystoragevm",
    "consoleproxy": "consoleproxy",
    "uservm": "uservm",
}


@dataclass(frozen=True)
class Zone:
    """The zone the host belongs to."""

    id: str
    name: str


def lab_zone(prefix: str) -> Zone:
    """The lab's zone; its id is stable for a prefix, whether the lab is up or not."""
    return Zone(stable_uuid(prefix, "zone"), "lab-zone")


def lab_host_id(prefix: str) -> str:
    """A stable id for the host that runs the lab of this prefix."""
    return stable_uuid(prefix, "host")


def _lab_vms(prefix: str) -> list[VmReport]:
    status = lab.status(prefix)
    vms: list[VmReport] = []
    for ns in status.to_dict()["namespaces"]:
        vm_type = _ROLE_TO_TYPE.get(ns.get("role", ""))
        if vm_type is None:
            continue
        addresses = {
            "public": ns.get("publicaddress"),
            "control": ns.get("controladdress"),
            "guest": ns.get("guestaddress"),
            "interfaces": ns.get("interfaces", []),
        }
        vms.append(
            VmReport(
                id=ns["uuid"],
                name=ns["name"],
                vm_type=vm_type,  # type: ignore[arg-type]
                state="Running" if ns.get("running") else "Stopped",
                addresses={k: v for k, v in addresses.items() if v},
                access={"executor": "netns", "namespace": ns["namespace"]},
            )
        )
    return vms


async def lab_inventory(prefix: str) -> list[VmReport]:
    """The VMs of the lab with this prefix, read from the real namespaces (off the loop)."""
    return await asyncio.to_thread(_lab_vms, prefix)


async def host_addresses() -> list[str]:
    """The host's global addresses, as `ip` reports them."""
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "-j",
        "addr",
        "show",
        "scope",
        "global",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    try:
        data = json.loads(out or b"[]")
    except ValueError:
        return []
    return [a["local"] for link in data for a in link.get("addr_info", []) if "local" in a]
