"""The zipapp's warm session (``serve``) run as a VM runs it: a real process, real pings.

Packets go to loopback only (127.0.0.1).
"""

from __future__ import annotations

import io
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloudiag.sysvm import build, orphans, protocol
from tests.sysvm_zipapp import zipapp

pytestmark = pytest.mark.skipif(shutil.which("ping") is None, reason="ping is not installed")

LONG_PING = ["--no-deny", "ping", "127.0.0.1", "-c", "100", "-i", "0.5"]
#: Prints nothing until its end: no write of its fails (SIGPIPE) when its reader dies.
QUIET_PING = ["--no-deny", "ping", "127.0.0.1", "-q", "-c", "100", "-i", "0.5"]


class Serve:
    """A ``serve`` process, its stdout read by a thread into a queue of decoded lines."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", zipapp(), "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def send(self, obj: dict[str, Any] | bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(obj if isinstance(obj, bytes) else json.dumps(obj).encode() + b"\n")
        self.proc.stdin.flush()

    def run(self, job: str, *args: str) -> None:
        self.send({"op": "run", "j": job, "args": list(args)})

    def next(self, timeout: float = 10) -> dict[str, Any] | None:
        line = self.lines.get(timeout=timeout)
        if line is not None:
            self.seen.append(line)
        return line

    def until(self, predicate: Any, timeout: float = 15) -> dict[str, Any]:
        """Read lines until one matches (returned); fail if the output ends first."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(deadline - time.monotonic(), 0.01))
            assert line is not None, f"the output ended; seen: {self.seen}"
            if predicate(line):
                return line

    def of(self, job: str) -> list[dict[str, Any]]:
        return [line for line in self.seen if line.get("j") == job]

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def serve() -> Iterator[Serve]:
    session = Serve()
    try:
        yield session
    finally:
        session.close()


def exited(job: str) -> Any:
    return lambda line: line.get("j") == job and line.get("s") == "exit"


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too: its parent (the session) has not reaped it yet.
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return status == "Z"


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def wait_gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return False


def check_job_shape(lines: list[dict[str, Any]]) -> None:
    """Notes, then started, then output, then exactly one exit record, last."""
    kinds = [line["s"] for line in lines]
    assert kinds.count("exit") == 1 and kinds[-1] == "exit", kinds
    if "started" in kinds:
        assert kinds.count("started") == 1
        assert all(k == "err" for k in kinds[: kinds.index("started")]), kinds


def test_ready_says_the_build_and_the_job_limit(serve: Serve) -> None:
    ready = serve.next()
    assert ready == {"s": "ready", "version": Path(zipapp()).stem.split("-")[-1], "max_jobs": 32}
    assert ready["version"] == build.current_stamp()


def test_two_jobs_at_once_are_interleaved_and_tagged(serve: Serve) -> None:
    serve.next()
    serve.run("a", "--no-deny", "ping", "127.0.0.1", "-c", "4", "-i", "0.2")
    serve.run("b", "--no-deny", "ping", "127.0.0.1", "-c", "4", "-i", "0.2")
    serve.until(exited("a"))
    if not any(exited("b")(line) for line in serve.seen):
        serve.until(exited("b"))
    a, b = serve.of("a"), serve.of("b")
    for lines in (a, b):
        check_job_shape(lines)
        assert lines[-1]["code"] == 0
        assert "4 received" in "".join(line.get("d", "") for line in lines)
    # Interleaved: b's first record came before a's last one.
    tagged = [line["j"] for line in serve.seen if "j" in line]
    assert tagged.index("b") < len(tagged) - 1 - tagged[::-1].index("a")
    started = [line["pid"] for line in serve.seen if line.get("s") == "started"]
    assert len(set(started)) == 2


