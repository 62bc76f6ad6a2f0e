"""The lab as an agent's inventory: its zone, its host and its VMs with their access.

Plain JSON-ready data in the shape of an inventory file (see the agent's inventory source),
taken from the declaration (of the size recorded in the lab's state directory, see
``size_record``): it reads nothing else, so it is the same whether the lab is up or not.
Which VMs run is for the agent to see. A lab of several hosts has one inventory per host,
each host's VMs only, for one agent each.

Two ways in. ``netns``: each VM is its network namespace on this host. ``ssh``: each
system VM is reached as CloudStack's KVM agent reaches one, over SSH from the hypervisor
(the socket opened in the lab's ``host`` namespace; ``host2``… on the other hosts) to its
control address, port 3922, as root with the lab's key, its host key checked against the
lab's known_hosts; the VM the lab declares for it runs CloudStack's own script rather than
ours. The user VM has no sshd and stays a namespace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from cloudiag.lab import access, mountns, sshd
from cloudiag.lab.layout import Layout, host_uuid, layout, zone_uuid
from cloudiag.lab.manager import default_state_dir
from cloudiag.lab.size_record import read_size
from cloudiag.lab.topology import (
    CLOUDSTACK_SCRIPT_VM,
    SSH_PORT,
    SYSTEM_VM_ROLES,
    Node,
    hypervisor_name,
    namespace,
    stable_uuid,
    validate_prefix,
)

Executor = Literal["netns", "ssh"]
EXECUTORS: tuple[Executor, ...] = ("netns", "ssh")


def host_id(prefix: str, host: int = 1) -> str:
    """A stable id for host ``host`` of the lab of this prefix (the first: the one host of
    a default-size lab)."""
    return stable_uuid(prefix, hypervisor_name(host))


def _ssh_access(prefix: str, n: Node, state: Path) -> dict[str, Any]:
    return {
        "kind": "ssh",
        "address": str(n.address_on("control")),
        "port": SSH_PORT,
        "user": "root",
        "key_file": str(sshd.client_key(state)),
        # Its own host's hypervisor: the only one whose cloud0 reaches it.
        "netns": namespace(prefix, hypervisor_name(n.host or 1)),
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


def _layout(state: Path, host: int) -> Layout:
    lay = layout(read_size(state))
    if not 1 <= host <= lay.size.hosts:
        raise ValueError(f"the lab has no host {host}: it has hosts 1 to {lay.size.hosts}")
    return lay


def inventory(
    prefix: str, executor: Executor = "netns", state_dir: Path | None = None, *, host: int = 1
) -> dict[str, Any]:
    """Host ``host`` of the lab of this prefix as an inventory, its system VMs reached
    through ``executor``.

    ``state_dir``: the lab's own state directory, where its keys and its size are (default
    that of `cloudiag lab`). Raises ValueError for a bad prefix, an unknown executor or a
    host the lab does not have.
    """
    prefix = validate_prefix(prefix)
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; one of: {', '.join(EXECUTORS)}")
    state = state_dir if state_dir is not None else default_state_dir(prefix)
    lay = _layout(state, host)
    decl = lay.host(host)
    zone = lay.zone(decl.zone)
    vms: list[dict[str, Any]] = []
    for n in lay.vms(host):
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
    # One host: no name, the agent reports the machine's (as it always did). Several:
    # each is named for its hypervisor namespace, to tell them apart in listHosts.
    named = {"name": namespace(prefix, decl.node)} if lay.size.hosts > 1 else {}
    return {
        "zone": {"id": zone_uuid(prefix, zone), "name": zone.name},
        "host": {"id": host_uuid(prefix, decl), **named},
        "vms": vms,
    }
