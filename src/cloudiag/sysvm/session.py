"""The warm session: ``cloudiag-sysvm.pyz serve [--max-jobs N]``, many jobs in one process.

The agent keeps one such process per VM instead of starting Python for every diagnostic.
Requests come on stdin (protocol.py), records go to stdout tagged with their job's id::

    {"s": "ready", "version": "<build stamp>", "max_jobs": N}      first, once
    {"j": …, "s": "started", "pid": <pid>}                          the tool's process exists
    {"j": …, "s": "out" | "err" | "refused" | "zip", "d": …}
    {"j": …, "s": "exit", "code": <int>}                            always a job's last one
    {"s": "pong", "n": <int>}                                       the answer to a ping
    {"s": "error", "d": <why>[, "j": …]}                            a malformed request line

Each run is validated again exactly as the one-shot script validates its arguments (cli's
``prepare``) and its tool runs in a process group of its own, in a thread of its own, so a
cancel kills that group alone; a guardian process (orphans.py) kills the groups left if the
session itself is killed. A run whose first word is ``collect`` is a getDiagnosticsData
collection instead (collect.py), checked by its own rules. When stdin closes, or stdout's
reader has gone, or the process is asked to stop (SIGTERM, SIGHUP, SIGINT), every running
tool is stopped, their exit records are written if stdout still works, and the process
exits 0.
"""

from __future__ import annotations

import signal
import sys
import threading

from . import collect
from .cli import USAGE, prepare, release_stdout
from .framing import RecordWriter
from .orphans import Guardian
from .process import run_tool
from .protocol import MAX_LINE, ProtocolError, parse_request
from .tokens import INT_RE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import IO

DEFAULT_MAX_JOBS = 32
_MAX_JOBS_LIMIT = 1024
# What run_tool takes to stop a tool (SIGTERM, SIGKILL after 1 s), and a margin.
_SHUTDOWN_WAIT = 3.0
# What ends a session as EOF does (SIGTERM: the agent died, SIGHUP: the SSH channel went).
_ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class _Ended(Exception):
    """Raised in the main thread to end the session (a signal, stdout gone)."""


def _max_jobs(args: Sequence[str]) -> int:
    """The ``--max-jobs`` of ``serve``'s arguments; ValueError when they are not right."""
    if not args:
        return DEFAULT_MAX_JOBS
    if len(args) == 2 and args[0] == "--max-jobs" and INT_RE.fullmatch(args[1]):
        number = int(args[1])
        if 1 <= number <= _MAX_JOBS_LIMIT:
            return number
    raise ValueError(f"serve takes --max-jobs N (1 to {_MAX_JOBS_LIMIT}) only")


def _lines(stream: IO[bytes]) -> Iterator[bytes | None]:
    """The request lines of ``stream`` until EOF; None for one longer than MAX_LINE."""
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) <= MAX_LINE:
            yield line
            continue
        # Too long: skip to its end, then say so once.
        while line and not line.endswith(b"\n"):
            line = stream.readline(MAX_LINE)
        yield None


