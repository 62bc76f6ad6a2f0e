"""Run a diagnostic inside a Linux network namespace (the lab's stand-in for a system VM).

The request is validated with the shared registry, then run by the system-VM package itself,
built into its zipapp (``cloudiag/sysvm/build.py``), in the namespace: a warm session per
namespace (``ip netns exec NS python3 -I -S <zipapp> serve``, see ``session``) validates
each request again and starts its tool, so the agent exercises the same second wall and the
same output framing as on a real system VM, and a diagnostic starts one process: the tool.
The session gives each tool a process group of its own, so a time limit or a cancellation
kills the tool and what it started: no orphans. ``NetnsExecutor`` is this module behind the
agent's Executor protocol.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloudiag.agent.executors.base import OnRecord, Outcome
from cloudiag.agent.executors.collect import Collector, collection_words, run_limited
from cloudiag.agent.executors.process_channel import ProcessChannel
from cloudiag.agent.executors.session import SESSION_MAX_JOBS, Channel, OnSessionRecord
from cloudiag.agent.executors.session_pool import SessionPool
from cloudiag.bus.messages import NetnsAccess, RunRequest, VmReport
from cloudiag.sysvm import build, command, registry, validate
from cloudiag.sysvm.errors import DiagnosticsInputError

__all__ = [
    "DiagnosticsInputError",
    "ExecResult",
    "NetnsExecutor",
    "close_sessions",
    "namespace_exists",
    "run_in_netns",
    "sessions_started",
    "spawn_count",
    "tools_started",
    "zipapp_path",
]

#: Where the zipapp is built, once per content hash.
BUILD_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cloudiag"
NETNS_DIR = "/run/netns"
# iproute2 keeps namespaces as files in /run/netns, so the name must be a plain file name.
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# How often a running job looks whether its VM is still there.
_VM_CHECK_INTERVAL = 0.5
_job_numbers = itertools.count(1)


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
    #: Why the run failed as a whole (its session ended under it), else "".
    error: str = ""
    #: A collection's zip (collect_in_netns), else empty.
    archive: bytes = b""


def namespace_exists(namespace: str) -> bool:
    """Whether the namespace is there: the lab's VM is running (a stopped one is deleted)."""
    # One stat() on tmpfs: cheap enough to do inline, and it turns iproute2's terse
    # "Cannot open network namespace" into a clear message without spawning anything.
    if not _NAMESPACE_RE.fullmatch(namespace) or namespace in (".", ".."):
        return False
    return os.path.exists(os.path.join(NETNS_DIR, namespace))


def _namespace_id(namespace: str) -> tuple[int, int] | None:
    """Which namespace the name stands for now (a VM started again gets a new one)."""
    try:
        info = os.stat(os.path.join(NETNS_DIR, namespace))
    except OSError:
        return None
    return info.st_dev, info.st_ino


_built: str | None = None


async def zipapp_path() -> str:
    """The zipapp of the current sources, built on first use (in a thread: it writes files).

    Two first runs at once may both build: the build is atomic and gives the same file.
    """
    global _built
    if _built is None:
        _built = str(await asyncio.to_thread(build.build, BUILD_DIR))
    return _built


def _stamp_of(zipapp: str) -> str:
    """The build stamp in the zipapp's name: what its sessions say they run."""
    return Path(zipapp).stem.removeprefix("cloudiag-sysvm-")


def script_arguments(time_limit: float, denied_networks: Sequence[str]) -> list[str]:
    """The limit and the policy as the script takes them (SSH does not pass the environment)."""
    policy = [arg for net in denied_networks for arg in ("--deny", net)] or ["--no-deny"]
    return ["--time-limit", f"{time_limit:g}", *policy]


