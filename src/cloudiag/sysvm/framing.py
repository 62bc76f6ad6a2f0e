"""Output framing: one JSON object per line, which nothing a tool prints can forge.

::

    {"s": "out", "d": "<a line of the tool's stdout, incl. newline>"}
    {"s": "err", "d": "<a line of the tool's stderr>"}
    {"s": "refused", "d": "<why the VM refused the request; no tool ran>"}
    {"s": "zip", "d": "<base64 of a piece of a collection's zip (collect.py)>"}
    {"s": "exit", "code": <int>}

A warm session (session.py) runs several jobs over one stdout: each record then carries the
job's id, ``"j"``, and a ``{"j": …, "s": "started", "pid": <pid>}`` record says that the
tool's process exists.

JSON string escaping (ASCII only) guarantees that nothing the tool prints can end a record
early or forge one: a newline or ``{"s": "exit"}`` inside the tool's output stays inside a
``"d"`` string. The exit record is always the last one.
"""

from __future__ import annotations

import codecs
import json
import threading

from .frozen import Frozen, set_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any


class Record(Frozen):
    """One framed record: "out"/"err" with text ``data``, "refused" with the reason in
    ``data``, "zip" with a base64 piece of a collection's zip in ``data``, "exit" with
    ``code``, or "started" with the tool's pid in ``code``; ``job`` is the job's id in a
    session's records, else None."""

    __slots__ = ("code", "data", "job", "stream")
    stream: str
    data: str
    code: int | None
    job: str | None

    def __init__(
        self, stream: str, data: str = "", code: int | None = None, job: str | None = None
    ) -> None:
        set_fields(self, stream=stream, data=data, code=code, job=job)

    def _key(self) -> tuple[str, str, int | None, str | None]:
        return (self.stream, self.data, self.code, self.job)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


#: The records whose ``d`` is a string.
_DATA_STREAMS = ("out", "err", "refused", "zip")


def encode_line(obj: dict[str, Any]) -> bytes:
    """One JSON object as a single line of ASCII (newline-terminated)."""
    # ensure_ascii escapes every newline, U+2028 and other oddity inside the strings,
    # so a record is always exactly one line whatever the tool printed.
    return (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")


def encode_record(
    stream: str, data: str = "", code: int | None = None, job: str | None = None
) -> bytes:
    """Encode one record as a single line of ASCII JSON (newline-terminated)."""
    obj: dict[str, Any] = {} if job is None else {"j": job}
    if stream == "exit":
        obj.update(s="exit", code=int(code if code is not None else -1))
    elif stream == "started":
        obj.update(s="started", pid=int(code if code is not None else -1))
    elif stream in _DATA_STREAMS:
        obj.update(s=stream, d=data)
    else:
        raise ValueError(f"unknown stream {stream!r}")
    return encode_line(obj)


def _is_int(value: object) -> bool:
    # bool is an int subclass; true/false is not an exit code nor a pid.
    return isinstance(value, int) and not isinstance(value, bool)


def record_of(obj: dict[str, Any]) -> Record | None:
    """The record a decoded JSON object is; None for anything else."""
    job = obj.get("j")
    if job is not None and not isinstance(job, str):
        return None
    stream = obj.get("s")
    if stream in _DATA_STREAMS:
        data = obj.get("d")
        return Record(stream, data, None, job) if isinstance(data, str) else None
    number = obj.get("code" if stream == "exit" else "pid")
    if stream in ("exit", "started") and _is_int(number):
        return Record(stream, "", number, job)
    return None


def decode_line(line: bytes | str) -> dict[str, Any] | None:
    """The JSON object of one line; None for a truncated or malformed line."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def decode_record(line: bytes | str) -> Record | None:
    """Decode one framed line; None for a truncated, malformed or unknown line."""
    obj = decode_line(line)
    return None if obj is None else record_of(obj)


class _Pipe:
    """The output every writer of a process shares: one lock, one "broken" for all."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        # Jobs of a session write from their own threads: one line at a time.
        self.lock = threading.Lock()
        self.broken = False

    def send(self, line: bytes) -> None:
        with self.lock:
            if self.broken:
                return
            try:
                self.out.write(line)
                self.out.flush()
            except (BrokenPipeError, ValueError, OSError):
                # Nobody is listening any more (agent killed, ssh gone): stop writing;
                # the callers notice ``broken`` and stop their tools.
                self.broken = True


class RecordWriter:
    """Writes records, flushing each; stops quietly once the reader has gone away.

    ``for_job()`` gives a writer of the same output whose records carry a job's id; all of
    them take turns on one lock and see the output broken as soon as one write failed.
    """

    def __init__(
        self,
        out: IO[bytes],
        job: str | None = None,
        pipe: _Pipe | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self._pipe = pipe if pipe is not None else _Pipe(out)
        self.job = job
        self._on_exit = on_exit

    @property
    def broken(self) -> bool:
        """Whether a write failed: the reader has gone away."""
        return self._pipe.broken

    def write(self, stream: str, data: str = "", code: int | None = None) -> None:
        """Write one record; after the first failure, nothing."""
        if stream == "exit" and self._on_exit is not None:
            self._on_exit()
        self._pipe.send(encode_record(stream, data, code, self.job))

    def send(self, obj: dict[str, Any]) -> None:
        """Write one line that is not a job's record (a session's own messages)."""
        self._pipe.send(encode_line(obj))

    def for_job(self, job: str, on_exit: Callable[[], None] | None = None) -> RecordWriter:
        """A writer of the same output for the records of ``job``; ``on_exit()`` is called
        just before its exit record is written (whoever reads it may reuse what it held)."""
        return RecordWriter(self._pipe.out, job, self._pipe, on_exit)


class LineSplitter:
    """Splits a byte stream into text lines, decoding UTF-8 incrementally."""

    MAX_LINE = 16384

    def __init__(self) -> None:
        self._buf = b""
        # Incremental so that a multi-byte character cut between two reads survives.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> list[str]:
        """The complete lines ``data`` ends (a line longer than MAX_LINE is cut)."""
        self._buf += data
        lines: list[str] = []
        while True:
            cut = self._buf.find(b"\n", 0, self.MAX_LINE)
            if cut < 0:
                # Cap very long lines (binary junk) so records and memory stay bounded.
                if len(self._buf) < self.MAX_LINE:
                    break
                cut = self.MAX_LINE - 1
            piece, self._buf = self._buf[: cut + 1], self._buf[cut + 1 :]
            text = self._decoder.decode(piece)
            if text:
                lines.append(text)
        return lines

    def finish(self) -> list[str]:
        """What is left at the end of the stream."""
        text = self._decoder.decode(self._buf, final=True)
        self._buf = b""
        return [text] if text else []
