"""No orphaned tools: a session's tools die with it, however the session dies.

A session's tool runs in a process group of its own (so that a cancel reaches it and what
it started), which also takes it out of the session's group: a session killed outright
(SIGKILL, its VM's agent gone) would leave it running. So a guardian, forked from the
session before the session has threads, is told each tool's group as the tool starts and
ends. It reads them from a pipe whose writing end only the session holds: when the session
is gone, whatever it died of, the guardian reads the pipe's end and kills every group still
running, then exits.

The kernel's parent-death signal (prctl PR_SET_PDEATHSIG) would do it too, but only set in
the child between fork and exec: a ``preexec_fn``, which takes every tool's start off
CPython's fast path (vfork) and doubled what starting a tool costs (bench/tool_start.py).
"""

from __future__ import annotations

import os
import signal

#: The guardian's process name (``ps`` shows it; its command line is the session's).
NAME = "cloudiag-guard"
#: What ends a session without its say; the guardian waits for the session's end instead.
_IGNORED = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Guardian:
    """The session's side: tells the guardian process each tool's group."""

    def __init__(self, fd: int | None = None) -> None:
        """A guardian told through ``fd``; without one (no fork here), a guardian of none."""
        self._fd = fd

    @classmethod
    def start(cls) -> Guardian:
        """Fork the guardian process. Call it before the session starts a thread."""
        if not hasattr(os, "fork"):
            return cls()
        # Not inherited by the tools (os.pipe's ends are close-on-exec): only the session
        # holds the writing end, so its death alone ends the guardian's reading.
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(write)
                _guard(read)
            finally:
                os._exit(0)
        os.close(read)
        # Here too (the guardian does it as well), so that it is so from now on.
        _own_group(pid)
        return cls(write)

    def started(self, pgid: int) -> None:
        """A tool's group exists (its leader's pid): the guardian kills it if the session dies."""
        self._tell(b"+%d\n" % pgid)

    def ended(self, pgid: int) -> None:
        """That tool has been reaped: its group is no longer the guardian's to kill."""
        self._tell(b"-%d\n" % pgid)

    def _tell(self, line: bytes) -> None:
        if self._fd is None:
            return
        try:
            # Short writes to a pipe are atomic: the jobs' threads need no lock.
            os.write(self._fd, line)
        except OSError:
            pass  # The guardian is gone: there is nobody to tell.


def _own_group(pid: int) -> None:
    """Put the guardian (pid, or 0: this process) in a group of its own: a signal to the
    session's group (an agent stopping a hung session) must not end it with the session."""
    try:
        os.setpgid(pid, 0)
    except OSError:
        pass  # The other side did it first, or the guardian is gone.


def _guard(fd: int) -> None:
    """The guardian process: follow the tools' groups on ``fd``; at its end, kill them."""
    _own_group(0)
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(NAME)
    except OSError:
        pass  # Not Linux: a name is a nicety.
    for signum in _IGNORED:
        signal.signal(signum, signal.SIG_IGN)
    # Holding the session's stdout would hide the session's end from its reader.
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    groups: set[int] = set()
    pending = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line.startswith(b"+"):
                groups.add(int(line[1:]))
            elif line.startswith(b"-"):
                groups.discard(int(line[1:]))
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass  # Gone already.
