"""Run a diagnostic inside a Linux network namespace (the lab's stand-in for a system VM).

The request is validated with the shared registry, then the system-VM package itself, built
into its zipapp (``cloudiag/sysvm/build.py``), is run in the namespace with ``ip netns exec``
exactly as it is run on a real system VM, so the agent exercises the same second wall and
the same output framing. The process gets its own process group so that a time limit or a
cancellation can kill the script and the tool together: no orphans. ``NetnsExecutor`` is
this module behind the agent's Executor protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cloudiag.agent.executors.base import OnRecord, Outcome, Stream
from cloudiag.agent.executors.process_group import drain, kill_group, signal_group
from cloudiag.bus.messages import NetnsAccess, RunRequest, VmReport
from cloudiag.child_process import die_with_parent
from cloudiag.sysvm import build, command, framing, registry, validate
from cloudiag.sysvm.errors import DiagnosticsInputError

__all__ = [
    "DiagnosticsInputError",
    "ExecResult",
    "NetnsExecutor",
    "namespace_exists",
    "run_in_netns",
    "spawn_count",
    "zipapp_path",
]

#: Where the zipapp is built, once per content hash.
BUILD_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cloudiag"
NETNS_DIR = "/run/netns"
# iproute2 keeps namespaces as files in /run/netns, so the name must be a plain file name.
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_READ_SIZE = 65536

_spawned = 0


def spawn_count() -> int:
    """Number of processes this module has spawned since import (for tests)."""
    return _spawned


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one diagnostic run, in CloudStack's terms (exitcode is a string)."""

    stdout: str
    stderr: str
    exitcode: str
    timed_out: bool
    truncated: bool
    duration: float
    argv: list[str]
    #: Stopped on request (the `stop` event) before it finished.
    cancelled: bool = False
    #: Why the VM refused the request (no tool ran), else "".
    refused: str = ""


class _Collector:
    """Accumulates both streams up to a byte limit each and forwards kept text live."""

    def __init__(self, max_output: int, on_line: OnRecord | None) -> None:
        self._max = max_output
        self._on_line = on_line
        self._parts: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._size = {"stdout": 0, "stderr": 0}
        self.truncated = False
        self.exit_code: int | None = None
        self.refused = ""

    async def add(self, stream: Stream, text: str) -> None:
        if not text:
            return
        room = self._max - self._size[stream]
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

    def text(self, stream: str) -> str:
        return "".join(self._parts[stream])


async def _read_records(reader: asyncio.StreamReader, sink: _Collector) -> None:
    """Decode the script's framed stdout as it arrives."""
    buf = b""
    while True:
        chunk = await reader.read(_READ_SIZE)
        if chunk:
            buf += chunk
            lines = buf.split(b"\n")
            buf = lines.pop()
        else:
            # EOF: a last line without newline is the tolerated truncated record.
            lines, buf = ([buf] if buf else []), b""
        for line in lines:
            if not line.strip():
                continue
            record = framing.decode_record(line)
            if record is None:
                # Not framing (a crash message, a truncated record): keep it visible.
                await sink.add("stderr", line.decode("utf-8", errors="replace") + "\n")
            elif record.stream == "exit":
                sink.exit_code = record.code
            elif record.stream == "refused":
                sink.refused = record.data
                await sink.note(f"[cloudiag] refused on the VM: {record.data}\n")
            else:
                await sink.add("stdout" if record.stream == "out" else "stderr", record.data)
        if not chunk:
            return


async def _read_raw(reader: asyncio.StreamReader, sink: _Collector) -> None:
    """The wrapper's own stderr (ip netns exec errors, a Python traceback)."""
    while chunk := await reader.read(_READ_SIZE):
        await sink.add("stderr", chunk.decode("utf-8", errors="replace"))


