"""Rows the job engine's unit tests stand on: a zone, its host, system VMs and a caller; and
a runner that starts nothing, for the services that create jobs."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.models import Host, User, VirtualMachine, Zone
from cloudiag.domain import Caller
from cloudiag.jobs.diagnostics_job import DiagnosticsJob


async def add_zone(
    factory: async_sessionmaker[AsyncSession],
    caller: Caller,
    vms: Mapping[str, str],
    host_name: str = "host",
) -> None:
    """Zone zone-1 with host host-1 running `vms` (name -> VM type, the name is the id),
    and the caller's user."""
    async with factory.begin() as s:
        s.add(Zone(id="zone-1", name="z"))
        await s.flush()  # no relationships: the unit of work does not order by foreign key
        s.add(Host(id="host-1", name=host_name, zone_id="zone-1"))
        await s.flush()
        s.add(
            User(
                id=caller.id,
                username=caller.username,
                role="Admin",
                password_hash="x",
                api_key="k",
                secret_key="s",
                account_id=caller.account_id,
                domain_id=caller.domain_id,
            )
        )
        for name, vm_type in vms.items():
            s.add(
                VirtualMachine(
                    id=name, name=name, vm_type=vm_type, host_id="host-1", zone_id="zone-1"
                )
            )


class CommitsOnly:
    """A runner that starts nothing: the jobs stay pending, as running ones do."""

    server_id = "me"

    def submit(self, job: DiagnosticsJob) -> None:
        """Take the job and do nothing with it."""
        return None
