"""The sized lab's declaration: defaults equal today's lab, unique names and addresses,
short interface names, one control network per host, further public networks past 253."""

from __future__ import annotations

import json
from collections import Counter
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from cloudiag.lab import topology as t
from cloudiag.lab.inventory import host_id, inventory
from cloudiag.lab.layout import LabSize, layout
from cloudiag.lab.size_record import read_size, write_size

SIZES = [LabSize(), LabSize(2, 2, 2), LabSize(2, 4, 25), LabSize(3, 7, 5), LabSize(1, 20, 25)]
DOCS = [IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
LINK_LOCAL = IPv4Network("169.254.0.0/16")


def test_the_default_size_is_todays_lab() -> None:
    lay = layout()
    assert lay.nodes == t.NODES and lay.segments == t.SEGMENTS
    assert [n.name for n in lay.system_vms()] == ["r-1-VM", "s-2-VM", "v-3-VM"]
    assert [z.name for z in lay.zones] == [t.ZONE_NAME]
    assert [h.node.name for h in lay.hosts] == [t.HYPERVISOR]


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_counts(size: LabSize) -> None:
    lay = layout(size)
    roles = Counter(n.role for n in lay.nodes)
    assert roles["router"] == size.hosts * size.routers
    assert roles["secondarystoragevm"] == roles["consoleproxy"] == size.zones
    assert roles["hypervisor"] == len(lay.hosts) == size.hosts
    assert len(lay.zones) == size.zones
    for h in lay.hosts:
        assert sum(n.role == "router" for n in lay.vms(h.number)) == size.routers
    for z in lay.zones:
        # The zone's SSVM and CPVM are on one of its own hosts.
        ours = [n for n in lay.system_vms() if n.zone == z.number and n.role != "router"]
        assert len(ours) == 2 and all(lay.host(n.host or 0).zone == z.number for n in ours)
    # Every host of a zone is in it; the zones get hosts in turn.
    assert Counter(h.zone for h in lay.hosts) == Counter(
        (h - 1) % size.zones + 1 for h in range(1, size.hosts + 1)
    )


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_names_are_cloudstack_like_unique_and_short(size: LabSize) -> None:
    lay = layout(size)
    names = [n.name for n in lay.nodes]
    assert len(names) == len(set(names))
    ids = [int(n.name.split("-")[1]) for n in lay.nodes if n.zone is not None and "-" in n.name]
    assert len(ids) == len(set(ids))
    letters = {"router": "r", "secondarystoragevm": "s", "consoleproxy": "v", "uservm": "i"}
    for n in lay.vms():
        letter, number, tail = n.name.split("-")
        assert (letter, tail) == (letters[n.role], "VM") and number.isdigit()
    ports = [t.port_name(n, i) for n in lay.nodes for i in n.interfaces]
    bridges = [s.name for s in lay.segments]
    assert len(ports) == len(set(ports)) and len(bridges) == len(set(bridges))
    # IFNAMSIZ: 15 characters, in the switch namespace (ports and bridges) and in the VMs.
    assert all(len(x) <= 15 for x in (*ports, *bridges))
    assert all(len(i.name) <= 15 for n in lay.nodes for i in n.interfaces)
    assert not set(ports) & set(bridges)
    assert {i.switch_bridge for n in lay.nodes for i in n.interfaces} == set(bridges)
    macs = [t.mac_address("p", n, i) for n in lay.nodes for i in n.interfaces]
    macs += [t.port_mac("p", n, i) for n in lay.nodes for i in n.interfaces]
    macs += [t.bridge_mac("p", s) for s in lay.segments]
    assert len(macs) == len(set(macs))


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_addresses(size: LabSize) -> None:
    lay = layout(size)
    for n in lay.nodes:
        for i in n.interfaces:
            assert i.address.ip in LINK_LOCAL or any(i.address.ip in d for d in DOCS), i
            assert i.address6 is None or t.in_lab(i.address6.ip)
    # Public addresses are unique on each public bridge, whose gateway is its upstream's.
    publics = [s.name for s in lay.segments if s.network_kind == "public"]
    assert publics == ["public", *(f"public{k}" for k in range(2, len(publics) + 1))]
    for bridge in publics:
        on = [i for n in lay.nodes for i in n.interfaces if i.switch_bridge == bridge]
        assert len(on) <= 254
        assert len({i.address.ip for i in on}) == len({i.address6 for i in on}) == len(on)
        assert [i.address.ip for i in on].count(t.GATEWAY) == 1
        # Behind it, an "internet" of its own: upstream, web and DNS at the same addresses.
        inet = bridge.replace("public", "inet")
        behind = {n.role for n in lay.nodes for i in n.interfaces if i.switch_bridge == inet}
        assert behind == {"upstream", "web", "dns"}
    # Control addresses: unique (one known_hosts for all), every host's cloud0 169.254.0.1.
    control = [
        i.address.ip
        for n in lay.nodes
        for i in n.interfaces
        if i.segment == "control" and n.role != "hypervisor"
    ]
    assert len(control) == len(set(control)) and t.HYPERVISOR_ADDRESS not in control
    mgmt = [i.address.ip for n in lay.nodes for i in n.interfaces if i.segment == "mgmt"]
    assert not set(mgmt) & set(control) and len(mgmt) == len(set(mgmt))
    for h in lay.hosts:
        cloud0 = h.node.interface("cloud0")
        assert cloud0 is not None and cloud0.address.ip == t.HYPERVISOR_ADDRESS
        assert not h.node.routes
        # A host's control bridge holds its own VMs' control NICs and nothing else.
        on_it = {
            n.name
            for n in lay.nodes
            for i in n.interfaces
            if i.switch_bridge == cloud0.switch_bridge
        }
        assert on_it == {h.node.name, *(n.name for n in lay.system_vms(h.number))}
    # Each router has a guest bridge of its own (the same range: isolated networks overlap).
    guests = [n.interfaces[0] for n in lay.nodes if n.role == "router"]
    assert len({g.switch_bridge for g in guests}) == len(guests)
    assert {g.address.ip for g in guests} == {t.ROUTER_GUEST}


def test_a_second_public_network_only_past_253_public_nics() -> None:
    # 3 + 250 public NICs fill the first one; one more opens the second.
    full, over = LabSize(1, 10, 25), LabSize(1, 2, 126)
    assert len(layout(full).system_vms()) == 252
    assert [s.name for s in layout(full).segments if s.network_kind == "public"] == ["public"]
    assert len(layout(over).system_vms()) == 254
    assert [s.name for s in layout(over).segments if s.network_kind == "public"] == [
        "public",
        "public2",
    ]
    lay = layout(LabSize(1, 20, 25))
    assert len(lay.system_vms()) == 502
    services = [n.service.stem for n in lay.nodes if n.service]
    assert services == ["web", "dns", "web2", "dns2"]
    with pytest.raises(ValueError, match="VM ids"):
        layout(LabSize(1, 100, 70))
    with pytest.raises(ValueError, match="hosts"):
        layout(LabSize(3, 2, 1))
    with pytest.raises(ValueError, match="at least 1"):
        layout(LabSize(1, 1, 0))


def test_size_record(tmp_path: Path) -> None:
    assert read_size(tmp_path) == LabSize()
    write_size(tmp_path / "lab", LabSize(2, 3, 4))
    assert read_size(tmp_path / "lab") == LabSize(2, 3, 4)
    (tmp_path / "lab" / "size.json").write_text(json.dumps({"zones": 0}))
    assert read_size(tmp_path / "lab") == LabSize()


def test_one_inventory_per_host(tmp_path: Path) -> None:
    write_size(tmp_path, LabSize(2, 3, 2))
    seen: set[str] = set()
    hosts = set()
    for number in (1, 2, 3):
        inv = inventory("cdq", "ssh", tmp_path, host=number)
        names = {vm["name"] for vm in inv["vms"]}
        assert not names & seen
        seen |= names
        hosts.add(inv["host"]["id"])
        assert inv["host"]["id"] == host_id("cdq", number)
        assert inv["host"]["name"] == f"cdq-{t.hypervisor_name(number)}"
        for vm in inv["vms"]:
            if vm["access"]["kind"] == "ssh":
                assert vm["access"]["netns"] == f"cdq-{t.hypervisor_name(number)}"
    assert len(hosts) == 3
    assert seen == {n.name for n in layout(LabSize(2, 3, 2)).vms()}
    zones = {inventory("cdq", state_dir=tmp_path, host=n)["zone"]["id"] for n in (1, 2, 3)}
    assert len(zones) == 2
    # The default lab's inventory is what it always was: one host, no name of its own.
    plain = inventory("cdq", state_dir=tmp_path / "none")
    assert plain["host"] == {"id": t.stable_uuid("cdq", "host")}
    assert plain["zone"] == {"id": t.zone_uuid("cdq"), "name": t.ZONE_NAME}
    with pytest.raises(ValueError, match="no host 4"):
        inventory("cdq", state_dir=tmp_path, host=4)
