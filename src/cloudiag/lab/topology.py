"""The lab zone, declared once: segments, namespaces, interfaces, routes, targets.

Pure data and pure functions (no root, no subprocess), so the unit tests can check the
whole declaration. Only documentation ranges (RFC 5737, and RFC 3849's 2001:db8::/32 for
IPv6) and link-local addresses are used, and every route points at an address of the lab
itself: no packet can leave the machine.

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

The guest, public and inet segments also carry IPv6, one /64 each from 2001:db8::/32, the
last group repeating the IPv4 address's last number: public 2001:db8:0:113::/64 (gateway
::1, router ::10, SSVM ::20, CPVM ::30), inet 2001:db8:0:100::/64 (upstream ::1, web ::10,
DNS ::53), guest 2001:db8:0:2::/64 (router ::1, user VM ::100). IPv6 routes mirror the IPv4
ones; the upstream router has no IPv6 default route either. The control and management
NICs, the hypervisor and the switch have no IPv6 at all. The inet segment's MTU is 1400
(the rest 1500), so the path MTU from a system VM to the web server is 1400.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import uuid
from dataclasses import dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)

from cloudiag.domain import VmType

#: Every address of the lab lies in one of these (RFC 5737 TEST-NETs, RFC 3849's IPv6
#: documentation prefix and link-local).
ALLOWED_NETWORKS: tuple[IPv4Network | IPv6Network, ...] = (
    *(IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")),
    IPv4Network("169.254.0.0/16"),
    IPv6Network("2001:db8::/32"),
    IPv6Network("fe80::/10"),
)

DEFAULT_ROUTE = IPv4Network("0.0.0.0/0")
DEFAULT_ROUTE6 = IPv6Network("::/0")

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
    #: Its IPv6 /64, or None for a segment without IPv6.
    network6: IPv6Network | None = None
    #: The MTU of every NIC on it.
    mtu: int = 1500
    #: What it is when that is not its name: "guest" for every router's own guest bridge,
    #: "control" for every host's control bridge (see ``layout``).
    kind: str = ""

    @property
    def network_kind(self) -> str:
        """guest, public, inet, control or mgmt."""
        return self.kind or self.name


SEGMENTS: tuple[Segment, ...] = (
    Segment(
        "guest",
        IPv4Network("192.0.2.0/24"),
        "guest network, behind the virtual router",
        IPv6Network("2001:db8:0:2::/64"),
    ),
    Segment(
        "public",
        IPv4Network("203.0.113.0/24"),
        "public network; gateway 203.0.113.1",
        IPv6Network("2001:db8:0:113::/64"),
    ),
    Segment(
        "inet",
        IPv4Network("198.51.100.0/24"),
        "the 'internet': web and DNS servers; MTU 1400",
        IPv6Network("2001:db8:0:100::/64"),
        # Smaller than the public network's, so that tracepath finds a path MTU below the
        # first hop's, as behind a tunnel.
        mtu=1400,
    ),
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
    #: Its IPv6 address (added without DAD, usable at once), or None: no IPv6 on this NIC.
    address6: IPv6Interface | None = None
    #: The bridge it is plugged into when that is not the one named ``segment`` (a router's
    #: own guest network, a host's own control network).
    bridge: str = ""

    @property
    def switch_bridge(self) -> str:
        """The name of the bridge (segment) this NIC is plugged into."""
        return self.bridge or self.segment


@dataclass(frozen=True)
class Route:
    """A static route of a node; the default route has destination 0.0.0.0/0 (or ::/0)."""

    destination: IPv4Network | IPv6Network
    via: IPv4Address | IPv6Address


@dataclass(frozen=True)
class Service:
    """A server process the lab runs detached inside a node's namespace."""

    #: "web" or "dns".
    kind: str
    #: Human name of the program (shown in the status).
    program: str
    protocol: str
    address: IPv4Address
    port: int
    #: The name of its pid and log files in the state dir when not ``kind`` ("web2"…: the
    #: servers of a further public network's "internet").
    label: str = ""

    @property
    def stem(self) -> str:
        """The name of its pid and log files, and its key in the lab's status."""
        return self.label or self.kind


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
    #: The hypervisor host it runs on (1, 2, …; for a hypervisor: itself), None if shared.
    host: int | None = None
    #: The zone it belongs to (1, 2, …), None for the shared upstream, web and DNS.
    zone: int | None = None

    def interface(self, name: str) -> Interface | None:
        """The declared interface of that name, or None."""
        return next((i for i in self.interfaces if i.name == name), None)

    def address_on(self, segment: str) -> IPv4Address | None:
        """This node's address on a segment (the first one), or None."""
        return next((i.address.ip for i in self.interfaces if i.segment == segment), None)

    def address6_on(self, segment: str) -> IPv6Address | None:
        """This node's IPv6 address on a segment, or None."""
        return next(
            (i.address6.ip for i in self.interfaces if i.segment == segment and i.address6),
            None,
        )

    @property
    def gateway(self) -> IPv4Address | None:
        """The next hop of the default route, or None."""
        return next(
            (IPv4Address(r.via) for r in self.routes if r.destination == DEFAULT_ROUTE), None
        )

    @property
    def gateway6(self) -> IPv6Address | None:
        """The next hop of the IPv6 default route, or None."""
        return next(
            (IPv6Address(r.via) for r in self.routes if r.destination == DEFAULT_ROUTE6), None
        )


