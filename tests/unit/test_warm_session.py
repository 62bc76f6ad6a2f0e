"""The agent's warm sessions (WarmSession, SessionPool, run_limited) over real ``serve`` processes.

Each session is the zipapp's ``serve`` started here through a ProcessChannel, as the netns
executor starts it in a namespace; tools ping loopback only (127.0.0.1).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest

from cloudiag.agent.executors.collect import Collector, run_limited
from cloudiag.agent.executors.process_channel import ProcessChannel
from cloudiag.agent.executors.session import (
    Channel,
    OnSessionRecord,
    SessionError,
    SessionStale,
    WarmSession,
)
from cloudiag.agent.executors.session_pool import Opener, SessionPool
from cloudiag.sysvm.framing import Record
from tests.sysvm_zipapp import zipapp

pytestmark = pytest.mark.skipif(shutil.which("ping") is None, reason="ping is not installed")

VM = "r-7-VM"
PING = ["--no-deny", "ping", "127.0.0.1", "-c", "2", "-i", "0.2"]
LONG_PING = ["--no-deny", "ping", "127.0.0.1", "-c", "100", "-i", "0.5"]


def version() -> str:
    return Path(zipapp()).stem.removeprefix("cloudiag-sysvm-")


class Opened:
    """An opener of ``serve`` processes that remembers them."""

    def __init__(self, argv: list[str] | None = None) -> None:
        self.argv = argv or [sys.executable, "-I", "-S", zipapp(), "serve"]
        self.channels: list[ProcessChannel] = []

    async def __call__(self) -> Channel:
        channel = await ProcessChannel.start(self.argv)
        self.channels.append(channel)
        return channel

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self.channels]


class Job:
    """The records of one job as they come, and when."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.started = asyncio.Event()
        self.printed = asyncio.Event()

    async def __call__(self, record: Record) -> None:
        self.records.append(record)
        if record.stream == "started":
            self.started.set()
        if record.stream == "out" and "icmp_seq=" in record.data:
            self.printed.set()

    @property
    def pid(self) -> int:
        return next(r.code for r in self.records if r.stream == "started" and r.code)

    def out(self) -> str:
        return "".join(r.data for r in self.records if r.stream == "out")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return stat[0] != "Z"


async def wait_gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.fixture
async def pool() -> AsyncIterator[SessionPool]:
    sessions = SessionPool(ping_interval=0.3, ping_timeout=0.5)
    try:
        yield sessions
    finally:
        await sessions.close()


async def run(pool: SessionPool, opener: Opener, job_id: str, args: list[str], job: Job) -> int:
    return await pool.run(
        "vm", opener, VM, version(), job_id, args, on_record=job, stop=asyncio.Event()
    )


async def test_a_job_over_a_session() -> None:
    opener = Opened()
    session = await WarmSession.open(await opener(), vm_name=VM, version=version())
    try:
        job = Job()
        code = await session.run("j1", PING, on_record=job, stop=asyncio.Event())
        assert code == 0
        assert "2 received" in job.out()
        assert job.records[0].stream == "started"
        assert all(r.job == "j1" for r in job.records)
        assert session.spawned() == 1 and session.alive
        assert await session.ping(2.0)
    finally:
        await session.close()
    assert not session.alive
    assert await wait_gone(opener.pids[0])


async def test_a_refused_job_starts_nothing() -> None:
    session = await WarmSession.open(await Opened()(), vm_name=VM, version=None)
    try:
        job = Job()
        code = await session.run("j1", ["ping", "127.0.0.1"], on_record=job, stop=asyncio.Event())
        assert code == -1
        assert [r.stream for r in job.records] == ["refused"]
        assert "operator does not allow" in job.records[0].data
        assert session.spawned() == 0
    finally:
        await session.close()


async def test_jobs_at_once_share_one_session(pool: SessionPool) -> None:
    opener = Opened()
    jobs = [Job() for _ in range(4)]
    codes = await asyncio.gather(*(run(pool, opener, f"j{i}", PING, j) for i, j in enumerate(jobs)))
    assert codes == [0, 0, 0, 0]
    assert all("2 received" in j.out() for j in jobs)
    assert (pool.opened(), pool.spawned()) == (1, 4)
    assert len({j.pid for j in jobs}) == 4


async def test_the_pool_queues_beyond_its_job_limit() -> None:
    pool = SessionPool(max_jobs=1)
    try:
        opener = Opened()
        jobs = [Job(), Job()]
        started = time.monotonic()
        one = ["--no-deny", "ping", "127.0.0.1", "-c", "4", "-i", "0.2"]
        codes = await asyncio.gather(
            *(run(pool, opener, f"j{i}", one, j) for i, j in enumerate(jobs))
        )
        assert codes == [0, 0]
        # One after the other: twice the 0.6 s of one, where two at once take 0.6 s.
        assert time.monotonic() - started > 1.1
        assert pool.opened() == 1
    finally:
        await pool.close()


