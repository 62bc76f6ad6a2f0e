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
    NODES,
    SEGMENTS,
    Node,
    bridge_mac,
    in_lab,
    mac_address,
    namespace,
    port_mac,
    port_name,
    switch_namespace,
)


def _sysctls(n: Node | None) -> dict[str, str]:
    # No IPv6 in the lab: it spares DAD, router solicitations and MLD noise on the bridges.
    values = {
        "net.ipv6.conf.all.disable_ipv6": "1",
        "net.ipv6.conf.default.disable_ipv6": "1",
    }
    if n is not None and n.forwarding:
        values["net.ipv4.ip_forward"] = "1"
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
        system.ip(
            *("-n", sw, "link", "add", seg.name, "address", bridge_mac(prefix, seg)),
            *("type", "bridge", "stp_state", "0"),
        )
        system.ip("-n", sw, "link", "set", seg.name, "up")


def _wire(prefix: str, n: Node) -> None:
    """Plug a node's NICs into the switch, address them, add its routes."""
    sw = switch_namespace(prefix)
    ns = namespace(prefix, n)
    for iface in n.interfaces:
        if not in_lab(iface.address.ip):
            raise LabError(f"refusing {iface.address} on {ns}: outside the lab's ranges")
        port = port_name(n, iface)
        mac = mac_address(prefix, n, iface)
        system.ip(
            *("-n", sw, "link", "add", port, "address", port_mac(prefix, n, iface), "type", "veth"),
            *("peer", "name", iface.name, "address", mac, "netns", ns),
        )
        system.ip("-n", sw, "link", "set", port, "master", iface.segment, "up")
        extra = () if iface.prefix_route else ("noprefixroute",)
        system.ip("-n", ns, "addr", "add", str(iface.address), "dev", iface.name, *extra)
        system.ip("-n", ns, "link", "set", iface.name, "up")
    for route in n.routes:
        if not in_lab(route.via):
            raise LabError(f"refusing a route via {route.via} in {ns}: outside the lab")
        dest = "default" if route.destination == DEFAULT_ROUTE else str(route.destination)
        system.ip("-n", ns, "route", "add", dest, "via", str(route.via))


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
