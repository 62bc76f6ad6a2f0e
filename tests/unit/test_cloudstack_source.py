"""The CloudStack source's rules, one layer (its API against a second cloudiag server is in
tests/integration/test_cloudstack_source.py): which address reaches a VM on which
hypervisor, and a refresh that fails keeps the last good list."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from cloudiag.agent.sources.base import Host, Zone
from cloudiag.agent.sources.cloudstack import (
    CloudStackConfig,
    CloudStackHost,
    CloudStackSource,
    control_address,
    report,
)
from cloudiag.bus.embedded import free_port
from cloudiag.bus.messages import SshAccess
from cloudiag.domain import VmType

VM = {
    "id": "9f1c6a54-0c1e-4c39-9d6c-3c5f0c3c8b21",
    "name": "r-7-VM",
    "state": "Running",
    "linklocalip": "169.254.3.7",
    "privateip": "192.0.2.17",
    "publicip": "203.0.113.7",
    "hostid": "h1",
}


def _config(**changes: object) -> CloudStackConfig:
    base = CloudStackConfig(url="http://127.0.0.1:1", api_key="k", secret_key="s", host="h1")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("hypervisor", "vm", "address"),
    [
        ("KVM", VM, "169.254.3.7"),  # Over cloud0.
        ("VMware", VM, "192.0.2.17"),  # Over the management network.
        ("vmware", VM, "192.0.2.17"),
        ("XenServer", VM, "169.254.3.7"),
        ("KVM", {**VM, "linklocalip": None}, "192.0.2.17"),  # The other when one is missing.
        ("VMware", {**VM, "privateip": ""}, "169.254.3.7"),
        ("KVM", {**VM, "linklocalip": None, "privateip": None}, None),
    ],
)
def test_the_control_address_by_hypervisor(
    hypervisor: str, vm: dict[str, object], address: str | None
) -> None:
    assert control_address(vm, hypervisor) == address


def test_a_report_reaches_the_vm_as_cloudstack_does() -> None:
    vm = report(
        {**VM, "state": "Starting"}, VmType.DOMAIN_ROUTER, "KVM", _config(script="cloudstack")
    )
    assert vm is not None
    assert vm.state == "Stopped"  # Not Running: not diagnosable yet.
    assert vm.addresses == {"public": "203.0.113.7", "control": "169.254.3.7"}
    assert vm.access == SshAccess(
        address="169.254.3.7",
        port=3922,
        key_file="/root/.ssh/id_rsa.cloud",
        script="cloudstack",
    )
    assert report({**VM, "linklocalip": None, "privateip": None}, VmType.DOMAIN_ROUTER, "KVM",
                  _config()) is None  # fmt: skip
    # A control network in another namespace of the host: the connection is opened there.
    inside = report(VM, VmType.DOMAIN_ROUTER, "KVM", _config(netns="cdlab-host"))
    assert inside is not None and isinstance(inside.access, SshAccess)
    assert inside.access.netns == "cdlab-host"


async def test_a_failed_refresh_keeps_the_last_good_list_and_waits_its_interval() -> None:
    first = report(VM, VmType.DOMAIN_ROUTER, "KVM", _config())
    assert first is not None
    # Nothing listens there: every read fails.
    config = _config(url=f"http://127.0.0.1:{free_port()}", refresh_interval=0.0, timeout=2.0)
    host = CloudStackHost(Zone(id="z", name="z"), Host(id="h1", name="h1"), "KVM")
    source = CloudStackSource(config, host, [first])
    try:
        assert await source.vms() == [first]  # Answered at once; a read started.
        reading = source._refresh
        assert reading is not None
        await asyncio.wait_for(reading, 10)
        assert await source.vms() == [first]
        assert source._refresh is not reading  # Stale again (interval 0): a new read.
    finally:
        await source.close()
