"""What an agent is made of: which source tells it its VMs, which executors run them.

`cloudiag agent` parses its flags and hands them here; this module picks the pieces.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cloudiag.agent.agent import Agent
from cloudiag.agent.executors.netns import NetnsExecutor
from cloudiag.agent.executors.registry import Executors
from cloudiag.agent.executors.ssh import SshExecutor
from cloudiag.agent.sources.base import Source
from cloudiag.agent.sources.cloudstack import CloudStackConfig, open_source
from cloudiag.agent.sources.inventory import (
    Inventory,
    InventoryError,
    InventorySource,
    describe,
)
from cloudiag.agent.sources.lab import LabSource
from cloudiag.bus.access import BusAccess
from cloudiag.bus.messages import NetnsAccess, SshAccess

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentOptions:
    """How `cloudiag agent` was asked to run."""

    nats_url: str
    #: A static inventory file (JSON, or TOML by its suffix); None: the lab's inventory.
    inventory_file: Path | None = None
    #: The lab's inventory as data (what ``cloudiag.lab.inventory`` makes), without a file.
    lab_inventory: Mapping[str, Any] | None = None
    host_id: str | None = None
    host_name: str | None = None
    heartbeat_interval: float = 5.0
    #: Where the agent keeps what must outlive it (results not yet delivered).
    state_dir: Path | None = None
    #: A CloudStack management server whose API says which VMs run on this host.
    cloudstack: CloudStackConfig | None = None
    #: Its credentials and TLS on the bus.
    access: BusAccess = field(default_factory=BusAccess)


def executors(state_dir: Path | None = None) -> Executors:
    """The executors every agent has, by the access they serve.

    ``state_dir`` keeps what outlives the agent: the SSH host keys pinned on first use.
    """
    return Executors({NetnsAccess: NetnsExecutor(), SshAccess: SshExecutor(state_dir)})


def source(options: AgentOptions) -> Source:
    """The source the options name; raises InventoryError when it cannot be read, and
    CloudStackError when CloudStack cannot be asked (called before the agent's loop runs)."""
    if options.cloudstack is not None:
        return asyncio.run(open_source(options.cloudstack))
    if options.inventory_file is not None:
        return InventorySource(options.inventory_file)
    if options.lab_inventory is None:
        raise InventoryError("no inventory: give an inventory file or a lab")
    try:
        return LabSource(Inventory.model_validate(options.lab_inventory))
    except ValidationError as exc:
        raise InventoryError(f"invalid lab inventory: {describe(exc)}") from None


def build(options: AgentOptions) -> Agent:
    """The agent the options describe; raises InventoryError for an unreadable inventory."""
    return Agent(
        options.nats_url,
        source(options),
        executors(options.state_dir),
        host_id=options.host_id,
        host_name=options.host_name,
        heartbeat_interval=options.heartbeat_interval,
        state_dir=options.state_dir,
        access=options.access,
    )


#: Seconds a stopping agent has to end its jobs and say goodbye before it simply exits.
STOP_LIMIT = 10.0


def _exit_now() -> None:
    log.error("the agent did not stop within %g s; exiting", STOP_LIMIT)
    logging.shutdown()
    os._exit(1)


def run(agent: Agent) -> None:
    """Run the agent until SIGINT or SIGTERM."""

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            agent.stop()
            # A stop must not hang on a bus that is gone (its server died with the demo):
            # past the limit the process exits, and the kernel stops its tools with it.
            loop.call_later(STOP_LIMIT, _exit_now)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        await agent.run()

    asyncio.run(main())
