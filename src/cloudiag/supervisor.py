"""Restarting a child process that dies: exponential back-off, every exit and restart logged.

For the parts `cloudiag serve` and `cloudiag demo` run themselves (the private nats-server,
the demo's agent); production runs its processes under systemd instead.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from cloudiag.backoff import Backoff
from cloudiag.child_process import stop_process

log = logging.getLogger(__name__)

#: Starts the child and returns it once it is ready; raises when it cannot.
Spawn = Callable[[], Awaitable[asyncio.subprocess.Process]]


def exit_reason(returncode: int) -> str:
    """How a child ended, from asyncio's return code (negative: the signal that killed it)."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


class Supervisor:
    """Keeps one child running until `stop`: a child that exits unasked is started again."""

    def __init__(
        self, name: str, spawn: Spawn, backoff: Backoff | None = None, grace: float = 5.0
    ) -> None:
        self.name = name
        self.restarts = 0
        self._spawn = spawn
        self._backoff = backoff or Backoff()
        self._grace = grace
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def process(self) -> asyncio.subprocess.Process | None:
        """The child started last (it may have exited, and be about to be restarted)."""
        return self._proc

    async def start(self) -> asyncio.subprocess.Process:
        """The first start: its error is the caller's (a start-up error, not retried)."""
        self._proc = await self._spawn()
        self._task = asyncio.create_task(self._watch(self._proc), name=f"supervise {self.name}")
        return self._proc

    async def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after the grace), reap it, restart no more."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        # This task alone starts and stops the child after the first start: a restart
        # under way when `stop` comes is finished, then stopped, never left running.
        loop = asyncio.get_running_loop()
        try:
            while True:
                started = loop.time()
                if not await self._unless_stopped(proc.wait()):
                    return
                ran_for = loop.time() - started
                delay = self._backoff.delay(ran_for)
                log.warning(
                    "%s %s after %.1f s; restarting it in %.1f s",
                    self.name,
                    exit_reason(proc.returncode or 0),
                    ran_for,
                    delay,
                )
                restarted = await self._restart(delay)
                if restarted is None:
                    return
                proc = restarted
        finally:
            if self._proc is not None:
                await stop_process(self._proc, self._grace)

    async def _restart(self, delay: float) -> asyncio.subprocess.Process | None:
        """The child started again after `delay` (longer after each failed start), or None
        when `stop` came first."""
        while await self._unless_stopped(asyncio.sleep(delay)):
            try:
                proc = await self._spawn()
            except Exception as exc:  # Whatever the start failed of, try again later.
                delay = self._backoff.delay(0.0)
                log.warning(
                    "%s could not be restarted: %s; next try in %.1f s", self.name, exc, delay
                )
                continue
            self._proc = proc
            self.restarts += 1
            log.warning("%s restarted pid=%s restarts=%d", self.name, proc.pid, self.restarts)
            return proc
        return None

    async def _unless_stopped(self, work: Awaitable[object]) -> bool:
        """Wait for `work` or `stop`, whichever comes first; False when it was `stop`."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            task.cancel()
            stopping.cancel()
        return not self._stopping.is_set()
