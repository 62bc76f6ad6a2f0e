"""A warm session's Channel over an SSH exec channel (the ``serve`` process on the VM).

What the session protocol needs of its pipe (``session.Channel``), over asyncssh; and, when
the session ends, why: its exit status and the end of its stderr, or the loss of the SSH
connection under it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncssh

__all__ = ["SshChannel"]

_STDERR_KEPT = 2000
#: How long (checks x interval) a channel closed without a status waits to hear whether its
#: connection was lost: within the session's wait for its cause (session._CAUSE_WAIT).
_LOSS_CHECKS = 10
_LOSS_CHECK_INTERVAL = 0.03


class SshChannel:
    """A warm session's Channel over an SSH exec channel (see ``session.Channel``)."""

    def __init__(
        self, proc: asyncssh.SSHClientProcess[bytes], lost: Callable[[], str | None]
    ) -> None:
        self._proc = proc
        self._lost = lost
        self._asked = False
        self._stderr = asyncio.ensure_future(_tail(proc.stderr))

    async def send(self, line: bytes) -> None:
        """Write one request line; ConnectionError once the channel is gone."""
        if self._proc.stdin.is_closing():
            raise ConnectionResetError("the session's channel is closed")
        self._proc.stdin.write(line)
        await self._proc.stdin.drain()

    async def receive(self) -> bytes:
        """One line of the session's output, b"" at its end."""
        try:
            return await self._proc.stdout.readline()
        except (asyncssh.Error, OSError):
            return b""  # wait_closed() says why.

    def close(self) -> None:
        """EOF to the session (it stops its tools and exits), then close the channel."""
        if self._asked:
            return
        self._asked = True
        with contextlib.suppress(asyncssh.Error, OSError):
            self._proc.stdin.write_eof()
        self._proc.close()

    @property
    def exit_status(self) -> int | None:
        """The remote command's exit status, once it ended (None for a signal or a loss)."""
        return self._proc.exit_status if self._proc.exit_signal is None else None

    def said(self) -> str:
        """The end of what the remote command wrote on stderr so far."""
        return self._stderr.result().strip() if self._stderr.done() else ""

    async def wait_closed(self) -> str:
        """Why the session ended: "" when the channel was closed, else the remote status."""
        await self._proc.wait_closed()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stderr), 1.0)
        if self._asked:
            return ""
        lost = self._lost()
        signal = self._proc.exit_signal
        # Neither a status nor a signal: the VM's sshd went away with the channel, and the
        # connection's loss is heard a moment after the channel's close.
        for _ in range(_LOSS_CHECKS if signal is None and self._proc.exit_status is None else 0):
            if lost is not None:
                break
            await asyncio.sleep(_LOSS_CHECK_INTERVAL)
            lost = self._lost()
        if lost is not None:
            return f"the SSH connection was lost ({lost})"
        if signal is not None:
            status = f"killed by SIG{signal[0]}"
        elif self._proc.exit_status is None:
            status = "its channel was closed by the VM's sshd without an exit status"
        else:
            status = f"exit status {self._proc.exit_status}"
        said = self.said()
        return f"{status}: {said}" if said else status


async def _tail(reader: asyncssh.SSHReader[bytes]) -> str:
    """The end of a remote command's stderr, read all along so it never blocks."""
    kept = b""
    with contextlib.suppress(asyncssh.Error, OSError):
        while chunk := await reader.read(65536):
            kept = (kept + chunk)[-_STDERR_KEPT:]
    return kept.decode("utf-8", errors="replace")
