"""No orphaned tools: a session's tool dies with the thread that started it.

A session's tool runs in a process group of its own (so that a cancel reaches it and what
it started), which also takes it out of the session's group: a session killed outright
(SIGKILL, its VM's agent gone) would leave it running. The kernel's parent-death signal
(Linux prctl PR_SET_PDEATHSIG) ends it then, whatever the session died of.
"""

from __future__ import annotations

import os
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when its parent thread ends.

    None where the kernel has no such signal or ctypes cannot reach libc (the tool then runs
    without it). The function is looked up here, in the parent: the child, between fork and
    exec, does as little as it can.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        # The session died between fork and prctl: no signal will come, so go now.
        if os.getppid() != parent:
            os._exit(1)

    return preexec