async def test_stop_cancels_the_job_on_the_vm(pool: SessionPool) -> None:
    opener = Opened()
    job, stop = Job(), asyncio.Event()
    task = asyncio.create_task(
        pool.run("vm", opener, VM, version(), "j1", LONG_PING, on_record=job, stop=stop)
    )
    await asyncio.wait_for(job.printed.wait(), 10)
    stop.set()
    code = await asyncio.wait_for(task, 5)
    assert code < 0
    assert await wait_gone(job.pid, 1)
    # The session goes on.
    assert await run(pool, opener, "j2", PING, Job()) == 0
    assert pool.opened() == 1


async def test_a_cancelled_task_stops_its_tool_first(pool: SessionPool) -> None:
    opener = Opened()
    job = Job()
    task = asyncio.create_task(run(pool, opener, "j1", LONG_PING, job))
    await asyncio.wait_for(job.started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Killed before CancelledError came through: nothing to wait for.
    assert not alive(job.pid)


async def test_a_failing_callback_stops_its_tool(pool: SessionPool) -> None:
    started: list[int] = []

    async def on_record(record: Record) -> None:
        if record.stream == "started" and record.code:
            started.append(record.code)
        if record.stream == "out":
            raise RuntimeError("consumer broke")

    with pytest.raises(RuntimeError, match="consumer broke"):
        await pool.run(
            "vm",
            Opened(),
            VM,
            version(),
            "j1",
            LONG_PING,
            on_record=on_record,
            stop=asyncio.Event(),
        )
    assert started and not alive(started[0])


async def test_a_killed_session_fails_its_jobs_at_once_and_is_replaced(pool: SessionPool) -> None:
    opener = Opened()
    jobs = [Job(), Job()]
    tasks = [
        asyncio.create_task(run(pool, opener, f"j{i}", LONG_PING, j)) for i, j in enumerate(jobs)
    ]
    for job in jobs:
        await asyncio.wait_for(job.printed.wait(), 10)
    killed = time.monotonic()
    os.kill(opener.pids[0], signal.SIGKILL)
    for task in tasks:
        with pytest.raises(SessionError) as info:
            await asyncio.wait_for(task, 5)
        assert str(info.value) == f"the session to {VM} ended during the job: killed by SIGKILL"
    assert time.monotonic() - killed < 2.0
    # Its tools went with it (the kernel's parent-death signal).
    for job in jobs:
        assert await wait_gone(job.pid)
    again = Job()
    assert await run(pool, opener, "j3", PING, again) == 0
    assert "2 received" in again.out()
    assert len(opener.channels) == 2 and pool.opened() == 2
    assert pool.spawned() == 3


async def test_a_hung_session_is_found_by_its_pings_and_replaced(pool: SessionPool) -> None:
    opener = Opened()
    job = Job()
    task = asyncio.create_task(run(pool, opener, "j1", LONG_PING, job))
    await asyncio.wait_for(job.printed.wait(), 10)
    hung = opener.pids[0]
    os.kill(hung, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        with pytest.raises(SessionError) as info:
            await asyncio.wait_for(task, 5)
        # Within ping_interval + ping_timeout (0.3 + 0.5 s), and some scheduling.
        assert time.monotonic() - stopped < 0.3 + 0.5 + 1.0
        assert str(info.value) == (
            f"the session to {VM} ended during the job: it did not answer a ping within 0.5 s"
        )
        assert await run(pool, opener, "j2", PING, Job()) == 0
        assert pool.opened() == 2
        # The hung one is killed (its tool with it) once its grace is over.
        assert await wait_gone(hung, 6)
        assert await wait_gone(job.pid, 2)
    finally:
        if alive(hung):
            os.kill(hung, signal.SIGKILL)


async def test_a_session_of_another_version_is_stale(pool: SessionPool) -> None:
    opener = Opened()
    with pytest.raises(SessionStale, match=f"runs version {version()}, not 0123456789abcdef"):
        await pool.run(
            "vm", opener, VM, "0123456789abcdef", "j1", PING, on_record=Job(), stop=asyncio.Event()
        )
    # Closed: it got EOF and went.
    assert await wait_gone(opener.pids[0])


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("import sys; sys.stderr.write('no python here'); sys.exit(3)", "exit status 3: no python"),
        ("print('hello')", "its first line is not the ready line"),
        ("import time; time.sleep(30)", "did not say it was ready within 0.5 s"),
    ],
)
async def test_a_session_that_does_not_start_says_why(code: str, fragment: str) -> None:
    pool = SessionPool(ready_timeout=0.5)
    opener = Opened([sys.executable, "-I", "-S", "-c", code])
    try:
        with pytest.raises(SessionError) as info:
            await pool.run(
                "vm", opener, VM, version(), "j1", PING, on_record=Job(), stop=asyncio.Event()
            )
        assert str(info.value).startswith(f"cannot open a session to {VM}: ")
        assert fragment in str(info.value)
    finally:
        await pool.close()
    assert await wait_gone(opener.pids[0])