def namespace_exists(namespace: str) -> bool:
    """Whether the namespace is there: the lab's VM is running (a stopped one is deleted)."""
    # One stat() on tmpfs: cheap enough to do inline, and it turns iproute2's terse
    # "Cannot open network namespace" into a clear message without spawning anything.
    if not _NAMESPACE_RE.fullmatch(namespace) or namespace in (".", ".."):
        return False
    return os.path.exists(os.path.join(NETNS_DIR, namespace))


_built: str | None = None


async def zipapp_path() -> str:
    """The zipapp of the current sources, built on first use (in a thread: it writes files).

    Two first runs at once may both build: the build is atomic and gives the same file.
    """
    global _built
    if _built is None:
        _built = str(await asyncio.to_thread(build.build, BUILD_DIR))
    return _built


def script_arguments(time_limit: float, denied_networks: Sequence[str]) -> list[str]:
    """The limit and the policy as the script takes them (SSH does not pass the environment)."""
    policy = [arg for net in denied_networks for arg in ("--deny", net)] or ["--no-deny"]
    return ["--time-limit", f"{time_limit:g}", *policy]


def _result(
    sink: _Collector,
    exitcode: str,
    *,
    timed_out: bool,
    started: float,
    argv: list[str],
    cancelled: bool = False,
) -> ExecResult:
    return ExecResult(
        cancelled=cancelled,
        refused=sink.refused,
        stdout=sink.text("stdout"),
        stderr=sink.text("stderr"),
        exitcode=exitcode,
        timed_out=timed_out,
        truncated=sink.truncated,
        duration=time.monotonic() - started,
        argv=argv,
    )


