"""Output framing: one JSON object per line, which nothing a tool prints can forge.

::

    {"s": "out", "d": "<a line of the tool's stdout, incl. newline>"}
    {"s": "err", "d": "<a line of the tool's stderr>"}
    {"s": "refused", "d": "<why the VM refused the request; no tool ran>"}
    {"s": "exit", "code": <int>}

JSON string escaping (ASCII only) guarantees that nothing the tool prints can end a record
early or forge one: a newline or ``{"s": "exit"}`` inside the tool's output stays inside a
``"d"`` string. The exit record is always the last one.
"""

from __future__ import annotations

import codecs
import json

from .frozen import Frozen, set_fields

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any


class Record(Frozen):
    """One framed record: "out"/"err" with text ``data``, "refused" with the reason in
    ``data``, or "exit" with ``code``."""

    __slots__ = ("code", "data", "stream")
    stream: str
    data: str
    code: int | None

    def __init__(self, stream: str, data: str = "", code: int | None = None) -> None:
        set_fields(self, stream=stream, data=data, code=code)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (self.stream, self.data, self.code) == (other.stream, other.data, other.code)

    def __hash__(self) -> int:
        return hash((self.stream, self.data, self.code))


def encode_record(stream: str, data: str = "", code: int | None = None) -> bytes:
    """Encode one record as a single line of ASCII JSON (newline-terminated)."""
    obj: dict[str, Any]
    if stream == "exit":
        obj = {"s": "exit", "code": int(code if code is not None else -1)}
    elif stream in ("out", "err", "refused"):
        obj = {"s": stream, "d": data}
    else:
        raise ValueError(f"unknown stream {stream!r}")
    # ensure_ascii escapes every newline, U+2028 and other oddity inside the strings,
    # so a record is always exactly one line whatever the tool printed.
    return (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")


def decode_record(line: bytes | str) -> Record | None:
    """Decode one framed line; None for a truncated, malformed or unknown line."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    stream = obj.get("s")
    if stream in ("out", "err", "refused"):
        data = obj.get("d")
        return Record(stream, data) if isinstance(data, str) else None
    if stream == "exit":
        code = obj.get("code")
        # bool is an int subclass; true/false is not an exit code.
        if isinstance(code, int) and not isinstance(code, bool):
            return Record("exit", "", code)
    return None


class RecordWriter:
    """Writes records, flushing each; stops quietly once the reader has gone away."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.broken = False

    def write(self, stream: str, data: str = "", code: int | None = None) -> None:
        """Write one record; after the first failure, nothing."""
        if self.broken:
            return
        try:
            self._out.write(encode_record(stream, data, code))
            self._out.flush()
        except (BrokenPipeError, ValueError, OSError):
            # Nobody is listening any more (agent killed, ssh gone): stop writing; the
            # caller notices ``broken`` and stops the tool.
            self.broken = True


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