async def test_an_opener_that_fails_is_a_session_error(pool: SessionPool) -> None:
    opener = Opened(["/nonexistent/python3", "serve"])
    with pytest.raises(SessionError, match=f"cannot open a session to {VM}: No such file"):
        await run(pool, opener, "j1", PING, Job())
    assert pool.opened() == 0


async def test_run_limited_cancels_at_the_time_limit_and_keeps_the_output(
    pool: SessionPool,
) -> None:
    opener = Opened()
    sink = Collector(1 << 20, None)

    def job(on_record: OnSessionRecord, halt: asyncio.Event) -> Awaitable[int]:
        return pool.run(
            "vm", opener, VM, version(), "j1", LONG_PING, on_record=on_record, stop=halt
        )

    started = time.monotonic()
    ended = await run_limited(sink, job, time_limit=1.2, stop=None)
    assert 1.2 <= time.monotonic() - started < 3
    assert ended.timed_out and not ended.cancelled and ended.code < 0 and not ended.error
    assert "icmp_seq=1 " in sink.text("stdout")
    assert sink.text("stderr").endswith("[cloudiag] time limit of 1.2 s reached; process killed\n")


async def test_run_limited_stops_on_request_and_truncates(pool: SessionPool) -> None:
    opener = Opened()
    sink, stop = Collector(60, None), asyncio.Event()

    def job(on_record: OnSessionRecord, halt: asyncio.Event) -> Awaitable[int]:
        return pool.run(
            "vm", opener, VM, version(), "j1", LONG_PING, on_record=on_record, stop=halt
        )

    task = asyncio.create_task(run_limited(sink, job, time_limit=30, stop=stop))
    await asyncio.sleep(1.2)
    stop.set()
    ended = await asyncio.wait_for(task, 5)
    assert ended.cancelled and not ended.timed_out
    assert sink.truncated and len(sink.text("stdout").encode()) == 60
    assert "[cloudiag] cancelled; process killed" in sink.text("stderr")
    assert "output truncated at 60 bytes per stream" in sink.text("stderr")


async def test_run_limited_notes_a_session_that_ends(pool: SessionPool) -> None:
    opener = Opened()
    sink = Collector(1 << 20, None)

    def job(on_record: OnSessionRecord, halt: asyncio.Event) -> Awaitable[int]:
        return pool.run(
            "vm", opener, VM, version(), "j1", LONG_PING, on_record=on_record, stop=halt
        )

    task = asyncio.create_task(run_limited(sink, job, time_limit=30, stop=None))
    while not opener.channels or not pool.spawned():
        await asyncio.sleep(0.05)
    os.kill(opener.pids[0], signal.SIGKILL)
    ended = await asyncio.wait_for(task, 5)
    assert ended.code == -1 and not ended.timed_out
    assert ended.error == f"the session to {VM} ended during the job: killed by SIGKILL"
    assert f"[cloudiag] {ended.error}" in sink.text("stderr")


async def test_a_job_waits_for_an_opening_session_no_longer_than_its_time_limit() -> None:
    """The session is slow to say it is ready (e.g. a slow VM): the job fails at its limit,
    the opening goes on, and the next job runs on the session it opened."""
    pool = SessionPool()
    ready = [sys.executable, "-I", "-S", zipapp(), "serve"]
    code = f"import os, sys, time; time.sleep(1.5); os.execv(sys.executable, {ready!r})"
    opener = Opened([sys.executable, "-I", "-S", "-c", code])
    try:
        started = time.monotonic()
        with pytest.raises(SessionError) as info:
            await pool.run(
                "vm",
                opener,
                VM,
                version(),
                "j1",
                PING,
                on_record=Job(),
                stop=asyncio.Event(),
                open_timeout=0.3,
            )
        assert time.monotonic() - started < 1.0
        assert str(info.value) == (
            f"cannot open a session to {VM} within the job's time limit: it was still "
            "connecting, installing or starting"
        )
        code = await pool.run(
            "vm", opener, VM, version(), "j2", PING, on_record=Job(), stop=asyncio.Event()
        )
        assert code == 0 and pool.opened() == 1
    finally:
        await pool.close()
