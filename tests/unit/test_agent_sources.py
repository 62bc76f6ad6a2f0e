"""Where the agent learns its VMs: a static inventory file (JSON or TOML), and the lab's
inventory with each VM's state read from its namespace."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from cloudiag.agent import wiring
from cloudiag.agent.executors import netns
from cloudiag.agent.sources.inventory import InventoryError, InventorySource, load
from cloudiag.agent.sources.lab import LabSource
from cloudiag.bus.messages import NetnsAccess, SshAccess
from cloudiag.lab import manager as lab_manager
from cloudiag.lab.inventory import inventory as lab_inventory
from cloudiag.lab.layout import LabSize
from cloudiag.lab.size_record import write_size

TOML = """
[zone]
id = "zone-1"
name = "zone one"

[host]
id = "host-1"
name = "kvm-1"

[[vms]]
id = "vm-r"
name = "r-4-VM"
vm_type = "domainrouter"
addresses = { public = "203.0.113.10", control = "169.254.3.4" }
access = { kind = "netns", namespace = "r-4-VM" }

[[vms]]
id = "vm-s"
name = "s-5-VM"
vm_type = "secondarystoragevm"
state = "Stopped"
access = { kind = "ssh", address = "169.254.3.5", key_file = "/etc/cloudiag/id_ed25519" }
"""


def _json_of_toml() -> str:
    import tomllib

    return json.dumps(tomllib.loads(TOML))


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_an_inventory_file_declares_zone_host_and_vms(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"inventory{suffix}"
    path.write_text(TOML if suffix == ".toml" else _json_of_toml())
    inv = load(path)
    assert (inv.zone.id, inv.zone.name, inv.host.id, inv.host.name) == (
        "zone-1",
        "zone one",
        "host-1",
        "kvm-1",
    )
    router, ssvm = inv.vms
    assert router.state == "Running"  # The default.
    assert router.access == NetnsAccess(namespace="r-4-VM")
    assert router.addresses == {"public": "203.0.113.10", "control": "169.254.3.4"}
    assert ssvm.state == "Stopped"
    assert ssvm.access == SshAccess(
        address="169.254.3.5", port=3922, user="root", key_file="/etc/cloudiag/id_ed25519"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[zone]\nid = 'z'\n", "host"),
        (TOML.replace('vm_type = "domainrouter"', 'vm_tpye = "domainrouter"'), "vm_tpye"),
        (TOML.replace('kind = "netns"', 'kind = "telnet"'), "telnet"),
        (TOML.replace('vm_type = "domainrouter"', 'vm_type = "router"'), "vm_type"),
        ("zone = [", "not TOML"),
    ],
    ids=["no-host", "typo", "unknown-access", "bad-vm-type", "not-toml"],
)
def test_a_bad_inventory_is_refused_with_its_reason(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(text)
    with pytest.raises(InventoryError, match=reason) as caught:
        load(path)
    assert str(path) in str(caught.value)


def test_a_missing_inventory_says_which_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"cannot read the inventory .*nowhere\.json"):
        wiring.source(wiring.AgentOptions("nats://x", inventory_file=tmp_path / "nowhere.json"))


async def test_the_inventory_is_read_again_and_a_broken_edit_keeps_the_last(
    tmp_path: Path,
) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(TOML)
    source = InventorySource(path)
    assert [vm.state for vm in await source.vms()] == ["Running", "Stopped"]
    path.write_text(TOML.replace('state = "Stopped"', 'state = "Running"'))
    assert [vm.state for vm in await source.vms()] == ["Running", "Running"]
    path.write_text("[[vms]")
    assert [vm.state for vm in await source.vms()] == ["Running", "Running"]


def _lab_source(prefix: str) -> LabSource:
    source = wiring.source(wiring.AgentOptions("nats://x", lab_inventory=lab_inventory(prefix)))
    assert isinstance(source, LabSource)
    return source


async def test_a_lab_vm_runs_while_its_namespace_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(netns, "NETNS_DIR", str(tmp_path))
    source = _lab_source("cdq")
    (tmp_path / "cdq-r-1-VM").touch()
    (tmp_path / "cdq-i-4-VM").touch()
    states = {vm.name: vm.state for vm in await source.vms()}
    assert states == {
        "r-1-VM": "Running",
        "s-2-VM": "Stopped",
        "v-3-VM": "Stopped",
        "i-4-VM": "Running",
    }


async def test_the_lab_source_reports_the_vms_the_lab_status_shows() -> None:
    """The ids, names, types and namespaces the agent reported when it read `lab status`
    itself (a prefix with no lab up: the status is read without root)."""
    prefix = "cdq" + secrets.token_hex(2)
    status = lab_manager.status(prefix)
    expected = {
        ns.uuid: (ns.name, ns.systemvmtype or "uservm", ns.namespace)
        for ns in status.namespaces
        if ns.role in ("router", "secondarystoragevm", "consoleproxy", "uservm")
    }
    source = _lab_source(prefix)
    vms = await source.vms()
    reported = {}
    for vm in vms:
        assert isinstance(vm.access, NetnsAccess)
        reported[vm.id] = (vm.name, vm.vm_type, vm.access.namespace)
    assert reported == expected
    assert (source.zone.id, source.zone.name) == (status.zone.uuid, status.zone.name)
    router = next(vm for vm in vms if vm.name == "r-1-VM")
    assert router.addresses == {
        "public": "203.0.113.10",
        "control": "169.254.0.10",
        "guest": "192.0.2.1",
    }


def test_a_bad_lab_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid lab prefix"):
        lab_inventory("no-dash")


async def test_a_vm_over_ssh_on_another_lab_host_runs_while_its_namespace_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Host 2's VMs are reached from cdq-host2: their namespaces are still cdq-<name>.
    monkeypatch.setattr(netns, "NETNS_DIR", str(tmp_path / "netns"))
    (tmp_path / "netns").mkdir()
    write_size(tmp_path / "state", LabSize(2, 2, 1))
    inv = lab_inventory("cdq", "ssh", tmp_path / "state", host=2)
    source = wiring.source(wiring.AgentOptions("nats://x", lab_inventory=inv))
    assert {vm["access"]["netns"] for vm in inv["vms"]} == {"cdq-host2"}
    (tmp_path / "netns" / "cdq-s-5-VM").touch()
    states = {vm.name: vm.state for vm in await source.vms()}
    assert states == {"s-5-VM": "Running", "v-6-VM": "Stopped", "r-7-VM": "Stopped"}
