"""The lab as an agent's inventory: its zone, its host and its VMs with their access.

Plain JSON-ready data in the shape of an inventory file (see the agent's inventory source),
taken from the declaration alone: it reads nothing from the system, so it is the same
whether the lab is up or not. Which VMs run is for the agent to see.

Two ways in. ``netns``: each VM is its network namespace on this host. ``ssh``: each
system VM is reached as CloudStack's KVM agent reaches one, over SSH from the hypervisor
(the socket opened in the lab's ``host`` namespace) to its control address, port 3922, as
root with the lab's key, its host key checked against the lab's known_hosts; the VM the
lab declares for it runs CloudStack's own script rather than ours. The user VM has no
sshd and stays a namespace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from cloudiag.lab import access, mountns, sshd
from cloudiag.lab.manager import default_state_dir
from cloudiag.lab.topology import (
    CLOUDSTACK_SCRIPT_VM,
    HYPERVISOR,
    NODES,
    SSH_PORT,
    SYSTEM_VM_ROLES,
    VM_ROLES,
    ZONE_NAME,
    Node,
    namespace,
    stable_uuid,
    validate_prefix,
    zone_uuid,
)

Executor = Literal["netns", "ssh"]
EXECUTORS: tuple[Executor, ...] = ("netns", "ssh")


def host_id(prefix: str) -> str:
    """A stable id for the host that runs the lab of this prefix."""
    return stable_uuid(prefix, "host")


def _ssh_access(prefix: str, n: Node, state: Path) -> dict[str, Any]:
    return {
        "kind": "ssh",
        "address": str(n.address_on("control")),
        "port": SSH_PORT,
        "user": "root",
        "key_file": str(sshd.client_key(state)),
        "netns": namespace(prefix, HYPERVISOR),
        "script": "cloudstack" if n.name == CLOUDSTACK_SCRIPT_VM else "cloudiag",
        "known_hosts": str(sshd.known_hosts(state)),
        "python": "python3",
    }


def _netns_access(prefix: str, n: Node, state: Path) -> dict[str, Any]:
    found: dict[str, Any] = {"kind": "netns", "namespace": namespace(prefix, n)}
    if n.role in SYSTEM_VM_ROLES and access.enabled(state):
        # A lab with SSH gives each system VM its own files in a mount namespace.
        found["mount"] = str(mountns.ns_file(state, n))
    return found


def inventory(
    prefix: str, executor: Executor = "netns", state_dir: Path | None = None
) -> dict[str, Any]:
    """The lab of this prefix as an inventory, its system VMs reached through ``executor``.

    ``state_dir``: the lab's own state directory, where its keys are (default that of
    `cloudiag lab`). Raises ValueError for a bad prefix or an unknown executor.
    """
    prefix = validate_prefix(prefix)
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; one of: {', '.join(EXECUTORS)}")
    state = state_dir if state_dir is not None else default_state_dir(prefix)
    vms: list[dict[str, Any]] = []
    for n in NODES:
        if n.role not in VM_ROLES:
            continue
        addresses = {seg: n.address_on(seg) for seg in ("public", "control", "guest")}
        over_ssh = executor == "ssh" and n.role in SYSTEM_VM_ROLES
        vms.append(
            {
                "id": stable_uuid(prefix, n.name),
                "name": n.name,
                # A user VM has no system VM type; CloudStack calls its kind "uservm".
                "vm_type": n.systemvmtype or "uservm",
                "addresses": {k: str(v) for k, v in addresses.items() if v is not None},
                "access": _ssh_access(prefix, n, state)
                if over_ssh
                else _netns_access(prefix, n, state),
            }
        )
    return {
        "zone": {"id": zone_uuid(prefix), "name": ZONE_NAME},
        "host": {"id": host_id(prefix)},
        "vms": vms,
    }
