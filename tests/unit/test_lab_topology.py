"""The lab's declaration: only lab addresses, no way out, stable ids, CloudStack NIC names."""

from __future__ import annotations

import uuid
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import pytest

from cloudiag.lab import topology as t

# Written out here on purpose, independently of topology.ALLOWED_NETWORKS.
ALLOWED = [
    IPv4Network("192.0.2.0/24"),
    IPv4Network("198.51.100.0/24"),
    IPv4Network("203.0.113.0/24"),
    IPv4Network("169.254.0.0/16"),
]
ALLOWED6 = [IPv6Network("2001:db8::/32"), IPv6Network("fe80::/10")]

Address = IPv4Address | IPv6Address


def allowed(address: Address) -> bool:
    return any(address in net for net in (*ALLOWED, *ALLOWED6))


def all_addresses() -> list[Address]:
    addrs: list[Address] = [i.address.ip for n in t.NODES for i in n.interfaces]
    addrs += [i.address6.ip for n in t.NODES for i in n.interfaces if i.address6]
    addrs += [r.via for n in t.NODES for r in n.routes]
    addrs += [ip_address(v) for k, v in t.TARGETS.items() if k != "web_name"]
    addrs += list(t.DNS_RECORDS.values())
    addrs += list(t.DNS_RECORDS6.values())
    addrs += [t.GATEWAY, t.WEB, t.DNS, t.UNREACHABLE, t.ROUTER_GUEST, t.ROUTER_PUBLIC]
    addrs += [t.GATEWAY6, t.WEB6, t.DNS6, t.UNREACHABLE6, t.ROUTER_GUEST6, t.ROUTER_PUBLIC6]
    return addrs


def test_every_address_is_in_the_allowed_ranges() -> None:
    for address in all_addresses():
        assert allowed(address), address
        assert t.in_lab(address)
    for net in [
        *(s.network for s in t.SEGMENTS),
        *(r.destination for n in t.NODES for r in n.routes if r.via.version == 4),
    ]:
        if net != t.DEFAULT_ROUTE:
            assert isinstance(net, IPv4Network)
            assert any(net.subnet_of(a) for a in ALLOWED), net
    for net6 in [
        *(s.network6 for s in t.SEGMENTS if s.network6),
        *(r.destination for n in t.NODES for r in n.routes if r.via.version == 6),
    ]:
        if net6 != t.DEFAULT_ROUTE6:
            assert isinstance(net6, IPv6Network)
            assert net6.subnet_of(ALLOWED6[0]), net6
            assert t.in_lab(net6)
    assert sorted(map(str, t.ALLOWED_NETWORKS)) == sorted(map(str, [*ALLOWED, *ALLOWED6]))


def test_in_lab_refuses_everything_else() -> None:
    for outside in ("10.0.0.1", "172.16.0.1", "192.168.1.1", "8.8.8.8", "1.1.1.1", "0.0.0.0"):
        assert not t.in_lab(outside)
    for outside6 in ("2001:4860:4860::8888", "2001:db9::1", "fd00::1", "::", "::ffff:8.8.8.8"):
        assert not t.in_lab(outside6)
    assert not t.in_lab(IPv4Network("0.0.0.0/0"))
    assert not t.in_lab(IPv4Network("198.51.0.0/16"))
    assert not t.in_lab(IPv6Network("::/0"))
    assert not t.in_lab(IPv6Network("2001:d00::/24"))


def test_each_address_lies_in_its_segment_and_is_unique() -> None:
    seen: dict[IPv4Address, str] = {}
    for n in t.NODES:
        for i in n.interfaces:
            seg = t.segment(i.segment)
            assert i.address.ip in seg.network, (n.name, i)
            assert i.address.network.prefixlen == seg.network.prefixlen, (n.name, i)
            assert i.address.ip not in seen, f"{i.address.ip} on {n.name} and {seen[i.address.ip]}"
            seen[i.address.ip] = n.name


def test_each_ipv6_address_lies_in_its_segment_and_is_unique() -> None:
    seen: dict[IPv6Address, str] = {}
    for n in t.NODES:
        for i in n.interfaces:
            seg = t.segment(i.segment)
            if i.address6 is None:
                continue
            assert seg.network6 is not None and i.address6.ip in seg.network6, (n.name, i)
            assert i.address6.network == seg.network6, (n.name, i)
            assert i.address6.ip not in seen, (n.name, i)
            seen[i.address6.ip] = n.name
    # Every NIC on a segment with IPv6 has an IPv6 address; the others have none.
    for n in t.NODES:
        for i in n.interfaces:
            assert (i.address6 is not None) == (t.segment(i.segment).network6 is not None)
    v6_segments = {s.name for s in t.SEGMENTS if s.network6}
    assert v6_segments == {"guest", "public", "inet"}