def _if(
    name: str,
    segment: str,
    address: str,
    address6: str | None = None,
    *,
    prefix_route: bool = True,
    bridge: str = "",
) -> Interface:
    v6 = IPv6Interface(address6) if address6 else None
    # Named only when it is not the segment's own bridge (the first router's, host's).
    own = bridge if bridge != segment else ""
    return Interface(name, segment, IPv4Interface(address), prefix_route, v6, own)


def _default(via: str) -> Route:
    return Route(DEFAULT_ROUTE, IPv4Address(via))


def _default6(via: IPv6Address) -> Route:
    return Route(DEFAULT_ROUTE6, via)


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

GATEWAY6 = IPv6Address("2001:db8:0:113::1")
UPSTREAM_INET6 = IPv6Address("2001:db8:0:100::1")
WEB6 = IPv6Address("2001:db8:0:100::10")
DNS6 = IPv6Address("2001:db8:0:100::53")
UNREACHABLE6 = IPv6Address("2001:db8:0:100::99")
ROUTER_GUEST6 = IPv6Address("2001:db8:0:2::1")
ROUTER_PUBLIC6 = IPv6Address("2001:db8:0:113::10")
USER_VM6 = IPv6Address("2001:db8:0:2::100")
GUEST_NETWORK6 = IPv6Network("2001:db8:0:2::/64")


#: The first address of the control network's range; a VM's control address is this plus
#: ten times its id (r-1-VM 169.254.0.10), its management address 256 more (169.254.1.20):
#: never the same (those end in 6 modulo 10), nor the hypervisor's .0.1.
_LINK_LOCAL = IPv4Address("169.254.0.0")


def control_address(vm_id: int) -> IPv4Address:
    """The control (link-local) address of the system VM with this id."""
    return _LINK_LOCAL + 10 * vm_id


def mgmt_address(vm_id: int) -> IPv4Address:
    """The management NIC's address of the SSVM or CPVM with this id."""
    return control_address(vm_id) + 256


def public6(public: IPv4Address) -> IPv6Address:
    """A public IPv4 address's IPv6 twin: its last number repeated as the last group."""
    return IPv6Address(f"2001:db8:0:113::{str(public).rsplit('.', 1)[1]}")


def guest_bridge(router_id: int) -> str:
    """The bridge of a router's own guest network ("guest" for r-1-VM, "guest5" for r-5-VM)."""
    return "guest" if router_id == 1 else f"guest{router_id}"


def control_bridge(host: int) -> str:
    """The bridge of a host's own control network ("control" for host 1, "control2"…)."""
    return "control" if host == 1 else f"control{host}"


