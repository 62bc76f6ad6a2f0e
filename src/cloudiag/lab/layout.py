"""A lab of a given size: Z zones, H hypervisor hosts, R routers on each host.

The default size (1, 1, 1) is exactly ``topology.NODES``; a bigger lab adds, with the
same node shapes (``topology.router_node``, ``storage_node``, ``hypervisor_node``):

- hosts spread over the zones in turn (host h is in zone ``(h - 1) % Z + 1``);
- an SSVM and a CPVM per zone, on the zone's first host;
- R routers per host, each with its own guest bridge (``guest<id>``) carrying the same
  192.0.2.0/24 as every other router's: CloudStack's isolated networks may overlap;
- a hypervisor node per host (``host``, ``host2``…) with its own control bridge
  (``control``, ``control2``…) and its own cloud0 at 169.254.0.1/16, as on real KVM hosts.
  Control addresses follow the VM id (``topology.control_address``), so they are unique in
  the whole lab although they only need to be per host: one known_hosts file serves all.

VM ids are CloudStack-like and unique: r-1-VM, s-2-VM, v-3-VM and i-4-VM as in the
default lab, then each further zone's SSVM and CPVM, then the further routers host by host.
Public NICs fill the public segment 203.0.113.0/24 (gateway .1): the existing .10, .20
and .30, then the free addresses in order, 253 NICs in all. Past that, further public
networks with the same 203.0.113.0/24 on isolated bridges (``public2``…), each behind an
"internet" of its own at the same addresses (``topology.internet_nodes``), 253 NICs each:
as separate sites, or a zone's several public ranges, would be. Every VM sees the same
gateway, web and DNS addresses, with no NAT. A lab is capped by its control addresses
(``MAX_VM_ID``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from ipaddress import IPv4Address
from itertools import count

from cloudiag.domain import VmType
from cloudiag.lab.topology import (
    GATEWAY,
    HYPERVISOR_ROLE,
    NODES,
    ROUTER_PUBLIC,
    SEGMENTS,
    SYSTEM_VM_ROLES,
    ZONE_NAME,
    Node,
    Segment,
    control_bridge,
    guest_bridge,
    hypervisor_node,
    inet_bridge,
    internet_nodes,
    public_bridge,
    router_node,
    stable_uuid,
    storage_node,
)

#: Public addresses the default lab already uses, besides the gateway.
_TAKEN = frozenset(
    {GATEWAY, ROUTER_PUBLIC, IPv4Address("203.0.113.20"), IPv4Address("203.0.113.30")}
)
#: The public segment's free host addresses, in the order further VMs take them.
_FREE_PUBLIC = tuple(
    a for a in (IPv4Address("203.0.113.0") + i for i in range(1, 255)) if a not in _TAKEN
)
#: A further public network's host addresses: all but its gateway.
_ALL_PUBLIC = tuple(IPv4Address("203.0.113.0") + i for i in range(2, 255))
#: The highest VM id: its management address (``topology.mgmt_address``) must stay in
#: 169.254.0.0/16.
MAX_VM_ID = 6500


@dataclass(frozen=True)
class LabSize:
    """How big a lab is; the default is the one-zone, one-host, one-router lab."""

    zones: int = 1
    hosts: int = 1
    routers: int = 1

    def check(self) -> LabSize:
        """Return itself if such a lab can be built, else raise ValueError saying why."""
        if min(self.zones, self.hosts, self.routers) < 1:
            raise ValueError("a lab needs at least 1 zone, 1 host and 1 router per host")
        if self.hosts < self.zones:
            raise ValueError(f"{self.zones} zones need at least as many hosts (got {self.hosts})")
        # r-1, s-2, v-3 and i-4, each further zone's SSVM and CPVM, the further routers.
        last_id = 4 + 2 * (self.zones - 1) + self.hosts * self.routers - 1
        if last_id > MAX_VM_ID:
            raise ValueError(
                f"{self.hosts} hosts x {self.routers} routers and {self.zones} zones need VM "
                f"ids up to {last_id}; the lab's control network holds {MAX_VM_ID}"
            )
        return self


DEFAULT_SIZE = LabSize()


@dataclass(frozen=True)
class ZoneDecl:
    """A zone of the lab: its number (1, 2, …), its name and the key of its uuid."""

    number: int
    name: str

    @property
    def key(self) -> str:
        """The name its stable uuid is made from ("zone", "zone2"…)."""
        return "zone" if self.number == 1 else f"zone{self.number}"


@dataclass(frozen=True)
class HostDecl:
    """A hypervisor host of the lab: its number, its zone, its hypervisor node."""

    number: int
    zone: int
    node: Node

    @property
    def key(self) -> str:
        """The name its stable uuid is made from ("host", "host2"…)."""
        return self.node.name


@dataclass(frozen=True)
class Layout:
    """Everything a lab of one size declares."""

    size: LabSize
    zones: tuple[ZoneDecl, ...]
    hosts: tuple[HostDecl, ...]
    segments: tuple[Segment, ...]
    nodes: tuple[Node, ...]

    def system_vms(self, host: int | None = None) -> list[Node]:
        """Routers, SSVMs and CPVMs (those of one host when ``host`` is given)."""
        return [
            n for n in self.nodes if n.role in SYSTEM_VM_ROLES and (host is None or n.host == host)
        ]

    def vms(self, host: int | None = None) -> list[Node]:
        """Every VM (system VMs and the user VM), of one host when ``host`` is given."""
        return [
            n
            for n in self.nodes
            if n.zone is not None and n.role != HYPERVISOR_ROLE and (host is None or n.host == host)
        ]

    def node(self, name: str) -> Node:
        """A node by name (``r-5-VM``) or role (the first of it); KeyError if none."""
        for n in self.nodes:
            if name in (n.name, n.role):
                return n
        raise KeyError(name)

    def host(self, number: int) -> HostDecl:
        """Host ``number``; KeyError if the lab has no such host."""
        for h in self.hosts:
            if h.number == number:
                return h
        raise KeyError(number)

    def zone(self, number: int) -> ZoneDecl:
        """Zone ``number``; KeyError if the lab has no such zone."""
        for z in self.zones:
            if z.number == number:
                return z
        raise KeyError(number)


def zone_uuid(prefix: str, zone: ZoneDecl) -> str:
    """A zone's stable uuid (the first zone's is ``topology.zone_uuid``)."""
    return stable_uuid(prefix, zone.key)


def host_uuid(prefix: str, host: HostDecl) -> str:
    """A host's stable uuid (the first host's is what the default lab always had)."""
    return stable_uuid(prefix, host.key)


def zone_of(size: LabSize, host: int) -> int:
    """The zone host ``host`` is in: hosts go to the zones in turn."""
    return (host - 1) % size.zones + 1


def _public_addresses() -> Iterator[tuple[int, IPv4Address]]:
    """(public network, address) for each further public NIC, in order."""
    yield from ((1, a) for a in _FREE_PUBLIC)
    for network in count(2):
        yield from ((network, a) for a in _ALL_PUBLIC)


def _network_of(n: Node) -> int:
    """The public network a VM's public NIC is on (1, 2, …)."""
    bridge = next(i.switch_bridge for i in n.interfaces if i.segment == "public")
    return int(bridge.removeprefix("public") or 1)