def lab_address_owner(address: Address) -> t.Node | None:
    return next(
        (
            n
            for n in t.NODES
            for i in n.interfaces
            if address in (i.address.ip, i.address6.ip if i.address6 else None)
        ),
        None,
    )


def test_every_route_points_at_a_lab_node_on_a_connected_segment() -> None:
    for n in t.NODES:
        for r in n.routes:
            owner = lab_address_owner(r.via)
            assert owner is not None and owner is not n, (n.name, r)
            assert r.destination.version == r.via.version, (n.name, r)
            networks = [i.address.network for i in n.interfaces if i.prefix_route]
            networks += [i.address6.network for i in n.interfaces if i.address6]
            connected = [net for net in networks if r.via in net]
            assert connected, f"{n.name}: next hop {r.via} is not on a connected segment"


def test_default_routes_stay_in_the_lab() -> None:
    defaults = {n.name: n.gateway for n in t.NODES}
    # System VMs leave through the upstream router, the user VM through the virtual router.
    for name in ("r-1-VM", "s-2-VM", "v-3-VM"):
        assert defaults[name] == IPv4Address("203.0.113.1")
    assert defaults["i-4-VM"] == IPv4Address("192.0.2.1")
    assert defaults["web"] == defaults["dns"] == IPv4Address("198.51.100.1")
    # The upstream router is the end of the line: no default route at all.
    assert defaults["upstream"] is None
    for gw in defaults.values():
        if gw is not None:
            assert lab_address_owner(gw) is not None


def test_ipv6_default_routes_mirror_the_ipv4_ones() -> None:
    defaults = {n.name: n.gateway6 for n in t.NODES}
    for name in ("r-1-VM", "s-2-VM", "v-3-VM"):
        assert defaults[name] == IPv6Address("2001:db8:0:113::1")
    assert defaults["i-4-VM"] == IPv6Address("2001:db8:0:2::1")
    assert defaults["web"] == defaults["dns"] == IPv6Address("2001:db8:0:100::1")
    # No way out over IPv6 either: the upstream router and the hypervisor have no default.
    assert defaults["upstream"] is None and defaults["host"] is None
    up = t.node("upstream")
    assert [(str(r.destination), str(r.via)) for r in up.routes if r.via.version == 6] == [
        ("2001:db8:0:2::/64", "2001:db8:0:113::10")
    ]
    for n in t.NODES:
        assert [r for r in n.routes if r.destination == t.DEFAULT_ROUTE6] == (
            [] if defaults[n.name] is None else [t.Route(t.DEFAULT_ROUTE6, defaults[n.name])]
        )


def test_control_and_management_have_no_ipv6() -> None:
    for n in t.NODES:
        for i in n.interfaces:
            if i.segment in ("control", "mgmt"):
                assert i.address6 is None, (n.name, i)
    assert all(i.address6 is None for i in t.node("host").interfaces)


def test_the_inet_segment_has_a_smaller_mtu() -> None:
    assert {s.name: s.mtu for s in t.SEGMENTS} == {
        "guest": 1500,
        "public": 1500,
        "inet": 1400,
        "control": 1500,
        "mgmt": 1500,
    }


def test_the_public_gateway_and_the_guest_route() -> None:
    up = t.node("upstream")
    assert up.address_on("public") == IPv4Address("203.0.113.1")
    assert up.address_on("inet") == IPv4Address("198.51.100.1")
    assert up.forwarding and t.node("router").forwarding
    assert [(str(r.destination), str(r.via)) for r in up.routes if r.via.version == 4] == [
        ("192.0.2.0/24", "203.0.113.10")
    ]


@pytest.mark.parametrize(
    ("name", "nics", "v6"),
    [
        (
            "r-1-VM",
            [
                ("eth0", "guest", "192.0.2.1/24"),
                ("eth1", "control", None),
                ("eth2", "public", "203.0.113.10/24"),
            ],
            {"eth0": "2001:db8:0:2::1/64", "eth2": "2001:db8:0:113::10/64"},
        ),
        (
            "s-2-VM",
            [
                ("eth0", "control", None),
                ("eth1", "mgmt", None),
                ("eth2", "public", "203.0.113.20/24"),
            ],
            {"eth2": "2001:db8:0:113::20/64"},
        ),
        (
            "v-3-VM",
            [
                ("eth0", "control", None),
                ("eth1", "mgmt", None),
                ("eth2", "public", "203.0.113.30/24"),
            ],
            {"eth2": "2001:db8:0:113::30/64"},
        ),
        ("i-4-VM", [("eth0", "guest", "192.0.2.100/24")], {"eth0": "2001:db8:0:2::100/64"}),
        (
            "upstream",
            [("eth0", "public", "203.0.113.1/24"), ("eth1", "inet", "198.51.100.1/24")],
            {"eth0": "2001:db8:0:113::1/64", "eth1": "2001:db8:0:100::1/64"},
        ),
        ("web", [("eth0", "inet", "198.51.100.10/24")], {"eth0": "2001:db8:0:100::10/64"}),
        ("dns", [("eth0", "inet", "198.51.100.53/24")], {"eth0": "2001:db8:0:100::53/64"}),
        ("host", [("cloud0", "control", "169.254.0.1/16")], {}),
    ],
)
def test_interface_names_as_on_cloudstack(
    name: str, nics: list[tuple[str, str, str | None]], v6: dict[str, str]
) -> None:
    n = t.node(name)
    assert [(i.name, i.segment) for i in n.interfaces] == [(x, s) for x, s, _ in nics]
    assert {i.name: str(i.address6) for i in n.interfaces if i.address6} == v6
    for i, (_, segment, address) in zip(n.interfaces, nics, strict=True):
        if address is not None:
            assert str(i.address) == address
        if segment in ("control", "mgmt"):
            assert i.address.ip in IPv4Network("169.254.0.0/16")