class _Sessions:
    """The warm sessions of the namespaces: one pool per event loop, counted across them."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool = SessionPool()
        self._ids: dict[str, tuple[int, int]] = {}
        self._before = (0, 0)

    def pool(self) -> SessionPool:
        """The pool of the running loop (a pool's sessions belong to the loop that opened them)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._before = self.counts()
            self._loop, self._pool, self._ids = loop, SessionPool(), {}
        return self._pool

    def counts(self) -> tuple[int, int]:
        """(session processes started, tools started over them) so far."""
        return self._before[0] + self._pool.opened(), self._before[1] + self._pool.spawned()

    async def current(self, key: str, namespace: str) -> None:
        """Forget the session of ``key`` if its namespace is another one now."""
        found = _namespace_id(namespace)
        if self._ids.get(key, found) != found:
            await self.pool().discard(key)
        if found is not None:
            self._ids[key] = found


_sessions = _Sessions()


def sessions_started() -> int:
    """Session processes this module has started since import."""
    return _sessions.counts()[0]


def tools_started() -> int:
    """Tools started over those sessions (one per diagnostic that reached its VM)."""
    return _sessions.counts()[1]


def spawn_count() -> int:
    """Processes this module has started in namespaces since import: sessions and tools."""
    return sum(_sessions.counts())


async def close_sessions() -> None:
    """End every warm session this module opened (they also end when the agent does)."""
    await _sessions.pool().close()


def enter_argv(namespace: str, mount: str | None) -> list[str]:
    """The argv prefix that runs a program in the VM: its network namespace, and its own
    mount namespace when it has one (else `ip netns exec`'s, made from the host's files)."""
    # One stat, once per session opened (as namespace_exists).
    if mount is not None and os.path.ismount(mount):
        return ["nsenter", f"--mount={mount}", f"--net={os.path.join(NETNS_DIR, namespace)}", "--"]
    return ["ip", "netns", "exec", namespace]


def _opener(
    namespace: str, mount: str | None, python: str, zipapp: str
) -> Callable[[], Awaitable[Channel]]:
    async def open_channel() -> Channel:
        return await ProcessChannel.start(
            [
                *enter_argv(namespace, mount),
                *(python, "-I", "-S", zipapp, "serve", "--max-jobs", str(SESSION_MAX_JOBS)),
            ]
        )

    return open_channel


async def _watch_vm(namespace: str, key: str) -> None:
    """Close the session of a VM whose namespace is deleted (the VM stopped) under a job."""
    while True:
        await asyncio.sleep(_VM_CHECK_INTERVAL)
        if not namespace_exists(namespace):
            break
    await _sessions.pool().discard(key)


def _result(
    sink: Collector,
    exitcode: str,
    *,
    started: float,
    argv: list[str],
    timed_out: bool = False,
    cancelled: bool = False,
    error: str = "",
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
        error=error or sink.archive_error,
        archive=sink.archive,
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
    vm_name: str | None = None,
    job_id: str = "job",
    mount: str | None = None,
) -> ExecResult:
    """Run one diagnostic in ``namespace`` (with the mount namespace ``mount`` when it has
    one, see enter_argv) and return its output.

    Raises DiagnosticsInputError for refused input (nothing is spawned then). The time
    limit covers the whole run: on expiry the tool's process group is killed and the partial
    output returned with ``timed_out=True``. ``on_line(stream, text)`` is awaited for each
    line as it arrives ("stdout" / "stderr"). Setting ``stop`` kills the process group and
    returns the partial output with ``cancelled=True``. If the calling task is cancelled the
    tool is killed before CancelledError propagates. A session that ends under the run
    gives ``error`` (and exit code -1) with the partial output.
    """
    # The options may imply up to the type's own limit, or the operator's when it is higher
    # (the API refused anything beyond the operator's limit); the wall clock is time_limit.
    dtype = registry.get_type(type_name)
    check_limit = max(time_limit, dtype.time_limit)
    req = validate.validate(type_name, address, params, time_limit=check_limit)
    tool_argv = command.build_argv(req)
    started = time.monotonic()
    sink = Collector(max_output, on_line)
    if not namespace_exists(namespace):
        await sink.note(f'[cloudiag] network namespace "{namespace}" does not exist\n')
        return _result(sink, "-1", started=started, argv=tool_argv)

    # The script checks the options against the same limit (its second wall), and names
    # resolve on the VM: the script checks the address and aims the tool at it.
    words = [
        *script_arguments(check_limit, denied_networks),
        req.type.name,
        req.address,
        *req.params,
    ]
    return await _run_words(
        namespace,
        words,
        sink,
        argv=tool_argv,
        time_limit=time_limit,
        python=python,
        stop=stop,
        vm_name=vm_name,
        job_id=job_id,
        mount=mount,
    )


async def collect_in_netns(
    namespace: str,
    request: RunRequest,
    *,
    python: str | None = None,
    stop: asyncio.Event | None = None,
    vm_name: str | None = None,
    mount: str | None = None,
) -> ExecResult:
    """Run a getDiagnosticsData collection in ``namespace`` (and ``mount``, whose files are
    the VM's own): the result's ``archive`` is the zip. Raises DiagnosticsInputError for
    refused items (nothing is spawned then)."""
    words = collection_words(request)
    assert request.collect is not None  # collection_words refused a job without it
    if mount is None or not await asyncio.to_thread(os.path.ismount, mount):
        # Without a mount namespace of its own, `ip netns exec` shows the VM the agent
        # host's files: a collection there would hand out the host's /etc and /var/log.
        raise DiagnosticsInputError(
            "targetid",
            f"{vm_name or namespace} has no files of its own (no mount namespace: `cloudiag "
            "demo --executor ssh` or `lab up --ssh` gives each system VM its own), so its "
            "diagnostics data would be the agent host's",
        )
    sink = Collector(request.max_output, None, max_archive=request.collect.max_zip)
    if not namespace_exists(namespace):
        await sink.note(f'[cloudiag] network namespace "{namespace}" does not exist\n')
        return _result(sink, "-1", started=time.monotonic(), argv=words)
    return await _run_words(
        namespace,
        words,
        sink,
        argv=words,
        time_limit=request.time_limit,
        python=python,
        stop=stop,
        vm_name=vm_name,
        job_id=request.job_id,
        mount=mount,
    )


async def _run_words(
    namespace: str,
    words: list[str],
    sink: Collector,
    *,
    argv: list[str],
    time_limit: float,
    python: str | None,
    stop: asyncio.Event | None,
    vm_name: str | None,
    job_id: str,
    mount: str | None,
) -> ExecResult:
    """Run the script's ``words`` over the namespace's warm session into ``sink``."""
    started = time.monotonic()
    zipapp = await zipapp_path()
    python = python or sys.executable
    key = f"{namespace} {python} {mount or ''}"
    await _sessions.current(key, namespace)
    watcher = asyncio.ensure_future(_watch_vm(namespace, key))

    def job(on_record: OnSessionRecord, halt: asyncio.Event) -> Awaitable[int]:
        return _sessions.pool().run(
            key,
            _opener(namespace, mount, python, zipapp),
            vm_name or namespace,
            _stamp_of(zipapp),
            f"{job_id}.{next(_job_numbers)}",
            words,
            on_record=on_record,
            stop=halt,
            open_timeout=time_limit,
        )

    try:
        ended = await run_limited(sink, job, time_limit=time_limit, stop=stop)
    finally:
        watcher.cancel()
    return _result(
        sink,
        str(ended.code),
        started=started,
        argv=argv,
        timed_out=ended.timed_out,
        cancelled=ended.cancelled,
        error=ended.error,
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
            if request.collect is not None:
                res = await collect_in_netns(
                    namespace, request, stop=stop, vm_name=vm.name, mount=vm.access.mount
                )
            else:
                res = await self._diagnostic(namespace, vm, request, on_record, stop)
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
            error="" if res.refused else await _vm_gone(vm.name, namespace, res) or res.error,
            archive=res.archive,
        )

    @staticmethod
    async def _diagnostic(
        namespace: str, vm: VmReport, request: RunRequest, on_record: OnRecord, stop: asyncio.Event
    ) -> ExecResult:
        assert isinstance(vm.access, NetnsAccess)
        return await run_in_netns(
            namespace,
            request.type,
            request.address,
            request.params,
            time_limit=request.time_limit,
            max_output=request.max_output,
            on_line=on_record,
            stop=stop,
            denied_networks=request.denied_networks,
            vm_name=vm.name,
            job_id=request.job_id,
            mount=vm.access.mount,
        )

    def spawned(self) -> int:
        """Processes started in the VMs: one tool per diagnostic that reached its VM, and
        each session process (see ``tools_started`` and ``sessions_started``)."""
        return spawn_count()

    async def close(self) -> None:
        """End the warm sessions of the namespaces (see ``close_sessions``)."""
        await close_sessions()


async def _vm_gone(name: str, namespace: str, res: ExecResult) -> str:
    """Why the run could not complete if the VM stopped under it, else ''."""
    # Killed by a signal we did not send, or its session killed: a VM going down kills its
    # processes first and removes its NICs a moment later, so look again for a little while.
    killed = bool(res.error) or (
        res.exitcode.startswith("-") and not (res.timed_out or res.cancelled)
    )
    for _ in range(10 if killed else 1):
        if not namespace_exists(namespace):
            return f"The VM {name} stopped during the diagnostic; its output is partial"
        if killed:
            await asyncio.sleep(0.1)
    return ""
