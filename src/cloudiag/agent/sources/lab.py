"""The lab's VMs: a static inventory (handed over by `cloudiag lab`), states read live.

A lab VM is a network namespace, and a stopped one is deleted (`cloudiag lab stop`), so a
VM is Running while its namespace exists. The agent learns the lab only as data: it never
imports ``cloudiag.lab``.
"""

from __future__ import annotations

import asyncio

from cloudiag.agent.executors.netns import namespace_exists
from cloudiag.agent.sources.base import Host, Zone
from cloudiag.agent.sources.inventory import Inventory
from cloudiag.bus.messages import NetnsAccess, VmReport


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
            up = isinstance(vm.access, NetnsAccess) and namespace_exists(vm.access.namespace)
            report = VmReport.model_validate(vm.model_dump())
            vms.append(report.model_copy(update={"state": "Running" if up else "Stopped"}))
        return vms
