"""Running a tool from an argv list (never a shell) and streaming its output as records."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time

from .framing import LineSplitter, RecordWriter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import IO, Any


def tool_env() -> dict[str, str]:
    """The environment a tool runs with."""
    # A small, predictable environment: C locale for parseable output, and the sbin
    # folders on PATH because traceroute and ip live there and a login PATH may lack them.
    path = os.environ.get("PATH", "") or "/usr/local/bin:/usr/bin:/bin"
    parts = path.split(os.pathsep)
    for extra in ("/usr/local/sbin", "/usr/sbin", "/sbin"):
        if extra not in parts:
            parts.append(extra)
    return {"PATH": os.pathsep.join(parts), "LC_ALL": "C", "LANG": "C"}


_FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# How long a child that was asked to stop may take before it is killed.
_STOP_GRACE = 1.0


def run_tool(
    argv: Sequence[str],
    out: IO[bytes] | None = None,
    *,
    hard_limit: float | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run ``argv`` (no shell) and stream its output as framed records to ``out``.

    Returns the tool's exit code (negative signal number if killed), or -1 if it could
    not be started. The exit record is always the last one written. SIGTERM, SIGINT and
    SIGHUP are forwarded to the tool (when called from the main thread); ``hard_limit``
    seconds after the start the tool is killed whatever it is doing.
    """
    writer = RecordWriter(out if out is not None else sys.stdout.buffer)
    argv = list(argv)
    state: dict[str, Any] = {"child": None, "signal": None}

    def on_signal(signum: int, frame: object) -> None:
        state["signal"] = signum
        child = state["child"]
        if child is not None:
            try:
                # send_signal() does nothing once the child has been reaped.
                child.send_signal(signum)
            except OSError:
                pass

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in _FORWARDED_SIGNALS:
            previous[signum] = signal.signal(signum, on_signal)
    try:
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else tool_env(),
                close_fds=True,
            )
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            writer.write("err", f"cannot run {argv[0] if argv else '(nothing)'}: {reason}\n")
            writer.write("exit", code=-1)
            return -1
        state["child"] = child
        if state["signal"] is not None:
            # A signal arrived while the tool was being started.
            child.send_signal(state["signal"])
        code = _pump(child, writer, state, hard_limit)
        writer.write("exit", code=code)
        return code
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _pump(
    child: subprocess.Popen[bytes],
    writer: RecordWriter,
    state: dict[str, Any],
    hard_limit: float | None,
) -> int:
    """Forward the child's output line by line until it has exited; return its code."""
    assert child.stdout is not None and child.stderr is not None
    started = time.monotonic()
    splitters = {"out": LineSplitter(), "err": LineSplitter()}
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ, "out")
    selector.register(child.stderr, selectors.EVENT_READ, "err")
    kill_at: float | None = None
    exited_at: float | None = None
    try:
        while selector.get_map():
            for key, _ in selector.select(timeout=0.2):
                stream = str(key.data)
                data = os.read(key.fd, 65536)
                if data:
                    lines = splitters[stream].feed(data)
                else:
                    selector.unregister(key.fileobj)
                    lines = splitters[stream].finish()
                for line in lines:
                    writer.write(stream, line)
            now = time.monotonic()
            if hard_limit is not None and now - started > hard_limit and kill_at is None:
                writer.write(
                    "err", f"[cloudiag] hard time limit of {hard_limit:g} s reached; killed\n"
                )
                child.kill()
                kill_at = now
            if kill_at is None and (state["signal"] is not None or writer.broken):
                # The signal handler has already forwarded the signal (SIGINT lets ping
                # print its summary); a vanished reader gets the tool a SIGTERM. Either
                # way the tool is killed if it is still there after the grace period.
                if state["signal"] is None and child.poll() is None:
                    child.terminate()
                kill_at = now + _STOP_GRACE
            if kill_at is not None and now >= kill_at and child.poll() is None:
                child.kill()
            # A tool that exited but left a descendant holding its pipes: stop waiting.
            if child.poll() is not None:
                exited_at = exited_at or now
                if now - exited_at > 2.0:
                    break
    finally:
        selector.close()
        child.stdout.close()
        child.stderr.close()
    return child.wait()


def exit_status(code: int) -> int:
    """Process exit status of the script for the tool's code (as a shell would)."""
    if code == -1:
        return 127
    if code < 0:
        return 128 - code
    return min(code, 255)