async def run_in_netns(
    namespace: str,
    type_name: str,
    address: str,
    params: list[str] | str | None,
    *,
    time_limit: float = 120.0,
    max_output: int = 1 << 20,
    on_line: OnRecord | None = None,
    python: str | None = None,
    stop: asyncio.Event | None = None,
    denied_networks: Sequence[str] = (),
) -> ExecResult:
    """Run one diagnostic in ``namespace`` and return its output.

    Raises DiagnosticsInputError for refused input (nothing is spawned then). The time
    limit covers the whole run: on expiry the process group is killed and the partial
    output returned with ``timed_out=True``. ``on_line(stream, text)`` is awaited for each
    line as it arrives ("stdout" / "stderr"). Setting ``stop`` kills the process group and
    returns the partial output with ``cancelled=True``. If the calling task is cancelled the
    process group is killed and reaped before CancelledError propagates.
    """
    global _spawned
    # The options may imply up to the type's own limit, or the operator's when it is higher
    # (the API refused anything beyond the operator's limit); the wall clock is time_limit.
    dtype = registry.get_type(type_name)
    check_limit = max(time_limit, dtype.time_limit)
    req = validate.validate(type_name, address, params, time_limit=check_limit)
    tool_argv = command.build_argv(req)
    started = time.monotonic()
    sink = _Collector(max_output, on_line)
    if not namespace_exists(namespace):
        await sink.note(f'[cloudiag] network namespace "{namespace}" does not exist\n')
        return _result(sink, "-1", timed_out=False, started=started, argv=tool_argv)

    cmd = [
        "ip",
        "netns",
        "exec",
        namespace,
        python or sys.executable,
        "-I",
        "-S",
        await zipapp_path(),
        # The script checks the options against the same limit (its second wall), and
        # names resolve on the VM: the script checks the address and aims the tool at it.
        *script_arguments(check_limit, denied_networks),
        req.type.name,
        req.address,
        *req.params,
    ]
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Own process group: one killpg() reaches the script and the tool.
            start_new_session=True,
            # If the agent dies (SIGKILL), the script gets SIGTERM and stops its tool:
            # `ip netns exec` execs the script in place, so it keeps the setting.
            preexec_fn=die_with_parent(),
        )
    except OSError as exc:
        await sink.note(f"[cloudiag] cannot start ip netns exec: {exc.strerror or exc}\n")
        return _result(sink, "-1", timed_out=False, started=started, argv=tool_argv)
    _spawned += 1

    assert proc.stdout is not None and proc.stderr is not None
    readers = asyncio.gather(_read_records(proc.stdout, sink), _read_raw(proc.stderr, sink))
    timed_out = cancelled = False

    async def finished() -> None:
        await asyncio.shield(readers)
        await proc.wait()

    waiter = asyncio.ensure_future(finished())
    stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        try:
            async with asyncio.timeout(time_limit):
                await asyncio.wait(
                    {waiter} if stopper is None else {waiter, stopper},
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if waiter.done():
                    waiter.result()  # A reader's error surfaces here.
            cancelled = not waiter.done()
            if cancelled:
                await kill_group(proc)
                await drain(readers)
                await sink.note("\n[cloudiag] cancelled; process killed\n")
        except TimeoutError:
            timed_out = True
            await kill_group(proc)
            # Keep what the script wrote while dying (it forwards SIGTERM and reports).
            await drain(readers)
            await sink.note(
                f"\n[cloudiag] time limit of {time_limit:g} s reached; process killed\n"
            )
    except BaseException:
        # Cancellation or a failing on_line: the processes must not outlive us.
        await kill_group(proc)
        raise
    finally:
        for task in (waiter, stopper):
            if task is not None and not task.done():
                task.cancel()
        if not readers.done():
            readers.cancel()
            with contextlib.suppress(BaseException):
                await readers
        if sink.exit_code is None:
            # No exit record: the script died and may have left the tool running.
            signal_group(proc.pid, signal.SIGKILL)

    if sink.truncated:
        await sink.note(f"\n[cloudiag] output truncated at {max_output} bytes per stream\n")
    exitcode = str(sink.exit_code) if sink.exit_code is not None else "-1"
    return _result(
        sink, exitcode, timed_out=timed_out, started=started, argv=tool_argv, cancelled=cancelled
    )


class NetnsExecutor:
    """The Executor of VMs that are network namespaces on this host (``NetnsAccess``)."""

    async def execute(
        self, vm: VmReport, request: RunRequest, *, on_record: OnRecord, stop: asyncio.Event
    ) -> Outcome:
        """Run the request in the VM's namespace (see ``run_in_netns``)."""
        if not isinstance(vm.access, NetnsAccess):
            raise TypeError(f"the netns executor cannot reach {vm.name} ({vm.access.kind})")
        namespace = vm.access.namespace
        try:
            res = await run_in_netns(
                namespace,
                request.type,
                request.address,
                request.params,
                time_limit=request.time_limit,
                max_output=request.max_output,
                on_line=on_record,
                stop=stop,
                denied_networks=request.denied_networks,
            )
        except DiagnosticsInputError as exc:
            # Nothing ran; the reason is also what the job's stderr shows.
            reason = exc.message
            return Outcome(stdout="", stderr=reason, exitcode="-1", duration=0.0, refused=reason)
        return Outcome(
            stdout=res.stdout,
            stderr=res.stderr,
            exitcode=res.exitcode,
            duration=res.duration,
            timed_out=res.timed_out,
            truncated=res.truncated,
            cancelled=res.cancelled,
            refused=res.refused,
            error="" if res.refused else await _vm_gone(vm.name, namespace, res),
        )

    def spawned(self) -> int:
        """Processes this module has started (one per run that reached a namespace)."""
        return spawn_count()


async def _vm_gone(name: str, namespace: str, res: ExecResult) -> str:
    """Why the run could not complete if the VM stopped under it, else ''."""
    # Killed by a signal we did not send: a VM going down kills its processes first
    # and removes its NICs a moment later, so look again for a little while.
    killed = res.exitcode.startswith("-") and not (res.timed_out or res.cancelled)
    for _ in range(10 if killed else 1):
        if not namespace_exists(namespace):
            return f"The VM {name} stopped during the diagnostic; its output is partial"
        if killed:
            await asyncio.sleep(0.1)
    return ""
