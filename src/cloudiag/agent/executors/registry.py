"""Which executor runs a VM: chosen by the type of the VM's access, never by a string."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from cloudiag.agent.executors.base import Executor
from cloudiag.bus.messages import AccessModel

log = logging.getLogger(__name__)


class Executors:
    """The executors an agent has, by the access model each one serves."""

    def __init__(self, by_access: Mapping[type[AccessModel], Executor]) -> None:
        self._by_access = dict(by_access)

    def for_access(self, access: AccessModel) -> Executor | None:
        """The executor for this access, or None when this agent has none for it."""
        return self._by_access.get(type(access))

    def spawned(self) -> int:
        """Processes started in the VMs (tools and sessions), over every executor."""
        return sum(executor.spawned() for executor in self._by_access.values())

    async def close(self) -> None:
        """Close every executor at once; one that fails does not keep the others open."""
        executors = list(self._by_access.values())
        done = await asyncio.gather(*(ex.close() for ex in executors), return_exceptions=True)
        for executor, outcome in zip(executors, done, strict=True):
            if isinstance(outcome, Exception):
                log.warning("closing %s failed: %s", type(executor).__name__, outcome)
