"""Building the lab in the kernel: namespaces, the switch's bridges, each node's wiring.

Nothing is ever created in the root namespace: veth pairs are made from inside the switch
namespace with their peer placed straight into the node's namespace, and every address and
route comes from the declaration in ``topology``, which only uses documentation and
link-local ranges (checked again here before anything is added).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cloudiag.lab import system
from cloudiag.lab.errors import LabError
from cloudiag.lab.layout import Layout, layout
from cloudiag.lab.resolv import write_resolv
from cloudiag.lab.services import start_services
from cloudiag.lab.topology import (
    SEGMENTS,
    Node,
    Segment,
    bridge_mac,
    in_lab,
    mac_address,
    namespace,
    port_mac,
    port_name,
    switch_namespace,
)

#: How many per-node `ip -batch` processes run at once.
_WORKERS = 4


def _sysctls(n: Node | None) -> dict[str, str]:
    # IPv6 is off on every NIC unless enabled on it by name (_ipv6_sysctls): the control and
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


def _check_addresses(ns: str, n: Node) -> None:
    for iface in n.interfaces:
        for address in (iface.address, iface.address6):
            if address is not None and not in_lab(address.ip):
                raise LabError(f"refusing {address} on {ns}: outside the lab's ranges")
    for route in n.routes:
        if not in_lab(route.via):
            raise LabError(f"refusing a route via {route.via} in {ns}: outside the lab")


def _switch_commands(prefix: str, segments: Sequence[Segment]) -> list[list[str]]:
    commands = [["link", "set", "lo", "up"]]
    for seg in segments:
        # No STP: ports forward at once (a loop is impossible, each VM has one port per bridge).
        # No multicast snooping either: with no MLD querier in the lab, IPv6 neighbour
        # discovery must simply be flooded to every port.
        commands.append(
            [
                *("link", "add", seg.name, "address", bridge_mac(prefix, seg)),
                *("type", "bridge", "stp_state", "0", "mcast_snooping", "0"),
            ]
        )
        commands.append(["link", "set", seg.name, "up"])
    return commands


def _port_commands(prefix: str, n: Node, mtus: dict[str, int]) -> list[list[str]]:
    """Run in the switch: a node's veth pairs, the peer straight into its namespace."""
    ns = namespace(prefix, n)
    commands: list[list[str]] = []
    for iface in n.interfaces:
        port = port_name(n, iface)
        mac = mac_address(prefix, n, iface)
        mtu = str(mtus[iface.switch_bridge])
        commands.append(
            [
                *("link", "add", port, "address", port_mac(prefix, n, iface), "mtu", mtu),
                *("type", "veth", "peer", "name", iface.name, "address", mac, "mtu", mtu),
                *("netns", ns),
            ]
        )
        commands.append(["link", "set", port, "master", iface.switch_bridge, "up"])
    return commands


def _node_commands(n: Node) -> list[list[str]]:
    """Run in the node's namespace: its addresses, its NICs up, its routes."""
    commands = [["link", "set", "lo", "up"]]
    for iface in n.interfaces:
        extra = [] if iface.prefix_route else ["noprefixroute"]
        commands.append(["addr", "add", str(iface.address), "dev", iface.name, *extra])
        if iface.address6 is not None:
            commands.append(["addr", "add", str(iface.address6), "dev", iface.name, "nodad"])
        commands.append(["link", "set", iface.name, "up"])
    # No "-4"/"-6" in a batch: the family comes from the addresses (0.0.0.0/0 and ::/0 are
    # the default routes).
    commands += [["route", "add", str(r.destination), "via", str(r.via)] for r in n.routes]
    return commands


def _ipv6_sysctls(n: Node) -> dict[str, str]:
    """Turn IPv6 on for the NICs that have an IPv6 address (new NICs start with it off)."""
    return {f"net.ipv6.conf.{i.name}.disable_ipv6": "0" for i in n.interfaces if i.address6}


def create_nodes(prefix: str, nodes: Sequence[Node], segments: Sequence[Segment]) -> None:
    """Create these nodes' namespaces, plug them into the (existing) switch, address them
    and give them resolv.conf.

    Batched, as a lab may have hundreds of nodes: one `ip -batch` for every namespace, one
    process for the sysctls of all of them (twice: the defaults before their NICs exist,
    then IPv6 on for the NICs that have it), one `ip -batch` in the switch for every veth,
    and one per node for its addresses and routes, a few at a time.
    """
    names = {n.name: namespace(prefix, n) for n in nodes}
    for n in nodes:
        _check_addresses(names[n.name], n)
    mtus = {s.name: s.mtu for s in segments}
    system.ip_batch([["netns", "add", names[n.name]] for n in nodes])
    system.set_sysctls_many({names[n.name]: _sysctls(n) for n in nodes})
    ports = [c for n in nodes for c in _port_commands(prefix, n, mtus)]
    system.ip_batch(ports, namespace=switch_namespace(prefix))
    system.set_sysctls_many({names[n.name]: v for n in nodes if (v := _ipv6_sysctls(n))})
    # Each batch is a process that mostly waits on the kernel: a few at once go faster.
    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        done = [
            pool.submit(system.ip_batch, _node_commands(n), namespace=names[n.name]) for n in nodes
        ]
        for future in done:
            future.result()
    for ns in names.values():
        write_resolv(ns)


def create_node(prefix: str, n: Node, segments: Sequence[Segment] = SEGMENTS) -> None:
    """Create one node (see ``create_nodes``): a VM started again."""
    create_nodes(prefix, [n], segments)


def build(prefix: str, state: Path, lay: Layout | None = None) -> None:
    """Build a whole lab from nothing: the switch, every node, then the servers."""
    lay = lay if lay is not None else layout()
    state.mkdir(parents=True, exist_ok=True)
    sw = switch_namespace(prefix)
    system.ip_batch([["netns", "add", sw]])
    system.set_sysctls_many({sw: _sysctls(None)})
    system.ip_batch(_switch_commands(prefix, lay.segments), namespace=sw)
    create_nodes(prefix, lay.nodes, lay.segments)
    start_services(prefix, state, [n for n in lay.nodes if n.service])
