"""The lab zone, declared once: segments, namespaces, interfaces, routes, targets.

Pure data and pure functions (no root, no subprocess), so the unit tests can check the
whole declaration. Only documentation ranges (RFC 5737) and link-local addresses are used,
and every route points at an address of the lab itself: no packet can leave the machine.

Layout (``P`` is the prefix, ``cdlab`` by default)::

    P-sw        bridges guest, public, inet, control, mgmt (the L2 segments)
    P-upstream  eth0 public 203.0.113.1 (the public gateway), eth1 inet 198.51.100.1
    P-web       eth0 inet 198.51.100.10, HTTP server on port 80
    P-dns       eth0 inet 198.51.100.53, dnsmasq for *.lab.test
    P-r-1-VM    virtual router: eth0 guest 192.0.2.1, eth1 control, eth2 public 203.0.113.10
    P-s-2-VM    secondary storage VM: eth0 control, eth1 mgmt, eth2 public 203.0.113.20
    P-v-3-VM    console proxy VM: eth0 control, eth1 mgmt, eth2 public 203.0.113.30
    P-i-4-VM    user VM: eth0 guest 192.0.2.100, default via the router
    P-host      the hypervisor: cloud0 control 169.254.0.1, no route (reaches the system
                VMs on their control addresses, as a KVM host does over its cloud0 bridge)

The management NIC (eth1) of the SSVM and the CPVM is there so the public NIC is eth2 as on
a real system VM (CloudStack's own tests run ``arping -I eth2``). It only carries a
link-local address added with ``noprefixroute``: it has no route, so it never competes with
the control network, which uses the same 169.254.0.0/16 range.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import uuid
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from cloudiag.domain import VmType

#: Every address of the lab lies in one of these (RFC 5737 TEST-NETs and link-local).
ALLOWED_NETWORKS: tuple[IPv4Network, ...] = tuple(
    IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "169.254.0.0/16")
)

DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")

#: A prefix is a plain word: no "-", so "<prefix>-" can never match another lab's names.
PREFIX_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,15}")

#: Name of the switch node (the namespace that holds the bridges).
SWITCH = "sw"

#: The DNS zone the lab's DNS server is authoritative for.
DNS_DOMAIN = "lab.test"
#: The name of the lab's zone.
ZONE_NAME = "lab-zone"

SYSTEM_VM_ROLES = ("router", "secondarystoragevm", "consoleproxy")
VM_ROLES = (*SYSTEM_VM_ROLES, "uservm")

#: Name and role of the hypervisor node, which holds the control segment's host end.
HYPERVISOR = "host"
HYPERVISOR_ROLE = "hypervisor"
#: The port a system VM's sshd listens on (CloudStack's).
SSH_PORT = 3922
#: The system VM the lab's inventory sets to CloudStack's own script (one exec each).
CLOUDSTACK_SCRIPT_VM = "v-3-VM"


@dataclass(frozen=True)
class Segment:
    """An L2 segment: one Linux bridge of that name in the switch namespace."""

    name: str
    network: IPv4Network
    description: str


SEGMENTS: tuple[Segment, ...] = (
    Segment("guest", IPv4Network("192.0.2.0/24"), "guest network, behind the virtual router"),
    Segment("public", IPv4Network("203.0.113.0/24"), "public network; gateway 203.0.113.1"),
    Segment("inet", IPv4Network("198.51.100.0/24"), "the 'internet': web and DNS servers"),
    Segment("control", IPv4Network("169.254.0.0/16"), "link-local control network"),
    Segment("mgmt", IPv4Network("169.254.0.0/16"), "management NICs: link-local, no route"),
)


@dataclass(frozen=True)
class Interface:
    """A NIC of a lab node: its name inside the namespace, its segment and its address."""

    name: str
    segment: str
    address: IPv4Interface
    #: False: the address is added with ``noprefixroute`` (present, but routes nothing).
    prefix_route: bool = True


@dataclass(frozen=True)
class Route:
    """A static route of a node; the default route has destination 0.0.0.0/0."""

    destination: IPv4Network
    via: IPv4Address


@dataclass(frozen=True)
class Service:
    """A server process the lab runs detached inside a node's namespace."""

    #: "web" or "dns": also the name of its pid and log files in the state dir.
    kind: str
    #: Human name of the program (shown in the status).
    program: str
    protocol: str
    address: IPv4Address
    port: int


