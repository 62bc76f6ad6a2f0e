"""The agent's side of a warm session: one ``serve`` process per VM, many jobs over it.

A ``WarmSession`` speaks the protocol of ``cloudiag/sysvm/session.py`` over a ``Channel`` (a
subprocess's pipes for the netns executor, an SSH channel for the SSH one): it sends each
job's request, routes the records that come back by their job id, and fails every job it is
running at once, with a ``SessionError`` naming the VM and the cause, when the session ends
under them. ``session_pool`` keeps one session per VM.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from cloudiag.agent.executors.process_group import KILL_GRACE
from cloudiag.sysvm.framing import Record, decode_line, encode_line, record_of

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Awaited with each record of a job but its exit record ("started", "out", "err",
#: "refused"), in order.
OnSessionRecord = Callable[[Record], Awaitable[None]]

#: How long after a cancel a job's exit record may take: the session gives the tool
#: KILL_GRACE after SIGTERM before SIGKILL; a session slower than that is hung.
CANCEL_GRACE = KILL_GRACE + 2.0
#: Jobs at once in one VM's session (its ``serve --max-jobs``, and the pool's bound): above
#: what one agent runs at once (agent.MAX_JOBS), so that a session never makes a diagnostic
#: wait for another, whichever executor opened it.
SESSION_MAX_JOBS = 256
# How long the cause of a session's end may take to be known once its output ended.
_CAUSE_WAIT = 1.0


class Channel(Protocol):
    """A byte pipe to one `serve` process: a subprocess's stdin/stdout, an SSH channel."""

    async def send(self, line: bytes) -> None:
        """Write one request line (its newline included)."""
        ...

    async def receive(self) -> bytes:
        """One line (its newline included); b"" at EOF."""
        ...

    def close(self) -> None:
        """End the serve process (EOF, then a kill)."""
        ...

    async def wait_closed(self) -> str:
        """Why it ended ("" when it was asked to)."""
        ...


class SessionError(Exception):
    """The session cannot be used: ``str(exc)`` is the errortext."""


class SessionStale(SessionError):
    """The session's version is not the expected one (reinstall, reopen)."""


class NotSent(SessionError):
    """The session was gone before the job's request reached it: another one may run it."""


_STOP = object()


