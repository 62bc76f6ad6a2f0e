"""A real CloudStack system VM's own script: its command line, one exec, and its ``&&`` output.

``/opt/cloud/bin/diagnostics.py <type> <address> [params]`` joins its arguments with spaces
and runs them with ``shell=True``, validating nothing; then it prints
``'%s&&' % stdout.strip()``, ``'%s&&' % stderr.strip()`` and the exit code, one per line.
So the agent validates the request with our own rules first, and every word must also be
inert to a shell (the script's shell sees the words unquoted).

What it prints depends on the VM's Python:

- Python 3: ``stdout`` is bytes, so the lines are byte-string reprs, ``b'PING …\\n…'&&``,
  one line each whatever the tool printed (newlines are escaped). The parser lexes each
  literal to its closing quote (backslash escapes skipped), so ``&&`` inside the output
  cannot end it, and decodes it with ``ast.literal_eval``.
- Python 2: raw text, which may itself hold ``&&`` and newlines. The exit code is the last
  line; the rest ends with ``&&``; stdout and stderr are split at the *last* ``&&`` that
  ends a line. So stdout may hold anything, and the split is wrong only when stderr
  itself holds ``&&`` at the end of a line (then that part of stderr shows in stdout).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import re
import shlex
from dataclasses import dataclass

import asyncssh

from cloudiag.sysvm.validate import Request

__all__ = ["SCRIPT", "ScriptOutputError", "ScriptResult", "command", "parse", "run"]

SCRIPT = "/opt/cloud/bin/diagnostics.py"
#: Words the script's shell reads as themselves: no quoting, globbing or expansion.
_INERT_RE = re.compile(r"[A-Za-z0-9_.:/@%+=,-]+")
_CODE_RE = re.compile(rb"-?[0-9]{1,9}")
#: The most the agent reads of the script's answer (its reprs take up to 4 bytes a byte).
_READ_FACTOR = 4


class ScriptOutputError(ValueError):
    """The script's output is not in its format (a crash, another script)."""


@dataclass(frozen=True)
class ScriptResult:
    """What the script reported."""

    stdout: str
    stderr: str
    exit_code: int
    #: "python3" (byte reprs) or "python2" (raw text).
    form: str


def command(req: Request) -> str:
    """The remote command for a validated request: shell-quoted words of the script's argv.

    Raises ValueError for a word the script's own shell would not read as itself (our
    validation admits none today; this holds even if it one day does).
    """
    words = [req.type.name, req.address, *req.params]
    for word in words:
        if not _INERT_RE.fullmatch(word):
            raise ValueError(f"{word!r} cannot be passed to the CloudStack script safely")
    return shlex.join([SCRIPT, *words])


def _literal_end(text: bytes, start: int) -> int:
    """The index just past the bytes literal at ``start`` (``b'…'`` or ``b"…"``)."""
    if text[start : start + 1] != b"b" or text[start + 1 : start + 2] not in (b"'", b'"'):
        raise ScriptOutputError("no byte string where the Python 3 form has one")
    quote = text[start + 1]
    i = start + 2
    while i < len(text):
        char = text[i]
        if char == 0x5C:  # A backslash escapes the next character, a quote too.
            i += 2
        elif char == quote:
            return i + 1
        elif char == 0x0A:
            break  # A repr never holds a raw newline.
        else:
            i += 1
    raise ScriptOutputError("a byte string of the Python 3 form does not end")


def _python3(output: bytes) -> tuple[bytes, bytes, int]:
    parts: list[bytes] = []
    pos = 0
    for _ in range(2):
        end = _literal_end(output, pos)
        if output[end : end + 3] != b"&&\n":
            raise ScriptOutputError("a byte string of the Python 3 form is not followed by &&")
        try:
            value = ast.literal_eval(output[pos:end].decode("ascii"))
        except (ValueError, SyntaxError, UnicodeDecodeError):
            raise ScriptOutputError("a byte string of the Python 3 form does not read") from None
        if not isinstance(value, bytes):
            raise ScriptOutputError("a byte string of the Python 3 form does not read")
        parts.append(value)
        pos = end + 3
    return parts[0], parts[1], _exit_code(output[pos:])


