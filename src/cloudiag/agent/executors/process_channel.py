"""A warm session's Channel to a ``serve`` process started on this host.

The netns executor starts ``ip netns exec NS python3 -I -S <zipapp> serve`` and talks to it
through its stdin and stdout. The process has its own process group and dies with the agent
(the kernel's parent-death signal), and closing the channel ends it: EOF first (the session
then stops its tools and exits), SIGKILL for one that does not go (a hung session).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence

from cloudiag.agent.executors.process_group import signal_group
from cloudiag.child_process import die_with_parent

# A record is at most a 16 KiB line of text escaped as JSON: far below this.
_LINE_LIMIT = 1 << 20
# How long a session may take to stop its tools (SIGTERM, SIGKILL 1 s later) and exit.
_EXIT_GRACE = 3.0
_STDERR_KEPT = 2000


class ProcessChannel:
    """A Channel over a child process's stdin and stdout (see ``session.Channel``)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        assert proc.stderr is not None
        self._stderr = asyncio.ensure_future(_tail(proc.stderr))
        self._asked = False
        self._stopper: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, argv: Sequence[str]) -> ProcessChannel:
        """Start ``argv`` (no shell) with pipes; OSError when it cannot be started."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
            # Its own process group: a kill reaches the session wherever the agent is.
            start_new_session=True,
            # If the agent dies (SIGKILL), the session gets SIGTERM and stops its tools:
            # `ip netns exec` execs the interpreter in place, so it keeps the setting.
            preexec_fn=die_with_parent(),
        )
        return cls(proc)

    @property
    def pid(self) -> int:
        """The process's id (also its process group's)."""
        return self._proc.pid

    async def send(self, line: bytes) -> None:
        """Write one request line; ConnectionError once the process has gone."""
        stdin = self._proc.stdin
        assert stdin is not None
        if stdin.is_closing():
            raise ConnectionResetError("the session's input is closed")
        stdin.write(line)
        await stdin.drain()

    async def receive(self) -> bytes:
        """One line of the process's stdout, b"" at its end."""
        assert self._proc.stdout is not None
        return await self._proc.stdout.readline()

    def close(self) -> None:
        """End the process: EOF on its stdin, SIGKILL if it is still there after a grace."""
        if self._asked:
            return
        self._asked = True
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._stopper = asyncio.ensure_future(self._stop())

    async def _stop(self) -> None:
        try:
            await asyncio.wait_for(self._proc.wait(), _EXIT_GRACE)
        except TimeoutError:
            pass
        finally:
            if self._proc.returncode is None:
                signal_group(self._proc.pid, signal.SIGKILL)
        await self._proc.wait()

    async def wait_closed(self) -> str:
        """Why the process ended: "" when the channel was closed, else its status and stderr."""
        code = await self._proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stderr), 1.0)
        if self._asked:
            return ""
        said = self._stderr.result().strip() if self._stderr.done() else ""
        status = f"killed by {_signal_name(-code)}" if code < 0 else f"exit status {code}"
        return f"{status}: {said}" if said else status


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


async def _tail(reader: asyncio.StreamReader) -> str:
    """The end of what the process writes on stderr (read all along so it never blocks)."""
    kept = b""
    while chunk := await reader.read(65536):
        kept = (kept + chunk)[-_STDERR_KEPT:]
    return kept.decode("utf-8", errors="replace")