@dataclass(frozen=True)
class Node:
    """A lab host: one network namespace named ``<prefix>-<name>``."""

    name: str
    #: Short tag for the switch-side veth names ("r1-eth0"): Linux allows 15 characters.
    tag: str
    role: str
    systemvmtype: str | None
    interfaces: tuple[Interface, ...]
    routes: tuple[Route, ...] = ()
    forwarding: bool = False
    service: Service | None = None

    def interface(self, name: str) -> Interface | None:
        """The declared interface of that name, or None."""
        return next((i for i in self.interfaces if i.name == name), None)

    def address_on(self, segment: str) -> IPv4Address | None:
        """This node's address on a segment (the first one), or None."""
        return next((i.address.ip for i in self.interfaces if i.segment == segment), None)

    @property
    def gateway(self) -> IPv4Address | None:
        """The next hop of the default route, or None."""
        return next((r.via for r in self.routes if r.destination == DEFAULT_ROUTE), None)


def _if(name: str, segment: str, address: str, *, prefix_route: bool = True) -> Interface:
    return Interface(name, segment, IPv4Interface(address), prefix_route)


def _default(via: str) -> Route:
    return Route(DEFAULT_ROUTE, IPv4Address(via))


GATEWAY = IPv4Address("203.0.113.1")
UPSTREAM_INET = IPv4Address("198.51.100.1")
WEB = IPv4Address("198.51.100.10")
DNS = IPv4Address("198.51.100.53")
UNREACHABLE = IPv4Address("198.51.100.99")
ROUTER_GUEST = IPv4Address("192.0.2.1")
ROUTER_PUBLIC = IPv4Address("203.0.113.10")
USER_VM = IPv4Address("192.0.2.100")
GUEST_NETWORK = IPv4Network("192.0.2.0/24")
#: The hypervisor's end of the control network (a KVM host's cloud0 bridge).
HYPERVISOR_ADDRESS = IPv4Address("169.254.0.1")

NODES: tuple[Node, ...] = (
    Node(
        "upstream",
        "up",
        "upstream",
        None,
        (_if("eth0", "public", f"{GATEWAY}/24"), _if("eth1", "inet", f"{UPSTREAM_INET}/24")),
        # The guest network is reached through the virtual router, as a provider would route
        # a customer's network (the lab has no NAT).
        routes=(Route(GUEST_NETWORK, ROUTER_PUBLIC),),
        forwarding=True,
    ),
    Node(
        "web",
        "web",
        "web",
        None,
        (_if("eth0", "inet", f"{WEB}/24"),),
        routes=(_default(str(UPSTREAM_INET)),),
        service=Service("web", "http.server", "tcp", WEB, 80),
    ),
    Node(
        "dns",
        "dns",
        "dns",
        None,
        (_if("eth0", "inet", f"{DNS}/24"),),
        routes=(_default(str(UPSTREAM_INET)),),
        service=Service("dns", "dnsmasq", "udp", DNS, 53),
    ),
    # Interfaces as on a real CloudStack VR: eth0 guest, eth1 control (link-local), eth2 public.
    Node(
        "r-1-VM",
        "r1",
        "router",
        VmType.DOMAIN_ROUTER,
        (
            _if("eth0", "guest", f"{ROUTER_GUEST}/24"),
            _if("eth1", "control", "169.254.0.10/16"),
            _if("eth2", "public", f"{ROUTER_PUBLIC}/24"),
        ),
        routes=(_default(str(GATEWAY)),),
        forwarding=True,
    ),
    # SSVM and CPVM: eth0 control, eth1 management, eth2 public, as on real ones.
    Node(
        "s-2-VM",
        "s2",
        "secondarystoragevm",
        VmType.SECONDARY_STORAGE,
        (
            _if("eth0", "control", "169.254.0.20/16"),
            _if("eth1", "mgmt", "169.254.1.20/16", prefix_route=False),
            _if("eth2", "public", "203.0.113.20/24"),
        ),
        routes=(_default(str(GATEWAY)),),
    ),
    Node(
        "v-3-VM",
        "v3",
        "consoleproxy",
        VmType.CONSOLE_PROXY,
        (
            _if("eth0", "control", "169.254.0.30/16"),
            _if("eth1", "mgmt", "169.254.1.30/16", prefix_route=False),
            _if("eth2", "public", "203.0.113.30/24"),
        ),
        routes=(_default(str(GATEWAY)),),
    ),
    Node(
        "i-4-VM",
        "i4",
        "uservm",
        None,
        (_if("eth0", "guest", f"{USER_VM}/24"),),
        routes=(_default(str(ROUTER_GUEST)),),
    ),
    # Only the control segment, and no route at all: what it reaches is the link-local
    # control network, so an SSH client in it can talk to the system VMs and nothing else.
    Node(
        HYPERVISOR,
        "hv",
        HYPERVISOR_ROLE,
        None,
        (_if("cloud0", "control", f"{HYPERVISOR_ADDRESS}/16"),),
    ),
)

