"""The server stores a VM's typed access as the agent reported it, and notices a change."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus.messages import AgentReport, NetnsAccess, SshAccess, VmReport
from cloudiag.db.models import VirtualMachine
from cloudiag.services.inventory import apply_report


def _report(access: NetnsAccess | SshAccess) -> AgentReport:
    vm = VmReport(id="vm-r", name="r-1-VM", vm_type="domainrouter", state="Running", access=access)
    return AgentReport(
        host_id="h1",
        host_name="kvm-1",
        zone_id="z1",
        zone_name="zone",
        agent_version="test",
        session="s1",
        vms=[vm],
    )


async def test_the_access_is_stored_as_reported(db: async_sessionmaker[AsyncSession]) -> None:
    async with db.begin() as s:
        await apply_report(s, _report(NetnsAccess(namespace="lab-r-1-VM")))
    async with db() as s:
        row = await s.get(VirtualMachine, "vm-r")
        assert row is not None
        assert row.access == {"kind": "netns", "namespace": "lab-r-1-VM", "mount": None}

    ssh = SshAccess(address="169.254.0.10", key_file="/etc/cloudiag/id_ed25519")
    async with db.begin() as s:
        await apply_report(s, _report(ssh))
    async with db() as s:
        row = await s.get(VirtualMachine, "vm-r")
        assert row is not None
        assert row.access == {
            "kind": "ssh",
            "address": "169.254.0.10",
            "port": 3922,
            "user": "root",
            "key_file": "/etc/cloudiag/id_ed25519",
            "netns": None,
            "script": "cloudiag",
            "host_key": None,
            "known_hosts": None,
            "python": "python3",
        }