def hypervisor_name(host: int) -> str:
    """The hypervisor node of host ``host`` ("host" for the first, "host2"…)."""
    return HYPERVISOR if host == 1 else f"{HYPERVISOR}{host}"


def router_node(
    router_id: int, *, host: int, zone: int, public: IPv4Address, network: int = 1
) -> Node:
    """A virtual router, NICs as on a real CloudStack VR: eth0 guest (its own network, the
    same 192.0.2.0/24 as every other router's: isolated networks may overlap), eth1 control
    (its host's), eth2 public."""
    return Node(
        f"r-{router_id}-VM",
        f"r{router_id}",
        "router",
        VmType.DOMAIN_ROUTER,
        (
            _if(
                "eth0",
                "guest",
                f"{ROUTER_GUEST}/24",
                f"{ROUTER_GUEST6}/64",
                bridge=guest_bridge(router_id),
            ),
            _if("eth1", "control", f"{control_address(router_id)}/16", bridge=control_bridge(host)),
            _if(
                "eth2",
                "public",
                f"{public}/24",
                f"{public6(public)}/64",
                bridge=public_bridge(network),
            ),
        ),
        routes=(_default(str(GATEWAY)), _default6(GATEWAY6)),
        forwarding=True,
        host=host,
        zone=zone,
    )


def storage_node(
    vm_type: VmType, vm_id: int, *, host: int, zone: int, public: IPv4Address, network: int = 1
) -> Node:
    """An SSVM (``VmType.SECONDARY_STORAGE``) or a CPVM: eth0 control, eth1 management,
    eth2 public, as on real ones."""
    letter, role = (
        ("s", "secondarystoragevm")
        if vm_type == VmType.SECONDARY_STORAGE
        else ("v", "consoleproxy")
    )
    return Node(
        f"{letter}-{vm_id}-VM",
        f"{letter}{vm_id}",
        role,
        vm_type,
        (
            _if("eth0", "control", f"{control_address(vm_id)}/16", bridge=control_bridge(host)),
            _if("eth1", "mgmt", f"{mgmt_address(vm_id)}/16", prefix_route=False),
            _if(
                "eth2",
                "public",
                f"{public}/24",
                f"{public6(public)}/64",
                bridge=public_bridge(network),
            ),
        ),
        routes=(_default(str(GATEWAY)), _default6(GATEWAY6)),
        host=host,
        zone=zone,
    )


def public_bridge(network: int) -> str:
    """The bridge of public network ``network`` ("public", then "public2"…)."""
    return "public" if network == 1 else f"public{network}"


def inet_bridge(network: int) -> str:
    """The "internet" bridge behind public network ``network`` ("inet", "inet2"…)."""
    return "inet" if network == 1 else f"inet{network}"


def internet_nodes(network: int) -> tuple[Node, Node, Node]:
    """The upstream router, web and DNS server behind public network ``network``.

    The first network's are the lab's own. A lab too big for one public /24 has further
    public networks with the same 203.0.113.0/24 on isolated bridges, each behind an
    "internet" of its own at the same addresses (as separate sites would be): no NAT
    needed, and every VM sees the same gateway, web and DNS addresses.
    """
    n = "" if network == 1 else str(network)
    public, inet = public_bridge(network), inet_bridge(network)
    return (
        Node(
            f"upstream{n}",
            f"up{n}",
            "upstream",
            None,
            (
                _if("eth0", "public", f"{GATEWAY}/24", f"{GATEWAY6}/64", bridge=public),
                _if("eth1", "inet", f"{UPSTREAM_INET}/24", f"{UPSTREAM_INET6}/64", bridge=inet),
            ),
            # The guest network is reached through the virtual router, as a provider would
            # route a customer's network (the lab has no NAT): r-1-VM's, on the first network.
            routes=(Route(GUEST_NETWORK, ROUTER_PUBLIC), Route(GUEST_NETWORK6, ROUTER_PUBLIC6))
            if network == 1
            else (),
            forwarding=True,
        ),
        Node(
            f"web{n}",
            f"web{n}",
            "web",
            None,
            (_if("eth0", "inet", f"{WEB}/24", f"{WEB6}/64", bridge=inet),),
            routes=(_default(str(UPSTREAM_INET)), _default6(UPSTREAM_INET6)),
            service=Service("web", "http.server", "tcp", WEB, 80, label=f"web{n}" if n else ""),
        ),
        Node(
            f"dns{n}",
            f"dns{n}",
            "dns",
            None,
            (_if("eth0", "inet", f"{DNS}/24", f"{DNS6}/64", bridge=inet),),
            routes=(_default(str(UPSTREAM_INET)), _default6(UPSTREAM_INET6)),
            service=Service("dns", "dnsmasq", "udp", DNS, 53, label=f"dns{n}" if n else ""),
        ),
    )


