"""What every executor is: one way of running a validated diagnostic inside a VM.

The agent knows executors only through this protocol (as httpx knows its transports through
``handle_request``): it hands one a VM and a request, receives the output records as they
come, may ask it to stop, and gets an Outcome back. Which executor runs a VM is decided by the
type of the VM's access (see ``registry``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from cloudiag.bus.messages import RunRequest, VmReport

Stream = Literal["stdout", "stderr"]

#: Awaited with each piece of output as it arrives, in order.
OnRecord = Callable[[Stream, str], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    """How one run ended, in CloudStack's terms (the exit code is a string)."""

    stdout: str
    stderr: str
    exitcode: str
    duration: float
    timed_out: bool = False
    truncated: bool = False
    #: Stopped on request (the stop event) before it finished.
    cancelled: bool = False
    #: Why the request was refused where it was to run (no tool ran): the job fails with it.
    refused: str = ""
    #: Why the run failed as a whole (e.g. the VM stopped under it); the output is partial.
    error: str = ""
    #: A getDiagnosticsData job's zip (empty for every other job).
    archive: bytes = b""


class Executor(Protocol):
    """Runs diagnostics in the VMs of one kind of access."""

    async def execute(
        self, vm: VmReport, request: RunRequest, *, on_record: OnRecord, stop: asyncio.Event
    ) -> Outcome:
        """Run ``request`` in ``vm`` within its time limit and return how it ended.

        Setting ``stop`` ends the run early with ``cancelled=True`` and the partial output.
        If the calling task is cancelled, everything the run started is stopped before
        CancelledError propagates.
        """
        ...

    def spawned(self) -> int:
        """How many processes the runs started in the VMs so far: each diagnostic's tool,
        and each warm session it ran over (tests assert that a refusal ran nothing)."""
        ...

    async def close(self) -> None:
        """End what the executor keeps open (warm sessions get EOF, connections close):
        the agent is stopping, after its jobs ended."""
        ...