#: Names the lab's DNS server answers (A and PTR records).
DNS_RECORDS: dict[str, IPv4Address] = {
    f"web.{DNS_DOMAIN}": WEB,
    f"dns.{DNS_DOMAIN}": DNS,
    f"gw.{DNS_DOMAIN}": GATEWAY,
    f"upstream.{DNS_DOMAIN}": UPSTREAM_INET,
    f"router.{DNS_DOMAIN}": ROUTER_PUBLIC,
    f"ssvm.{DNS_DOMAIN}": IPv4Address("203.0.113.20"),
    f"cpvm.{DNS_DOMAIN}": IPv4Address("203.0.113.30"),
    f"uservm.{DNS_DOMAIN}": USER_VM,
    f"unreachable.{DNS_DOMAIN}": UNREACHABLE,
}

#: Where diagnostics can be pointed at (what `lab status` shows as "targets").
TARGETS: dict[str, str] = {
    "gateway": str(GATEWAY),
    "web": str(WEB),
    "web_name": f"web.{DNS_DOMAIN}",
    "dns": str(DNS),
    # On the internet segment and routed, but no host answers there.
    "unreachable": str(UNREACHABLE),
    "uservm": str(USER_VM),
}


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can name a lab, else raise ValueError saying why."""
    if not PREFIX_RE.fullmatch(prefix):
        raise ValueError(
            f"invalid lab prefix {prefix!r}: use 1-16 letters, digits or '_', "
            "starting with a letter (no '-')"
        )
    return prefix


def namespace(prefix: str, node: Node | str) -> str:
    """The namespace name of a node (``cdlab-r-1-VM``)."""
    return f"{prefix}-{node if isinstance(node, str) else node.name}"


def switch_namespace(prefix: str) -> str:
    """The namespace that holds the bridges."""
    return namespace(prefix, SWITCH)


def all_namespaces(prefix: str) -> list[str]:
    """Every namespace of the lab, switch first."""
    return [switch_namespace(prefix), *(namespace(prefix, n) for n in NODES)]


def port_name(node: Node, interface: Interface) -> str:
    """The switch-side end of a node's NIC (``r1-eth0``)."""
    return f"{node.tag}-{interface.name}"


def stable_uuid(prefix: str, name: str) -> str:
    """The same uuid for the same lab object every time the lab is built."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"cloudiag-lab:{prefix}:{name}"))


def zone_uuid(prefix: str) -> str:
    """The lab zone's uuid."""
    return stable_uuid(prefix, "zone")


def _mac(*parts: str) -> str:
    # Locally administered unicast (02:…): never a vendor's address.
    digest = hashlib.sha256(":".join(("cloudiag-lab", *parts)).encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def mac_address(prefix: str, node: Node, interface: Interface) -> str:
    """A NIC's MAC, stable across rebuilds: a restarted VM keeps its neighbours' ARP entries."""
    return _mac(prefix, node.name, interface.name)


def port_mac(prefix: str, node: Node, interface: Interface) -> str:
    """The MAC of the switch-side end of a NIC (stable, like the NIC's own)."""
    return _mac(prefix, node.name, interface.name, "port")


def bridge_mac(prefix: str, segment: Segment) -> str:
    """A bridge's MAC: fixed, or Linux would take its lowest port's and change it as VMs
    stop and start."""
    return _mac(prefix, SWITCH, segment.name)


def node(name: str) -> Node:
    """A node by name (``r-1-VM``) or role (``router``); KeyError if there is none."""
    for n in NODES:
        if name in (n.name, n.role):
            return n
    raise KeyError(name)


def segment(name: str) -> Segment:
    """A segment by name; KeyError if there is none."""
    for s in SEGMENTS:
        if s.name == name:
            return s
    raise KeyError(name)


def in_lab(address: IPv4Address | IPv4Network | str) -> bool:
    """True if the address (or the whole network) lies in one of the allowed ranges."""
    if isinstance(address, IPv4Network):
        return any(address.subnet_of(n) for n in ALLOWED_NETWORKS)
    ip = ipaddress.ip_address(str(address))
    return any(ip in n for n in ALLOWED_NETWORKS)


def system_vm_nodes() -> list[Node]:
    """The router, the secondary storage VM and the console proxy VM (the ones with sshd)."""
    return [n for n in NODES if n.role in SYSTEM_VM_ROLES]