def test_cancel_kills_one_job_and_not_the_other(serve: Serve) -> None:
    serve.next()
    serve.run("long", *LONG_PING)
    serve.run("short", "--no-deny", "ping", "127.0.0.1", "-c", "6", "-i", "0.2")
    pid = serve.until(lambda line: line.get("j") == "long" and line["s"] == "started")["pid"]
    serve.until(lambda line: line.get("j") == "long" and "icmp_seq=1 " in line.get("d", ""))
    sent = time.monotonic()
    serve.send({"op": "cancel", "j": "long"})
    end = serve.until(exited("long"))
    assert time.monotonic() - sent < 3
    assert end["code"] < 0
    assert wait_gone(pid)
    assert serve.until(exited("short"))["code"] == 0
    check_job_shape(serve.of("long"))
    # Cancelling what is not running is ignored; the session goes on.
    serve.send({"op": "cancel", "j": "long"})
    serve.send({"op": "ping", "n": 7})
    assert serve.next() == {"s": "pong", "n": 7}


@pytest.mark.parametrize(
    ("line", "fragment", "job"),
    [
        (b"not json\n", "not one JSON object", None),
        (b"[1, 2]\n", "not one JSON object", None),
        (b'{"op": "run", "j": "x", "args": "ping 127.0.0.1"}\n', "list of strings", "x"),
        (b'{"op": "run", "j": "x", "args": [1]}\n', "list of strings", "x"),
        (b'{"op": "run", "j": "a b", "args": []}\n', "job id", None),
        (b'{"op": "run", "j": "' + b"x" * 81 + b'", "args": []}\n', "job id", None),
        (b'{"op": "run", "args": []}\n', "job id", None),
        (b'{"op": "shell", "j": "x"}\n', "unknown op", "x"),
        (b'{"op": "cancel", "j": "x", "sig": 9}\n', "unknown field 'sig'", "x"),
        (b'{"op": "ping", "n": true}\n', "integer", None),
        (b'{"op": "ping", "n": "1"}\n', "integer", None),
        (b'{"op": "ping"\xff}\n', "not one JSON object", None),
        (b'{"op": "ping", "n": 1, "pad": "' + b"x" * 70000 + b'"}\n', "longer than", None),
    ],
)
def test_malformed_lines_get_an_error_and_are_ignored(
    serve: Serve, line: bytes, fragment: str, job: str | None
) -> None:
    serve.next()
    serve.send(line)
    error = serve.next()
    assert error is not None and error["s"] == "error" and fragment in error["d"], error
    assert error.get("j") == job
    serve.send({"op": "ping", "n": 1})
    assert serve.next() == {"s": "pong", "n": 1}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--no-deny", "ping", "127.0.0.1;id"], "forbidden character"),
        (["--no-deny", "ping", "127.0.0.1", "-c 1; id"], ""),
        (["--no-deny", "ping", "127.0.0.1", "-f"], 'Option "-f" is not allowed'),
        (["ping", "127.0.0.1", "-c", "1"], "which the operator does not allow"),
        (["--no-deny", "ping", "-oProxyCommand=x"], ""),
        (["--no-deny", "sh", "-c", "id"], "Is not a valid diagnostics command type"),
        (["--time-limit", "5", "--no-deny", "ping", "127.0.0.1", "-c", "30"], "limit of 5 s"),
        (["--shell", "ping", "127.0.0.1"], "unknown option"),
        ([], "a type and a target"),
    ],
)
def test_hostile_args_are_refused_and_start_nothing(
    serve: Serve, args: list[str], fragment: str
) -> None:
    serve.next()
    serve.run("h", *args)
    serve.until(exited("h"))
    lines = serve.of("h")
    assert [line["s"] for line in lines] == ["refused", "exit"], lines
    assert fragment in lines[0]["d"]
    assert lines[1]["code"] == -1


def test_a_busy_session_refuses_and_a_running_id_is_not_reused() -> None:
    session = Serve("--max-jobs", "1")
    try:
        assert session.next()["max_jobs"] == 1  # type: ignore[index]
        session.run("one", *LONG_PING)
        session.until(lambda line: line.get("s") == "started")
        session.run("one", *LONG_PING)
        duplicate = session.until(lambda line: line.get("s") == "error")
        assert duplicate == {"s": "error", "j": "one", "d": "job one is already running"}
        session.run("two", "--no-deny", "ping", "127.0.0.1", "-c", "1")
        session.until(exited("two"))
        assert [line["s"] for line in session.of("two")] == ["refused", "exit"]
        assert "busy" in session.of("two")[0]["d"]
        session.send({"op": "cancel", "j": "one"})
        session.until(exited("one"))
        session.run("three", "--no-deny", "ping", "127.0.0.1", "-c", "1")
        assert session.until(exited("three"))["code"] == 0
    finally:
        session.close()


