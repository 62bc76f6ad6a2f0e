"""The lab zone, declared once: networks, namespaces, interfaces, routes, targets.

Only documentation and link-local ranges, and no route out of the lab, so no packet can
leave the machine.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field

#: Every address of the lab lies in one of these.
ALLOWED_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "169.254.0.0/16")
)

#: The L2 segments: one bridge each, inside the switch namespace.
NETWORKS = {
    "guest": "192.0.2.0/24",
    "public": "203.0.113.0/24",
    "inet": "198.51.100.0/24",
    "control": "169.254.0.0/16",
    "mgmt": "",  # the management NIC of SSVM/CPVM: present, no lab address (see README)
}


@dataclass(frozen=True)
class Iface:
    """An interface of a lab host: its name inside the namespace and its segment."""

    name: str
    network: str
    address: str = ""

    @property
    def prefixlen(self) -> int:
        """The prefix length of the segment."""
        return ipaddress.ip_network(NETWORKS[self.network]).prefixlen if self.address else 0


@dataclass(frozen=True)
class Node:
    """A lab host: one network namespace."""

    name: str
    #: Short tag for the switch-side veth names (15-character limit).
    tag: str
    role: str
    ifaces: tuple[Iface, ...]
    gateway: str = ""
    forwarding: bool = False
    routes: tuple[tuple[str, str], ...] = field(default=())
    systemvmtype: str | None = None

    def address_on(self, network: str) -> str:
        """This node's address on a segment, or ''."""
        return next((i.address for i in self.ifaces if i.network == network and i.address), "")


GATEWAY = "203.0.113.1"
WEB = "198.51.100.10"
DNS = "198.51.100.53"
ROUTER_PUBLIC = "203.0.113.10"

NODES: tuple[Node, ...] = (
    Node(
        "upstream",
        "up",
        "upstream",
        (Iface("eth0", "public", GATEWAY), Iface("eth1", "inet", "198.51.100.1")),
        forwarding=True,
        routes=(("192.0.2.0/24", ROUTER_PUBLIC),),
    ),
    Node("web", "web", "web", (Iface("eth0", "inet", WEB),), gateway="198.51.100.1"),
    Node("dns", "dns", "dns", (Iface("eth0", "inet", DNS),), gateway="198.51.100.1"),
    # Interfaces as on a real CloudStack VR: eth0 guest, eth1 control (link-local), eth2 public.
    Node(
        "r-1-VM",
        "r1",
        "router",
        (
            Iface("eth0", "guest", "192.0.2.1"),
            Iface("eth1", "control", "169.254.0.10"),
            Iface("eth2", "public", ROUTER_PUBLIC),
        ),
        gateway=GATEWAY,
        forwarding=True,
        systemvmtype="domainrouter",
    ),
    # SSVM and CPVM: eth0 control, eth1 management, eth2 public, as on real ones.
    Node(
        "s-2-VM",
        "s2",
        "secondarystoragevm",
        (
            Iface("eth0", "control", "169.254.0.20"),
            Iface("eth1", "mgmt"),
            Iface("eth2", "public", "203.0.113.20"),
        ),
        gateway=GATEWAY,
        systemvmtype="secondarystoragevm",
    ),
    Node(
        "v-3-VM",
        "v3",
        "consoleproxy",
        (
            Iface("eth0", "control", "169.254.0.30"),
            Iface("eth1", "mgmt"),
            Iface("eth2", "public", "203.0.113.30"),
        ),
        gateway=GATEWAY,
        systemvmtype="consoleproxy",
    ),
    Node("i-4-VM", "i4", "uservm", (Iface("eth0", "guest", "192.0.2.100"),), gateway="192.0.2.1"),
)

SYSTEM_VM_ROLES = ("router", "secondarystoragevm", "consoleproxy")

#: DNS names the lab's DNS server answers.
DNS_NAMES = {"web.lab.test": WEB, "dns.lab.test": DNS, "gw.lab.test": GATEWAY}

TARGETS = {
    "gateway": GATEWAY,
    "web": WEB,
    "web_name": "web.lab.test",
    "dns": DNS,
    # On the internet segment, routed, but no host answers there.
    "unreachable": "198.51.100.99",
    "uservm": "192.0.2.100",
}


def namespace(prefix: str, node: Node | str) -> str:
    """The namespace name of a node."""
    return f"{prefix}-{node if isinstance(node, str) else node.name}"


def switch_namespace(prefix: str) -> str:
    """The namespace that holds the bridges."""
    return f"{prefix}-sw"


def stable_uuid(prefix: str, name: str) -> str:
    """The same uuid for the same lab object, every time the lab is built."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"cloudiag-lab:{prefix}:{name}"))


def node(name: str) -> Node:
    """A node by VM name (r-1-VM…) or role; KeyError if there is none."""
    for n in NODES:
        if name in (n.name, n.role):
            return n
    raise KeyError(name)
