"""Child processes of a server: started so that they die with it, stopped in order."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

#: prctl(2) option: the signal the kernel sends the child when its parent dies.
_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl() -> Any:
    # Resolved in the parent: the child, between fork and exec, should do as little as it can.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that has the kernel send the child `sig` when this process dies.

    The kernel's parent-death signal (Linux prctl PR_SET_PDEATHSIG) holds whatever the
    parent dies of, SIGKILL included, and needs no help from the child: nats-server cannot
    be made to watch a pipe, and a wrapper process to watch one would be one more process
    to orphan. It follows the thread that forked: asyncio forks on the event loop's thread,
    which lives as long as the server. None (nothing to add) off Linux.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = _prctl()
    parent = os.getpid()

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # The parent died between fork and prctl: no signal will come, so go now.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


async def stop_process(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; reaps the child."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