def test_a_job_leaves_its_place_before_its_exit_record() -> None:
    # The agent sends the next job as soon as it reads an exit record: never "busy".
    session = Serve("--max-jobs", "1")
    try:
        session.next()
        for number in range(20):
            session.run(
                "same" if number % 2 else f"j{number}", "--no-deny", "ping", "127.0.0.1", "-c", "1"
            )
            end = session.until(lambda line: line.get("s") in ("exit", "error"))
            assert end["s"] == "exit" and end["code"] == 0, session.seen[-3:]
    finally:
        session.close()


def test_eof_kills_what_runs_and_exits_cleanly(serve: Serve) -> None:
    serve.next()
    serve.run("long", *LONG_PING)
    pid = serve.until(lambda line: line.get("s") == "started")["pid"]
    assert serve.proc.stdin is not None
    serve.proc.stdin.close()
    assert serve.until(exited("long"))["code"] < 0
    assert serve.proc.wait(timeout=5) == 0
    assert gone(pid)
    assert serve.next() is None


@pytest.mark.parametrize("ping", [LONG_PING, QUIET_PING], ids=["chatty", "quiet"])
def test_a_killed_session_takes_its_tools_along(serve: Serve, ping: list[str]) -> None:
    serve.next()
    serve.run("long", *ping)
    serve.run("other", *ping)
    pids = [serve.until(lambda line: line.get("s") == "started")["pid"] for _ in range(2)]
    # SIGKILL gives the session no chance to stop its tools: its guardian does it.
    os.kill(serve.proc.pid, signal.SIGKILL)
    assert all(wait_gone(pid) for pid in pids)


#: A process that starts a guardian and two sleepers, tells it both started and the second
#: ended, prints their pids and dies at once (no cleanup of its own).
GUARDED = """
import os, subprocess, sys
from cloudiag.sysvm.orphans import Guardian
guardian = Guardian.start()
quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
kept, ended = (
    subprocess.Popen(["sleep", "30"], start_new_session=True, **quiet) for _ in range(2)
)
guardian.started(kept.pid)
guardian.started(ended.pid)
guardian.ended(ended.pid)
print(kept.pid, ended.pid, flush=True)
os._exit(0)
"""


def test_the_guardian_kills_the_groups_still_running_and_only_those() -> None:
    # A reaped tool's pid (its group's id) may be another process's by then: the guardian,
    # told it ended, must leave that group alone.
    out = subprocess.run(
        [sys.executable, "-c", GUARDED], capture_output=True, text=True, check=True, timeout=30
    )
    kept, ended = (int(pid) for pid in out.stdout.split())
    try:
        assert wait_gone(kept)
        assert not gone(ended)
    finally:
        for pid in (kept, ended):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_session_has_one_guardian_in_a_group_of_its_own(serve: Serve) -> None:
    serve.next()
    (guardian,) = children_of(serve.proc.pid)
    assert os.getpgid(guardian) == guardian != os.getpgid(serve.proc.pid)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{guardian}/comm").read_text().strip() != orphans.NAME:
        assert time.monotonic() < deadline, "the guardian did not take its name"
        time.sleep(0.01)
    # It holds nothing of the session's stdio: the session's end is seen as it ends.
    assert serve.proc.stdin is not None
    serve.proc.stdin.close()
    assert serve.proc.wait(timeout=5) == 0
    assert serve.next() is None
    assert wait_gone(guardian)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_ends_the_session_like_eof(serve: Serve, signum: int) -> None:
    serve.next()
    serve.run("long", *LONG_PING)
    pid = serve.until(lambda line: line.get("s") == "started")["pid"]
    serve.proc.send_signal(signum)
    assert serve.until(exited("long"))["code"] < 0
    assert serve.proc.wait(timeout=5) == 0
    assert gone(pid)