def test_the_hypervisor_is_on_the_control_segment_only() -> None:
    host = t.node("host")
    assert t.node("hypervisor") is host
    assert [(i.name, i.segment, str(i.address)) for i in host.interfaces] == [
        ("cloud0", "control", "169.254.0.1/16")
    ]
    # No route at all: it reaches the control network's link-local range and nothing else.
    assert host.routes == () and host.gateway is None and not host.forwarding
    assert host.service is None and host.systemvmtype is None
    assert t.in_lab(t.HYPERVISOR_ADDRESS)
    assert t.namespace("cdlab", host) == "cdlab-host"
    assert host not in t.system_vm_nodes()
    assert [n.name for n in t.system_vm_nodes()] == ["r-1-VM", "s-2-VM", "v-3-VM"]
    # Every system VM has a control address on the hypervisor's network, for its sshd.
    for n in t.system_vm_nodes():
        control = n.address_on("control")
        assert control is not None and control in host.interfaces[0].address.network


def test_management_nic_has_no_route() -> None:
    for name in ("s-2-VM", "v-3-VM"):
        mgmt = t.node(name).interface("eth1")
        assert mgmt is not None and mgmt.segment == "mgmt" and not mgmt.prefix_route
    # Nothing else is added without its route.
    assert all(i.prefix_route for n in t.NODES for i in n.interfaces if i.segment != "mgmt")


def test_roles_and_system_vm_types() -> None:
    types = {n.role: n.systemvmtype for n in t.NODES}
    assert types["router"] == "domainrouter"
    assert types["secondarystoragevm"] == "secondarystoragevm"
    assert types["consoleproxy"] == "consoleproxy"
    assert types["uservm"] is None
    assert {n.role for n in t.NODES} == {
        "router",
        "secondarystoragevm",
        "consoleproxy",
        "uservm",
        "upstream",
        "web",
        "dns",
        "hypervisor",
    }


def test_names_and_switch_ports() -> None:
    assert t.namespace("cdlab", t.node("router")) == "cdlab-r-1-VM"
    assert t.switch_namespace("cdlab") == "cdlab-sw"
    names = t.all_namespaces("cdlab")
    assert len(names) == len(set(names)) == len(t.NODES) + 1
    ports = [t.port_name(n, i) for n in t.NODES for i in n.interfaces]
    assert len(ports) == len(set(ports))
    bridges = {s.name for s in t.SEGMENTS}
    for port in ports:
        assert len(port) <= 15 and port not in bridges
    assert {"guest", "public", "inet", "control", "mgmt"} == bridges
    assert all(len(b) <= 15 for b in bridges)


def test_uuids_are_stable_uuid5() -> None:
    expected = uuid.uuid5(uuid.NAMESPACE_URL, "cloudiag-lab:cdlab:r-1-VM")
    assert t.stable_uuid("cdlab", "r-1-VM") == str(expected)
    assert t.zone_uuid("cdlab") == str(uuid.uuid5(uuid.NAMESPACE_URL, "cloudiag-lab:cdlab:zone"))
    assert t.stable_uuid("cdlab", "r-1-VM") == t.stable_uuid("cdlab", "r-1-VM")
    assert t.stable_uuid("cdlab", "r-1-VM") != t.stable_uuid("other", "r-1-VM")
    ids = {t.stable_uuid("cdlab", n.name) for n in t.NODES}
    assert len(ids) == len(t.NODES)