class WarmSession:
    """One ``serve`` process and the jobs running over it."""

    def __init__(self, channel: Channel, *, vm_name: str, version: str, max_jobs: int) -> None:
        self._channel = channel
        self.vm_name = vm_name
        self.version = version
        self.max_jobs = max_jobs
        self._slots = asyncio.Semaphore(max_jobs)
        self._jobs: dict[str, asyncio.Queue[object]] = {}
        self._pongs: dict[int, asyncio.Future[bool]] = {}
        self._pings = 0
        self._started = 0
        #: Why the session ended, once it has.
        self._failure: str | None = None
        self._reader = detached(self._read())

    @classmethod
    async def open(
        cls, channel: Channel, *, vm_name: str, version: str | None, ready_timeout: float = 10.0
    ) -> WarmSession:
        """The session on ``channel`` once it said it is ready.

        SessionError when it does not (the channel is closed then); SessionStale when it
        runs another version than ``version`` (None: any).
        """
        why = ""
        ready: dict[str, object] | None = None
        try:
            async with asyncio.timeout(ready_timeout):
                line = await channel.receive()
            ready = decode_line(line) if line else None
            if not line:
                why = await _cause(channel) or "it ended before it was ready"
            elif ready is None or ready.get("s") != "ready":
                why = f"its first line is not the ready line: {line[:200]!r}"
        except TimeoutError:
            why = f"it did not say it was ready within {ready_timeout:g} s"
        except Exception as exc:  # An SSH channel has errors of its own.
            why = str(exc) or type(exc).__name__
        if ready is None or why:
            channel.close()
            raise SessionError(f"cannot open a session to {vm_name}: {why}")
        found, max_jobs = ready.get("version"), ready.get("max_jobs")
        if not isinstance(found, str) or not isinstance(max_jobs, int) or max_jobs < 1:
            channel.close()
            raise SessionError(f"cannot open a session to {vm_name}: a malformed ready line")
        if version is not None and found != version:
            channel.close()
            raise SessionStale(f"the session to {vm_name} runs version {found}, not {version}")
        return cls(channel, vm_name=vm_name, version=found, max_jobs=max_jobs)

    @property
    def alive(self) -> bool:
        """Whether the session can take jobs."""
        return self._failure is None

    def spawned(self) -> int:
        """Tools started over this session (its "started" records)."""
        return self._started

    async def run(
        self, job_id: str, args: list[str], *, on_record: OnSessionRecord, stop: asyncio.Event
    ) -> int:
        """Run one job (``args``: the one-shot script's words) and return its exit code.

        Setting ``stop`` cancels it on the VM; its records go on until its exit record,
        which must come within CANCEL_GRACE or the session is taken for hung. Raises
        SessionError when the session ends before the job did. If the calling task is
        cancelled or ``on_record`` fails, the job is cancelled on the VM and its exit record
        awaited (within CANCEL_GRACE) before the exception propagates.
        """
        if job_id in self._jobs:
            raise ValueError(f"job {job_id} is already running on the session to {self.vm_name}")
        async with self._slots:
            if self._failure is not None:
                raise NotSent(self._ended(self._failure))
            queue: asyncio.Queue[object] = asyncio.Queue()
            self._jobs[job_id] = queue
            try:
                try:
                    await self._channel.send(encode_line({"op": "run", "j": job_id, "args": args}))
                except Exception as exc:  # An SSH channel has errors of its own.
                    self._fail(f"it cannot be written to ({exc or type(exc).__name__})")
                    raise NotSent(self._ended(self._failure or "")) from None
                return await self._follow(job_id, queue, on_record, stop)
            finally:
                del self._jobs[job_id]

    async def _follow(
        self,
        job_id: str,
        queue: asyncio.Queue[object],
        on_record: OnSessionRecord,
        stop: asyncio.Event,
    ) -> int:
        """The job's records, until its exit record."""
        loop = asyncio.get_running_loop()
        stopper = asyncio.ensure_future(stop.wait())

        def on_stop(task: asyncio.Future[Any]) -> None:
            if not task.cancelled():
                queue.put_nowait(_STOP)

        stopper.add_done_callback(on_stop)
        deadline: float | None = None
        try:
            while True:
                item = await self._next(queue, deadline, job_id)
                if item is _STOP:
                    if deadline is None:
                        deadline = loop.time() + CANCEL_GRACE
                        await self._cancel(job_id)
                    continue
                if isinstance(item, SessionError):
                    raise item
                assert isinstance(item, Record)
                if item.stream == "exit":
                    return item.code if item.code is not None else -1
                await on_record(item)
        except BaseException as exc:
            if not isinstance(exc, SessionError) and self._failure is None:
                await self._abandon(job_id, queue)
            raise
        finally:
            stopper.cancel()

    async def _next(self, queue: asyncio.Queue[object], deadline: float | None, job: str) -> object:
        """The job's next item; once the job was cancelled, within its deadline."""
        if deadline is None:
            return await queue.get()
        try:
            remaining = deadline - asyncio.get_running_loop().time()
            return await asyncio.wait_for(queue.get(), max(remaining, 0.0))
        except TimeoutError:
            self._fail(f"it did not stop job {job} within {CANCEL_GRACE:g} s of the cancel")
            # _fail() queued the error for every job, unless the session had failed before.
            if queue.empty():
                return SessionError(self._ended(self._failure or "it hung"))
            return queue.get_nowait()

    async def _cancel(self, job_id: str) -> None:
        try:
            await self._channel.send(encode_line({"op": "cancel", "j": job_id}))
        except Exception as exc:  # An SSH channel has errors of its own.
            self._fail(f"it cannot be written to ({exc or type(exc).__name__})")

    async def _abandon(self, job_id: str, queue: asyncio.Queue[object]) -> None:
        """Cancel a job nobody follows any more and wait (bounded) for its exit record."""
        await self._cancel(job_id)
        deadline = asyncio.get_running_loop().time() + CANCEL_GRACE
        while self._failure is None:
            item = await self._next(queue, deadline, job_id)
            if isinstance(item, Record) and item.stream == "exit":
                return

    async def ping(self, timeout: float) -> bool:
        """Whether the session answers a ping within ``timeout``; one that does not is
        taken for hung and closed (its jobs fail)."""
        if self._failure is not None:
            return False
        self._pings += 1
        number = self._pings
        answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pongs[number] = answered
        try:
            async with asyncio.timeout(timeout):
                await self._channel.send(encode_line({"op": "ping", "n": number}))
                return await answered
        except TimeoutError:
            self._fail(f"it did not answer a ping within {timeout:g} s")
        except Exception as exc:  # An SSH channel has errors of its own.
            self._fail(f"it cannot be written to ({exc or type(exc).__name__})")
        finally:
            self._pongs.pop(number, None)
        return False

    async def close(self) -> None:
        """End the session; jobs still running over it fail."""
        self._fail("the session was closed")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, CANCEL_GRACE)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._channel.wait_closed(), CANCEL_GRACE)

    def _ended(self, why: str) -> str:
        return f"the session to {self.vm_name} ended during the job: {why}"

    def _fail(self, why: str) -> None:
        """The session is dead: close it and fail every job it runs, now."""
        if self._failure is not None:
            return
        self._failure = why
        if why != "the session was closed":
            log.warning("the session to %s ended: %s", self.vm_name, why)
        self._channel.close()
        error = SessionError(self._ended(why))
        for queue in self._jobs.values():
            queue.put_nowait(error)
        for answered in self._pongs.values():
            if not answered.done():
                answered.set_result(False)

    async def _read(self) -> None:
        """Route every line the session writes until its output ends."""
        why = ""
        try:
            while line := await self._channel.receive():
                self._route(line)
        except Exception as exc:
            why = f"its output cannot be read ({exc or type(exc).__name__})"
        if self._failure is None:
            self._fail(why or await _cause(self._channel) or "its output ended")

    def _route(self, line: bytes) -> None:
        obj = decode_line(line)
        if obj is None:
            log.warning("the session to %s wrote a line that is not JSON: %r", self.vm_name, line)
            return
        kind, job = obj.get("s"), obj.get("j")
        if kind == "pong":
            number = obj.get("n")
            answered = self._pongs.get(number) if isinstance(number, int) else None
            if answered is not None and not answered.done():
                answered.set_result(True)
            return
        queue = self._jobs.get(job) if isinstance(job, str) else None
        if kind == "error":
            log.warning("the session to %s refused a request: %s", self.vm_name, obj.get("d"))
            if queue is not None:
                # Our request was not run: the job ends, refused with the session's reason.
                queue.put_nowait(Record("refused", str(obj.get("d")), None, job))
                queue.put_nowait(Record("exit", "", -1, job))
            return
        record = record_of(obj)
        if record is None or queue is None:
            return
        if record.stream == "started":
            self._started += 1
        queue.put_nowait(record)


def detached(work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task of the session rather than of the job that happened to start it: its logs
    carry no job id (a fresh context)."""
    return asyncio.get_running_loop().create_task(work, context=contextvars.Context())


async def _cause(channel: Channel) -> str:
    """Why the channel ended, if it says so soon."""
    try:
        return await asyncio.wait_for(channel.wait_closed(), _CAUSE_WAIT)
    except (TimeoutError, OSError):
        return ""
