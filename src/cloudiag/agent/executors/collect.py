"""What a run printed, as the job will show it: both streams within their limit, our notes.

Every executor that runs our system-VM package collects the records of one job here: the
tool's output is kept up to ``max_output`` bytes per stream (the rest is read and dropped,
so a tool never blocks on a full pipe) and forwarded live; cloudiag's own ``[cloudiag]``
notes are always kept.
"""

from __future__ import annotations

from cloudiag.agent.executors.base import OnRecord, Stream
from cloudiag.sysvm.framing import Record


class Collector:
    """Accumulates both streams up to a byte limit each and forwards kept text live."""

    def __init__(self, max_output: int, on_line: OnRecord | None) -> None:
        self.max_output = max_output
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

    async def finish(self) -> None:
        """The run is over: say so if the output was cut."""
        if self.truncated:
            await self.note(
                f"\n[cloudiag] output truncated at {self.max_output} bytes per stream\n"
            )

    def text(self, stream: Stream) -> str:
        """What was kept of one stream."""
        return "".join(self._parts[stream])
