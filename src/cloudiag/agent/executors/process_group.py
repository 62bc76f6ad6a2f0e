"""A process group, signalled as a whole.

A warm session runs in a process group of its own, and gives each tool one of its own, so one
killpg() reaches a session or a tool and whatever it started; nothing outlives a time limit,
a cancel or the agent.
"""

from __future__ import annotations

import contextlib
import os

#: Time between SIGTERM and SIGKILL for a tool's process group (the session's own grace).
KILL_GRACE = 1.0


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to the process group; one that is gone already is no error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