def _python2(output: bytes) -> tuple[bytes, bytes, int]:
    body, sep, last = output.rstrip(b"\n").rpartition(b"\n")
    if not sep or not body.endswith(b"&&"):
        raise ScriptOutputError("no exit code after a line ending with &&")
    code = _exit_code(last)
    stdout, sep, stderr = body[:-2].rpartition(b"&&\n")
    if not sep:
        raise ScriptOutputError("no &&-terminated stdout before stderr")
    return stdout, stderr, code


def _exit_code(line: bytes) -> int:
    text = line.removesuffix(b"\n")
    if not _CODE_RE.fullmatch(text):
        raise ScriptOutputError(f"the last line is not an exit code: {text[:80]!r}")
    return int(text)


def parse(output: bytes) -> ScriptResult:
    """Read the script's answer in either form; ScriptOutputError if it is neither."""
    try:
        out, err, code = _python3(output)
        form = "python3"
    except ScriptOutputError as exc3:
        try:
            out, err, code = _python2(output)
        except ScriptOutputError as exc2:
            raise ScriptOutputError(f"{exc3} (Python 3 form); {exc2} (Python 2 form)") from None
        form = "python2"
    return ScriptResult(stdout=_text(out), stderr=_text(err), exit_code=code, form=form)


def _text(data: bytes) -> str:
    # The script stripped the output: give back the final newline a tool's output has.
    text = data.decode("utf-8", errors="replace")
    return text + "\n" if text else ""


@dataclass(frozen=True)
class ScriptRun:
    """One exec of the script: its raw answer and how the exec ended."""

    stdout: bytes
    stderr: bytes
    #: The exec's exit status (None when it was stopped or the channel closed first).
    exit_status: int | None
    timed_out: bool = False
    cancelled: bool = False
    #: The stdout was cut at the read limit.
    cut: bool = False


async def _read(stream: asyncssh.SSHReader[bytes], limit: int, into: bytearray) -> bool:
    """Read ``stream`` to its end, keeping the first ``limit`` bytes; True if it was cut."""
    cut = False
    while chunk := await stream.read(65536):
        room = limit - len(into)
        if len(chunk) > room:
            cut = True
        into += chunk[: max(room, 0)]
    return cut


async def run(
    conn: asyncssh.SSHClientConnection,
    line: str,
    *,
    time_limit: float,
    max_output: int,
    stop: asyncio.Event,
) -> ScriptRun:
    """Exec ``line`` on the connection and read its answer within ``time_limit``.

    On expiry or ``stop`` the exec is sent SIGTERM and its channel closed: the script
    prints only at its end, so what it said so far is usually nothing.
    """
    proc = await conn.create_process(line, encoding=None, stdin=asyncssh.DEVNULL)
    out, err = bytearray(), bytearray()
    limit = _READ_FACTOR * max_output + 4096

    async def answer() -> bool:
        cut, _ = await asyncio.gather(
            _read(proc.stdout, limit, out), _read(proc.stderr, limit, err)
        )
        await proc.wait_closed()
        return cut

    reading = asyncio.ensure_future(answer())
    stopper = asyncio.ensure_future(stop.wait())
    timed_out = cancelled = cut = False
    try:
        async with asyncio.timeout(time_limit):
            await asyncio.wait({reading, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if reading.done():
            cut = reading.result()
        else:
            cancelled = True
    except TimeoutError:
        timed_out = True
    finally:
        stopper.cancel()
        if not reading.done():
            # The CloudStack script has no cancel: TERM it (sshd forwards the signal),
            # then close the channel; a tool it started may run to its own end.
            with contextlib.suppress(asyncssh.Error, OSError):
                proc.send_signal("TERM")
            proc.close()
            reading.cancel()
            with contextlib.suppress(BaseException):
                await reading
    status = None if timed_out or cancelled else proc.exit_status
    return ScriptRun(bytes(out), bytes(err), status, timed_out, cancelled, cut)
