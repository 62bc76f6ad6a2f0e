"""Building the lab in the kernel: namespaces, the switch's bridges, each node's wiring.

Nothing is ever created in the root namespace: veth pairs are made from inside the switch
namespace with their peer placed straight into the node's namespace, and every address and
route comes from the declaration in ``topology``, which only uses documentation and
link-local ranges (checked again here before anything is added).
"""

from __future__ import annotations

from pathlib import Path

from cloudiag.lab import system
from cloudiag.lab.errors import LabError
from cloudiag.lab.resolv import write_resolv
from cloudiag.lab.services import start_services
from cloudiag.lab.topology import (
    DEFAULT_ROUTE,
    DEFAULT_ROUTE6,
    NODES,
    SEGMENTS,
    Node,
    bridge_mac,
    in_lab,
    mac_address,
    namespace,
    port_mac,
    port_name,
    segment,
    switch_namespace,
)


def _sysctls(n: Node | None) -> dict[str, str]:
    # IPv6 is off on every NIC unless enabled on it by name (_enable_ipv6): the control and
    # management networks and the switch's bridges stay free of router solicitations and
    # MLD. Where it is on, no DAD (addresses usable at once) and no router advertisements
    # heeded (routes come from the declaration only).
    has_v6 = n is not None and any(i.address6 for i in n.interfaces)
    values = {
        # No rate limit on ICMP errors: mtr and traceroute send probes faster than Linux's
        # one error a second per peer, and the lab must answer every one of them.
        "net.ipv4.icmp_ratelimit": "0",
        "net.ipv6.icmp.ratelimit": "0",
        "net.ipv6.conf.all.disable_ipv6": "0" if has_v6 else "1",
        "net.ipv6.conf.default.disable_ipv6": "1",
        "net.ipv6.conf.default.accept_dad": "0",
        "net.ipv6.conf.default.accept_ra": "0",
        "net.ipv6.conf.default.router_solicitations": "0",
    }
    if n is not None and n.forwarding:
        values["net.ipv4.ip_forward"] = "1"
        if has_v6:
            values["net.ipv6.conf.all.forwarding"] = "1"
    return values


def _create_namespace(ns: str, n: Node | None) -> None:
    system.ip("netns", "add", ns)
    system.set_sysctls(ns, _sysctls(n))
    system.ip("-n", ns, "link", "set", "lo", "up")


def _build_switch(prefix: str) -> None:
    sw = switch_namespace(prefix)
    _create_namespace(sw, None)
    for seg in SEGMENTS:
        # No STP: ports forward at once (a loop is impossible, each VM has one port per bridge).
        # No multicast snooping either: with no MLD querier in the lab, IPv6 neighbour
        # discovery must simply be flooded to every port.
        system.ip(
            *("-n", sw, "link", "add", seg.name, "address", bridge_mac(prefix, seg)),
            *("type", "bridge", "stp_state", "0", "mcast_snooping", "0"),
        )
        system.ip("-n", sw, "link", "set", seg.name, "up")


def _enable_ipv6(ns: str, n: Node) -> None:
    """Turn IPv6 on for the NICs that have an IPv6 address (new NICs start with it off)."""
    values = {f"net.ipv6.conf.{i.name}.disable_ipv6": "0" for i in n.interfaces if i.address6}
    if values:
        system.set_sysctls(ns, values)


def _wire(prefix: str, n: Node) -> None:
    """Plug a node's NICs into the switch, address them, add its routes."""
    sw = switch_namespace(prefix)
    ns = namespace(prefix, n)
    for iface in n.interfaces:
        for address in (iface.address, iface.address6):
            if address is not None and not in_lab(address.ip):
                raise LabError(f"refusing {address} on {ns}: outside the lab's ranges")
        port = port_name(n, iface)
        mac = mac_address(prefix, n, iface)
        mtu = str(segment(iface.segment).mtu)
        system.ip(
            *("-n", sw, "link", "add", port, "address", port_mac(prefix, n, iface), "mtu", mtu),
            *("type", "veth", "peer", "name", iface.name, "address", mac, "mtu", mtu),
            *("netns", ns),
        )
        system.ip("-n", sw, "link", "set", port, "master", iface.segment, "up")
    _enable_ipv6(ns, n)
    for iface in n.interfaces:
        extra = () if iface.prefix_route else ("noprefixroute",)
        system.ip("-n", ns, "addr", "add", str(iface.address), "dev", iface.name, *extra)
        if iface.address6 is not None:
            system.ip(
                *("-n", ns, "-6", "addr", "add", str(iface.address6), "dev", iface.name, "nodad")
            )
        system.ip("-n", ns, "link", "set", iface.name, "up")
    for route in n.routes:
        if not in_lab(route.via):
            raise LabError(f"refusing a route via {route.via} in {ns}: outside the lab")
        default = route.destination in (DEFAULT_ROUTE, DEFAULT_ROUTE6)
        dest = "default" if default else str(route.destination)
        family = "-6" if route.via.version == 6 else "-4"
        system.ip("-n", ns, family, "route", "add", dest, "via", str(route.via))


def create_node(prefix: str, n: Node) -> None:
    """Create one node's namespace, plug it into the (existing) switch, give it resolv.conf."""
    ns = namespace(prefix, n)
    _create_namespace(ns, n)
    _wire(prefix, n)
    write_resolv(ns)


def build(prefix: str, state: Path) -> None:
    """Build a whole lab from nothing: the switch, every node, then the servers."""
    state.mkdir(parents=True, exist_ok=True)
    _build_switch(prefix)
    for n in NODES:
        create_node(prefix, n)
    start_services(prefix, state, [n for n in NODES if n.service])