def test_a_reader_that_goes_away_stops_every_tool() -> None:
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", zipapp(), "serve"],
        stdin=subprocess.PIPE,
        stdout=write_end,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as out:
            assert json.loads(out.readline())["s"] == "ready"
            assert proc.stdin is not None
            for job in ("a", "b"):
                request = {"op": "run", "j": job, "args": LONG_PING}
                proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
            pids = []
            while len(pids) < 2:
                line = json.loads(out.readline())
                if line["s"] == "started":
                    pids.append(line["pid"])
        # The reader is gone: the next record fails, and every tool is stopped.
        assert proc.wait(timeout=10) == 0
        assert all(wait_gone(pid) for pid in pids)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


@pytest.mark.parametrize("args", [["--max-jobs", "0"], ["--max-jobs", "x"], ["--jobs", "3"]])
def test_serve_checks_its_own_arguments(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-S", zipapp(), "serve", *args],
        input=b"",
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert b"--max-jobs N" in done.stderr
    assert done.stdout == b""


def _other_pythons() -> list[str]:
    """Other Python 3 interpreters on this machine (pyenv's), as a VM may carry."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = sorted(str(p) for p in root.glob("3.*/bin/python3") if p.is_file())
    return [p for p in found if not Path(p).resolve().samefile(Path(sys.executable).resolve())]


@pytest.mark.parametrize("python", _other_pythons() or [pytest.param("", marks=pytest.mark.skip)])
def test_other_interpreters_serve_a_session(python: str) -> None:
    requests = [
        {"op": "run", "j": "a", "args": ["--no-deny", "ping", "127.0.0.1", "-c", "2", "-i", "0.2"]},
        {"op": "run", "j": "b", "args": ["--deny", "127.0.0.0/8", "ping", "127.0.0.1"]},
    ]
    proc = subprocess.Popen(
        [python, "-I", "-S", zipapp(), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        first = proc.stdout.readline()
        if not first:
            err = proc.communicate(timeout=10)[1]
            if b"SyntaxError" in err and b"annotations" in err:
                pytest.skip(f"{python} predates from __future__ import annotations")
            raise AssertionError(err)
        assert json.loads(first)["s"] == "ready"
        proc.stdin.write(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
        proc.stdin.flush()
        lines = []
        while sum(1 for line in lines if line["s"] == "exit") < 2:
            lines.append(json.loads(proc.stdout.readline()))
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    ends = {line["j"]: line["code"] for line in lines if line["s"] == "exit"}
    assert ends == {"a": 0, "b": -1}
    assert "2 received" in "".join(line.get("d", "") for line in lines if line.get("j") == "a")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@given(
    st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["op", "j", "args", "n", "x"]) | st.text(max_size=5), _JSON
        ).map(lambda d: json.dumps(d).encode()),
        st.fixed_dictionaries(
            {"op": st.sampled_from(["run", "cancel", "ping"]), "j": _JSON, "args": _JSON}
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_any_line_is_a_checked_request_or_a_protocol_error(line: bytes) -> None:
    try:
        req = protocol.parse_request(line)
    except protocol.ProtocolError as exc:
        assert exc.why and (exc.job is None or protocol.is_job_id(exc.job))
        return
    assert req.op in ("run", "cancel", "ping")
    if req.op != "ping":
        assert protocol.is_job_id(req.job)
    assert all(isinstance(a, str) for a in req.args)


def test_a_job_that_trips_a_bug_still_ends_with_its_exit_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cloudiag.sysvm import session as serve_mode
    from cloudiag.sysvm.framing import RecordWriter
    from cloudiag.sysvm.orphans import Guardian

    def broken(args: list[str], writer: RecordWriter) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(serve_mode, "prepare", broken)
    out = io.BytesIO()
    session = serve_mode.Session(RecordWriter(out), max_jobs=2, guardian=Guardian())
    session.handle(json.dumps({"op": "run", "j": "x", "args": ["ping", "x"]}).encode())
    deadline = time.monotonic() + 5
    while b'"exit"' not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["s"] for line in lines] == ["err", "exit"]
    assert "KeyError('a bug')" in lines[0]["d"] and lines[1] == {"j": "x", "s": "exit", "code": -1}
