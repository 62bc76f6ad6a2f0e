"""The lab's VMs: a static inventory (handed over by `cloudiag lab`), states read live.

A lab VM is a network namespace, and a stopped one is deleted (`cloudiag lab stop`), so a
VM is Running while its namespace exists. A VM reached over SSH is a namespace all the same:
the lab names it ``<prefix>-<name>``, beside the hypervisor namespace its access opens
sockets in: ``<prefix>-host``, or ``<prefix>-host2``… in a lab of several hosts. The agent
learns the lab only as data: it never imports ``cloudiag.lab``.
"""

from __future__ import annotations

import asyncio
import re

from cloudiag.agent.executors.netns import namespace_exists
from cloudiag.agent.sources.base import Host, Zone
from cloudiag.agent.sources.inventory import DeclaredVm, Inventory
from cloudiag.bus.messages import NetnsAccess, SshAccess, VmReport

#: The lab's hypervisor namespaces are ``<prefix>-host``, ``<prefix>-host2``…
_HYPERVISOR = re.compile(r"(?P<prefix>.+)-host[0-9]*")


def _namespace(vm: DeclaredVm) -> str | None:
    """The network namespace that is this lab VM, or None when the access names none."""
    if isinstance(vm.access, NetnsAccess):
        return vm.access.namespace
    netns = getattr(vm.access, "netns", None) if isinstance(vm.access, SshAccess) else None
    found = _HYPERVISOR.fullmatch(netns) if isinstance(netns, str) else None
    return f"{found['prefix']}-{vm.name}" if found else None


class LabSource:
    """The VMs of a lab's inventory, each Running or Stopped as its namespace is."""

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory

    @property
    def zone(self) -> Zone:
        """The lab's zone."""
        return self._inventory.zone

    @property
    def host(self) -> Host:
        """The host that runs the lab."""
        return self._inventory.host

    async def vms(self) -> list[VmReport]:
        """Every VM of the lab, in its state now (one stat per VM, off the loop)."""
        return await asyncio.to_thread(self._read)

    def _read(self) -> list[VmReport]:
        vms: list[VmReport] = []
        for vm in self._inventory.vms:
            ns = _namespace(vm)
            up = ns is not None and namespace_exists(ns)
            report = VmReport.model_validate(vm.model_dump())
            vms.append(report.model_copy(update={"state": "Running" if up else "Stopped"}))
        return vms