def test_macs_are_stable_local_and_unique() -> None:
    macs = [t.mac_address("cdlab", n, i) for n in t.NODES for i in n.interfaces]
    macs += [t.port_mac("cdlab", n, i) for n in t.NODES for i in n.interfaces]
    macs += [t.bridge_mac("cdlab", s) for s in t.SEGMENTS]
    assert len(macs) == len(set(macs))
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0x02 and not first & 0x01, mac  # locally administered, unicast
    r = t.node("router")
    assert t.mac_address("cdlab", r, r.interfaces[0]) == t.mac_address("cdlab", r, r.interfaces[0])
    assert t.mac_address("cdlab", r, r.interfaces[0]) != t.mac_address("x", r, r.interfaces[0])


def test_targets() -> None:
    assert t.TARGETS == {
        "gateway": "203.0.113.1",
        "web": "198.51.100.10",
        "web_name": "web.lab.test",
        "dns": "198.51.100.53",
        "unreachable": "198.51.100.99",
        "uservm": "192.0.2.100",
        "gateway6": "2001:db8:0:113::1",
        "web6": "2001:db8:0:100::10",
        "dns6": "2001:db8:0:100::53",
        "unreachable6": "2001:db8:0:100::99",
        "uservm6": "2001:db8:0:2::100",
    }
    # Routed (on the internet segment) but nobody has it.
    assert lab_address_owner(t.UNREACHABLE) is None
    assert lab_address_owner(t.UNREACHABLE6) is None
    assert t.UNREACHABLE in t.segment("inet").network
    assert t.UNREACHABLE6 in (t.segment("inet").network6 or IPv6Network("::/128"))
    assert t.DNS_RECORDS["web.lab.test"] == t.WEB
    assert t.DNS_RECORDS6["web.lab.test"] == t.WEB6
    assert all(name.endswith(".lab.test") for name in t.DNS_RECORDS)
    # Every IPv6 name also has its IPv4 address, and each IPv6 target is a lab host's
    # address on the same node as its IPv4 twin (or, for unreachable6, nobody's).
    assert set(t.DNS_RECORDS6) <= set(t.DNS_RECORDS)
    for key in ("gateway", "web", "dns", "uservm"):
        v4, v6 = ip_address(t.TARGETS[key]), ip_address(t.TARGETS[f"{key}6"])
        assert lab_address_owner(v4) is lab_address_owner(v6) is not None, key


def test_dnsmasq_answers_aaaa_and_ipv6_reverse_names() -> None:
    from cloudiag.lab.services import _dnsmasq_argv

    argv = _dnsmasq_argv("/usr/sbin/dnsmasq")
    assert "--listen-address=198.51.100.53,2001:db8:0:100::53" in argv
    assert "--host-record=web.lab.test,198.51.100.10,2001:db8:0:100::10" in argv
    assert "--host-record=uservm.lab.test,192.0.2.100,2001:db8:0:2::100" in argv
    # Authoritative for the /64s' reverse zones: a PTR query is never forwarded.
    assert "--local=/0.0.1.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa/" in argv
    assert "--local=/3.1.1.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa/" in argv
    assert "--local=/2.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa/" in argv
    assert "--no-resolv" in argv


@pytest.mark.parametrize("prefix", ["cdlab", "cdtabcd", "x", "Lab_2", "a234567890123456"])
def test_valid_prefixes(prefix: str) -> None:
    assert t.validate_prefix(prefix) == prefix


@pytest.mark.parametrize(
    "prefix", ["", "cd-lab", "1lab", "lab/x", "..", "lab x", "a2345678901234567", "lab\n"]
)
def test_invalid_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid lab prefix"):
        t.validate_prefix(prefix)


def test_node_lookup() -> None:
    assert t.node("consoleproxy") is t.node("v-3-VM")
    with pytest.raises(KeyError):
        t.node("nope")


# --- the manager's checks that need neither root nor a lab ---------------------------------


def test_check_requirements_names_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudiag.lab import manager, system

    monkeypatch.setattr(manager.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(system, "which", lambda tool: None if tool != "ip" else "/usr/sbin/ip")
    missing = manager.check_requirements()
    assert missing[0].startswith("the lab needs root")
    assert "missing: ping (apt-get install iputils-ping)" in missing
    assert "missing: traceroute (apt-get install traceroute)" in missing
    assert "missing: arping (apt-get install iputils-arping)" in missing
    assert not any("iproute2" in m or "dnsmasq" in m for m in missing)
    assert manager.check_warnings() == [
        "optional: dnsmasq (apt-get install dnsmasq-base); without it the lab has no DNS server"
    ]
    with pytest.raises(manager.LabError, match="lab up needs root: run it as root or with sudo"):
        manager.up("cdtunit")


def test_bad_prefix_is_a_lab_error() -> None:
    from cloudiag.lab import manager

    for call in (manager.up, manager.down, manager.status):
        with pytest.raises(manager.LabError, match="invalid lab prefix"):
            call("bad-prefix")
