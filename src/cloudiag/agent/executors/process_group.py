"""A tool's process group: stopped as a whole, reaped.

A run starts its process in a new session, so one killpg() reaches the script and the tool
it started; nothing outlives a time limit, a cancel or the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

#: Time between SIGTERM and SIGKILL for the process group.
KILL_GRACE = 1.0


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to the process group; one that is gone already is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def kill_group(proc: asyncio.subprocess.Process, grace: float = KILL_GRACE) -> None:
    """SIGTERM the whole process group, SIGKILL it after ``grace`` seconds, reap it."""
    signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        pass
    finally:
        # Also reached on a second cancellation: never leave a straggler behind.
        signal_group(proc.pid, signal.SIGKILL)
    await proc.wait()


async def drain(readers: asyncio.Future[Any]) -> None:
    """Give the output readers a moment to take what a dying process still wrote."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(readers), KILL_GRACE)
