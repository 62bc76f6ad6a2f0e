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
    from collections.abc import Callable, Mapping, Sequence
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
    writer: RecordWriter | None = None,
    stop: threading.Event | None = None,
    on_start: Callable[[int], None] | None = None,
) -> int:
    """Run ``argv`` (no shell) and stream its output as framed records to ``out``.

    Returns the tool's exit code (negative signal number if killed), or -1 if it could
    not be started. The exit record is always the last one written. SIGTERM, SIGINT and
    SIGHUP are forwarded to the tool (when called from the main thread); ``hard_limit``
    seconds after the start the tool is killed whatever it is doing.

    A session's job passes its own ``writer`` (records tagged with the job) and a ``stop``
    event: the tool then runs in a process group of its own, which setting ``stop``
    terminates (SIGKILL after a grace period). ``on_start(pid)`` is called once the tool's
    process exists.
    """
    if writer is None:
        writer = RecordWriter(out if out is not None else sys.stdout.buffer)
    argv = list(argv)
    state: dict[str, Any] = {"child": None, "signal": None, "group": stop is not None}

    def on_signal(signum: int, frame: object) -> None:
        state["signal"] = signum
        child = state["child"]
        if child is not None:
            _send(child, signum, group=False)

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in _FORWARDED_SIGNALS:
            previous[signum] = signal.signal(signum, on_signal)
    try:
        if stop is not None and stop.is_set():
            writer.write("err", "[cloudiag] cancelled before the tool started\n")
            writer.write("exit", code=-1)
            return -1
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else tool_env(),
                close_fds=True,
                # A session's tool: its own group, so that a cancel reaches all it started.
                start_new_session=state["group"],
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            writer.write("err", f"cannot run {argv[0] if argv else '(nothing)'}: {reason}\n")
            writer.write("exit", code=-1)
            return -1
        state["child"] = child
        if on_start is not None:
            on_start(child.pid)
        if state["signal"] is not None:
            # A signal arrived while the tool was being started.
            _send(child, state["signal"], group=False)
        code = _pump(child, writer, state, hard_limit, stop)
        writer.write("exit", code=code)
        return code
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _send(child: subprocess.Popen[bytes], signum: int, *, group: bool) -> None:
    """Signal the tool, or its whole process group; one that is gone already is no error."""
    try:
        if group:
            os.killpg(child.pid, signum)
        else:
            # send_signal() does nothing once the child has been reaped.
            child.send_signal(signum)
    except OSError:
        pass


def _pump(
    child: subprocess.Popen[bytes],
    writer: RecordWriter,
    state: dict[str, Any],
    hard_limit: float | None,
    stop: threading.Event | None,
) -> int:
    """Forward the child's output line by line until it has exited; return its code."""
    assert child.stdout is not None and child.stderr is not None
    group = bool(state["group"])
    started = time.monotonic()
    splitters = {"out": LineSplitter(), "err": LineSplitter()}
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ, "out")
    selector.register(child.stderr, selectors.EVENT_READ, "err")
    kill_at: float | None = None
    killed = False
    exited_at: float | None = None
    try:
        while selector.get_map():
            for key, _ in selector.select(timeout=0.1 if group else 0.2):
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
                _send(child, signal.SIGKILL, group=group)
                kill_at, killed = now, True
            stopped = stop is not None and stop.is_set()
            if kill_at is None and (state["signal"] is not None or writer.broken or stopped):
                # The signal handler has already forwarded the signal (SIGINT lets ping
                # print its summary); a vanished reader or a cancel gets the tool a
                # SIGTERM. Either way the tool is killed if it is still there after the
                # grace period.
                if state["signal"] is None:
                    _send(child, signal.SIGTERM, group=group)
                kill_at = now + _STOP_GRACE
            if kill_at is not None and now >= kill_at and not killed:
                # Once: a group outlives its leader when the tool started children of its
                # own, and a reaped leader's pid may be reused.
                _send(child, signal.SIGKILL, group=group)
                killed = True
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