class Session:
    """The jobs of one session; ``handle()`` is called with each request line."""

    def __init__(self, out: RecordWriter, max_jobs: int, guardian: Guardian) -> None:
        self._out = out
        self._max_jobs = max_jobs
        self._guardian = guardian
        self._lock = threading.Lock()
        self._jobs: dict[str, tuple[threading.Event, threading.Thread]] = {}

    def handle(self, line: bytes | None) -> None:
        """Act on one request line (None: one that was too long)."""
        try:
            if line is None:
                raise ProtocolError(f"a request line is longer than {MAX_LINE} bytes")
            req = parse_request(line)
        except ProtocolError as exc:
            error = {"s": "error", "d": exc.why}
            if exc.job is not None:
                error["j"] = exc.job
            self._out.send(error)
            return
        except Exception as exc:
            # A line that trips a bug is refused like a malformed one; the session goes on.
            self._out.send({"s": "error", "d": f"a request line could not be read: {exc!r}"})
            return
        if req.op == "ping":
            self._out.send({"s": "pong", "n": req.number})
        elif req.op == "cancel":
            with self._lock:
                entry = self._jobs.get(req.job)
            if entry is not None:
                entry[0].set()
        else:
            self._start(req.job, req.args)

    def _start(self, job: str, args: list[str]) -> None:
        stop = threading.Event()
        writer = self._out.for_job(job, on_exit=lambda: self._release(job, stop))
        with self._lock:
            if job in self._jobs:
                # No records for that id: they would end the job that runs under it.
                self._out.send({"s": "error", "j": job, "d": f"job {job} is already running"})
                return
            if len(self._jobs) >= self._max_jobs:
                busy = self._out.for_job(job)
                busy.write("refused", f"the session is busy: {self._max_jobs} jobs are running")
                busy.write("exit", code=-1)
                return
            thread = threading.Thread(
                target=self._run, args=(job, args, writer, stop), name=f"job {job}"
            )
            # A tool that will not die must not keep the session from exiting.
            thread.daemon = True
            self._jobs[job] = (stop, thread)
        thread.start()

    def _run(self, job: str, args: list[str], writer: RecordWriter, stop: threading.Event) -> None:
        tools: list[int] = []

        def on_start(pid: int) -> None:
            self._guardian.started(pid)
            tools.append(pid)
            writer.write("started", code=pid)

        try:
            if args[:1] == [collect.COMMAND]:
                collect.run(args[1:], writer, stop)
                return
            planned = prepare(args, writer)
            if planned is not None:
                argv, hard_limit = planned
                run_tool(argv, writer=writer, hard_limit=hard_limit, stop=stop, on_start=on_start)
                # Returned: the tool was reaped (on a failure it may run on, still guarded).
                for pid in tools:
                    self._guardian.ended(pid)
        except Exception as exc:
            # A bug must not leave the job without its exit record: the agent would wait
            # for it, then take the whole session for hung.
            if self._holds(job, stop):
                writer.write("err", f"[cloudiag] the session failed to run the job: {exc!r}\n")
                writer.write("exit", code=-1)
        finally:
            # Its exit record released it already, unless something failed before.
            self._release(job, stop)
            if writer.broken:
                # Nobody reads any more: end the session. The main thread waits on stdin,
                # and only a real signal interrupts that read.
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)

    def _holds(self, job: str, stop: threading.Event) -> bool:
        """Whether this run of the job still counts (its exit record is not written)."""
        with self._lock:
            entry = self._jobs.get(job)
            return entry is not None and entry[0] is stop

    def _release(self, job: str, stop: threading.Event) -> None:
        """The job no longer counts: its exit record is being written (the agent may then
        send the next one, and reuse its id: only this run of it is removed)."""
        with self._lock:
            entry = self._jobs.get(job)
            if entry is not None and entry[0] is stop:
                del self._jobs[job]

    def running(self) -> int:
        """How many jobs run now."""
        with self._lock:
            return len(self._jobs)

    def stop_all(self) -> None:
        """Stop every running tool and wait (bounded) for their exit records."""
        with self._lock:
            entries = list(self._jobs.values())
        for stop, _ in entries:
            stop.set()
        for _, thread in entries:
            # One that a signal kept from starting has nothing to wait for.
            if thread.is_alive():
                thread.join(_SHUTDOWN_WAIT)


def _on_signal(signum: int, frame: object) -> None:
    raise _Ended


def serve(args: Sequence[str], *, stamp: str) -> int:
    """Run a session on stdin/stdout until stdin closes; the process exit status."""
    try:
        max_jobs = _max_jobs(args)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n{USAGE}")
        return 2
    out = RecordWriter(sys.stdout.buffer)
    # Forked first, while this process has one thread.
    session = Session(out, max_jobs, Guardian.start())
    for signum in _ENDING_SIGNALS:
        signal.signal(signum, _on_signal)
    try:
        out.send({"s": "ready", "version": stamp, "max_jobs": max_jobs})
        for line in _lines(sys.stdin.buffer):
            session.handle(line)
            if out.broken:
                break
    except _Ended:
        pass
    finally:
        # No signal may cut the shutdown short: the tools must not outlive the session.
        for signum in _ENDING_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        session.stop_all()
    release_stdout()
    return 0