@cache
def layout(size: LabSize = DEFAULT_SIZE) -> Layout:
    """The declaration of a lab of that size; ValueError if it cannot be built."""
    size.check()
    zones = tuple(
        ZoneDecl(z, ZONE_NAME if z == 1 else f"{ZONE_NAME}-{z}") for z in range(1, size.zones + 1)
    )
    # The default lab's nodes, in their order, then the rest.
    *default_nodes, default_host = NODES
    extra_vms: list[Node] = []
    public = _public_addresses()
    next_id = 1 + max(int(n.name.split("-")[1]) for n in default_nodes if n.zone is not None)
    for z in range(2, size.zones + 1):
        first_host = z  # host z is the first host of zone z (hosts go round the zones)
        for vm_type in (VmType.SECONDARY_STORAGE, VmType.CONSOLE_PROXY):
            network, address = next(public)
            extra_vms.append(
                storage_node(
                    vm_type, next_id, host=first_host, zone=z, public=address, network=network
                )
            )
            next_id += 1
    for h in range(1, size.hosts + 1):
        for k in range(1, size.routers + 1):
            if (h, k) == (1, 1):
                continue  # r-1-VM
            network, address = next(public)
            extra_vms.append(
                router_node(next_id, host=h, zone=zone_of(size, h), public=address, network=network)
            )
            next_id += 1
    hosts = (
        HostDecl(1, 1, default_host),
        *(
            HostDecl(h, zone_of(size, h), hypervisor_node(h, zone=zone_of(size, h)))
            for h in range(2, size.hosts + 1)
        ),
    )
    networks = range(2, 1 + max((_network_of(n) for n in extra_vms), default=1))
    internets = [n for k in networks for n in internet_nodes(k)]
    base = {s.name: s for s in SEGMENTS}
    segments = [
        *SEGMENTS,
        *(
            Segment(
                bridge,
                base[kind].network,
                f"{kind} network {k}",
                base[kind].network6,
                mtu=base[kind].mtu,
                kind=kind,
            )
            for k in networks
            for kind, bridge in (("public", public_bridge(k)), ("inet", inet_bridge(k)))
        ),
        *(
            Segment(
                guest_bridge(int(n.name.split("-")[1])),
                base["guest"].network,
                f"guest network of {n.name}",
                base["guest"].network6,
                kind="guest",
            )
            for n in extra_vms
            if n.role == "router"
        ),
        *(
            Segment(
                control_bridge(h.number),
                base["control"].network,
                f"control network of host {h.number}",
                kind="control",
            )
            for h in hosts[1:]
        ),
    ]
    nodes = (
        *default_nodes,
        *extra_vms,
        *internets,
        default_host,
        *(h.node for h in hosts[1:]),
    )
    return Layout(size, zones, hosts, tuple(segments), nodes)