def hypervisor_node(host: int, *, zone: int) -> Node:
    """A hypervisor: only its control segment, and no route at all. What it reaches is its
    own link-local control network, so an SSH client in it can talk to its own system VMs
    and nothing else (each host has its cloud0 at 169.254.0.1, as real KVM hosts do)."""
    return Node(
        hypervisor_name(host),
        "hv" if host == 1 else f"hv{host}",
        HYPERVISOR_ROLE,
        None,
        (_if("cloud0", "control", f"{HYPERVISOR_ADDRESS}/16", bridge=control_bridge(host)),),
        host=host,
        zone=zone,
    )


NODES: tuple[Node, ...] = (
    *internet_nodes(1),
    router_node(1, host=1, zone=1, public=ROUTER_PUBLIC),
    storage_node(VmType.SECONDARY_STORAGE, 2, host=1, zone=1, public=IPv4Address("203.0.113.20")),
    storage_node(VmType.CONSOLE_PROXY, 3, host=1, zone=1, public=IPv4Address("203.0.113.30")),
    Node(
        "i-4-VM",
        "i4",
        "uservm",
        None,
        (_if("eth0", "guest", f"{USER_VM}/24", f"{USER_VM6}/64"),),
        routes=(_default(str(ROUTER_GUEST)), _default6(ROUTER_GUEST6)),
        host=1,
        zone=1,
    ),
    hypervisor_node(1, zone=1),
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

#: The IPv6 addresses of those names that have one (AAAA and PTR records).
DNS_RECORDS6: dict[str, IPv6Address] = {
    f"web.{DNS_DOMAIN}": WEB6,
    f"dns.{DNS_DOMAIN}": DNS6,
    f"gw.{DNS_DOMAIN}": GATEWAY6,
    f"upstream.{DNS_DOMAIN}": UPSTREAM_INET6,
    f"router.{DNS_DOMAIN}": ROUTER_PUBLIC6,
    f"ssvm.{DNS_DOMAIN}": IPv6Address("2001:db8:0:113::20"),
    f"cpvm.{DNS_DOMAIN}": IPv6Address("2001:db8:0:113::30"),
    f"uservm.{DNS_DOMAIN}": USER_VM6,
    f"unreachable.{DNS_DOMAIN}": UNREACHABLE6,
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
    # The same hosts over IPv6.
    "gateway6": str(GATEWAY6),
    "web6": str(WEB6),
    "dns6": str(DNS6),
    "unreachable6": str(UNREACHABLE6),
    "uservm6": str(USER_VM6),
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


def in_lab(address: IPv4Address | IPv6Address | IPv4Network | IPv6Network | str) -> bool:
    """True if the address (or the whole network) lies in one of the allowed ranges."""
    if isinstance(address, IPv4Network | IPv6Network):
        same = (n for n in ALLOWED_NETWORKS if n.version == address.version)
        return any(address.subnet_of(n) for n in same)  # type: ignore[arg-type]
    ip = ipaddress.ip_address(str(address))
    return any(ip in n for n in ALLOWED_NETWORKS)


def system_vm_nodes() -> list[Node]:
    """The router, the secondary storage VM and the console proxy VM (the ones with sshd)."""
    return [n for n in NODES if n.role in SYSTEM_VM_ROLES]
