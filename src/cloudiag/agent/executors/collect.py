"""What a run printed, as the job will show it: both streams within their limit, our notes.

Every executor that runs our system-VM package collects the records of one job here: the
tool's output is kept up to ``max_output`` bytes per stream (the rest is read and dropped,
so a tool never blocks on a full pipe) and forwarded live; cloudiag's own ``[cloudiag]``
notes are always kept; a getDiagnosticsData zip's pieces ("zip" records) are put together
apart from the output, up to their cap. ``run_limited`` runs a job over a warm session
within the agent's wall clock: at the time limit or on a stop, the job is cancelled on the VM.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cloudiag.agent.executors.base import OnRecord, Stream
from cloudiag.agent.executors.session import OnSessionRecord, SessionError
from cloudiag.bus.messages import RunRequest
from cloudiag.sysvm import collect
from cloudiag.sysvm.errors import DiagnosticsInputError
from cloudiag.sysvm.framing import Record

#: Runs one job over a session: called with where its records go and the event that
#: cancels it; returns its exit code (SessionPool.run with everything else bound).
SessionJob = Callable[[OnSessionRecord, asyncio.Event], Awaitable[int]]


class Collector:
    """Accumulates both streams up to a byte limit each and forwards kept text live."""

    def __init__(self, max_output: int, on_line: OnRecord | None, max_archive: int = 0) -> None:
        self.max_output = max_output
        #: The most zip bytes taken (0: a job that sends no zip).
        self.max_archive = max_archive
        self._archive = bytearray()
        #: Why the zip is unusable (too big, not base64), else "".
        self.archive_error = ""
        self._on_line = on_line
        self._parts: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._size = {"stdout": 0, "stderr": 0}
        self.truncated = False
        #: Why the VM refused the request (no tool ran), else "".
        self.refused = ""

    async def add(self, stream: Stream, text: str) -> None:
        """The tool's output: kept and forwarded while within the limit."""
        if not text:
            return
        room = self.max_output - self._size[stream]
        data = text.encode("utf-8")
        if len(data) > room:
            self.truncated = True
            if room <= 0:
                # Keep reading (so the tool never blocks on a full pipe) but drop it.
                return
            text = data[:room].decode("utf-8", errors="ignore")
            data = text.encode("utf-8")
        self._size[stream] += len(data)
        self._parts[stream].append(text)
        if self._on_line is not None:
            await self._on_line(stream, text)

    async def note(self, text: str) -> None:
        """A message of cloudiag itself: always kept, even past the limit."""
        self._parts["stderr"].append(text)
        if self._on_line is not None:
            await self._on_line("stderr", text)

    async def record(self, record: Record) -> None:
        """One framed record of the job (its exit record is the caller's business)."""
        if record.stream == "refused":
            self.refused = record.data
            await self.note(f"[cloudiag] refused on the VM: {record.data}\n")
        elif record.stream in ("out", "err"):
            await self.add("stdout" if record.stream == "out" else "stderr", record.data)
        elif record.stream == "zip":
            self._take_piece(record.data)

    def _take_piece(self, data: str) -> None:
        if self.archive_error:
            return
        try:
            piece = base64.b64decode(data, validate=True)
        except binascii.Error:
            self.archive_error = "the VM sent a zip piece that is not base64"
            return
        if len(self._archive) + len(piece) > self.max_archive:
            self.archive_error = f"the VM sent more than {self.max_archive} bytes of zip"
            self._archive.clear()
            return
        self._archive += piece

    @property
    def archive(self) -> bytes:
        """The zip the VM sent (empty when none, or when it was unusable)."""
        return b"" if self.archive_error else bytes(self._archive)

    async def finish(self) -> None:
        """The run is over: say so if the output was cut."""
        if self.truncated:
            await self.note(
                f"\n[cloudiag] output truncated at {self.max_output} bytes per stream\n"
            )

    def text(self, stream: Stream) -> str:
        """What was kept of one stream."""
        return "".join(self._parts[stream])


def collection_words(request: RunRequest) -> list[str]:
    """The script's words of a getDiagnosticsData job, checked by the VM's own rules (the
    agent's wall); DiagnosticsInputError when they refuse it."""
    spec = request.collect
    if spec is None:
        raise DiagnosticsInputError(collect.FIELD, "the job has no items to collect")
    words = collect.collect_arguments(spec.items, spec.roots, spec.max_file, spec.max_zip)
    collect.parse_arguments(words[1:])
    return words


@dataclass(frozen=True)
class Ended:
    """How a job over a session ended."""

    code: int
    timed_out: bool = False
    cancelled: bool = False
    #: Why it failed as a whole (its session ended under it), else "".
    error: str = ""


async def run_limited(
    sink: Collector, job: SessionJob, *, time_limit: float, stop: asyncio.Event | None
) -> Ended:
    """Run ``job`` into ``sink`` within ``time_limit`` seconds, until ``stop`` if it is set.

    Either one cancels the job on the VM (the session waits for its exit record, and takes
    a VM that does not send it for hung); the sink gets the note saying which. A session
    that ends under the job is noted too, and is the ``error`` of the result.
    """
    halt = asyncio.Event()
    why: list[str] = []

    def halt_for(reason: str) -> None:
        why.append(reason)
        halt.set()

    def on_stop(task: asyncio.Future[Any]) -> None:
        if not task.cancelled():
            halt_for("stop")

    timer = asyncio.get_running_loop().call_later(time_limit, halt_for, "time")
    stopper = asyncio.ensure_future(stop.wait() if stop is not None else asyncio.Future())
    stopper.add_done_callback(on_stop)
    error = ""
    try:
        code = await job(sink.record, halt)
    except SessionError as exc:
        code, error = -1, str(exc)
        await sink.note(f"\n[cloudiag] {error}\n")
    finally:
        timer.cancel()
        stopper.cancel()
    # The first reason is the one: a stop after the time limit changes nothing.
    ended = Ended(code, why[:1] == ["time"], why[:1] == ["stop"], error)
    if ended.timed_out:
        await sink.note(f"\n[cloudiag] time limit of {time_limit:g} s reached; process killed\n")
    elif ended.cancelled:
        await sink.note("\n[cloudiag] cancelled; process killed\n")
    await sink.finish()
    return ended
