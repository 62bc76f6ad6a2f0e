"""The restart policy: back-off delays, and a supervisor restarting real child processes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable

import pytest

from cloudiag.supervisor import Backoff, Spawn, Supervisor, exit_reason

SLEEPER = (sys.executable, "-c", "import time; time.sleep(120)")


def test_the_delay_doubles_from_half_a_second_up_to_thirty() -> None:
    backoff = Backoff()
    assert [backoff.delay(1.0) for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_the_delay_starts_over_after_a_child_ran_a_minute() -> None:
    backoff = Backoff()
    assert [backoff.delay(5.0) for _ in range(4)] == [0.5, 1, 2, 4]
    assert backoff.delay(59.9) == 8
    assert backoff.delay(60.0) == 0.5
    assert backoff.delay(0.0) == 1  # A failed start counts as a crash.


def test_exit_reasons_name_the_code_or_the_signal() -> None:
    assert exit_reason(0) == "exited with code 0"
    assert exit_reason(3) == "exited with code 3"
    assert exit_reason(-signal.SIGKILL) == "killed by SIGKILL"


def _spawner(*argv: str) -> tuple[Spawn, list[asyncio.subprocess.Process]]:
    """A spawn of `argv`, and every process it started."""
    started: list[asyncio.subprocess.Process] = []

    async def spawn() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(*argv)
        started.append(proc)
        return proc

    return spawn, started


async def _until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cloudiag.supervisor"]


async def test_a_killed_child_is_restarted_and_both_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    spawn, started = _spawner(*SLEEPER)
    supervisor = Supervisor("sleeper", spawn, Backoff(first=0.01))
    first = await supervisor.start()
    try:
        os.kill(first.pid, signal.SIGKILL)
        await _until(lambda: supervisor.restarts == 1)
        assert len(started) == 2
        assert supervisor.process is started[1] and started[1].returncode is None
        exited, restarted = _messages(caplog)
        assert exited.startswith("sleeper killed by SIGKILL after ")
        assert exited.endswith("; restarting it in 0.0 s")
        assert restarted == f"sleeper restarted pid={started[1].pid} restarts=1"
    finally:
        await supervisor.stop()
    assert all(proc.returncode is not None for proc in started)


class _Recorded(Backoff):
    """The back-off policy, and every delay it gave."""

    def __init__(self, first: float) -> None:
        super().__init__(first=first)
        self.given: list[float] = []

    def delay(self, ran_for: float) -> float:
        delay = super().delay(ran_for)
        self.given.append(delay)
        return delay


async def test_a_child_exiting_on_its_own_is_restarted_with_a_growing_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spawn, started = _spawner(sys.executable, "-c", "raise SystemExit(3)")
    backoff = _Recorded(first=0.001)
    supervisor = Supervisor("quitter", spawn, backoff)
    await supervisor.start()
    try:
        await _until(lambda: supervisor.restarts >= 3)
    finally:
        await supervisor.stop()
    assert backoff.given[:3] == [0.001, 0.002, 0.004]
    assert sum("quitter exited with code 3 after" in m for m in _messages(caplog)) >= 3
    assert [proc.returncode for proc in started[:3]] == [3, 3, 3]


async def test_stop_stops_the_child_and_nothing_is_restarted_after() -> None:
    spawn, started = _spawner(*SLEEPER)
    supervisor = Supervisor("sleeper", spawn, Backoff(first=0.001))
    proc = await supervisor.start()
    await supervisor.stop()
    assert proc.returncode == -signal.SIGTERM
    await asyncio.sleep(0.05)  # Ten back-off delays: a restart would have happened.
    assert len(started) == 1 and supervisor.restarts == 0


async def test_a_child_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    ignores = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    ready = "print('ready', flush=True); time.sleep(120)"
    started: list[asyncio.subprocess.Process] = []

    async def spawn() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", ignores + ready, stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        await proc.stdout.readline()  # SIGTERM is ignored from now on.
        started.append(proc)
        return proc

    supervisor = Supervisor("stubborn", spawn, grace=0.2)
    proc = await supervisor.start()
    await supervisor.stop()
    assert proc.returncode == -signal.SIGKILL
    assert len(started) == 1


async def test_stop_during_the_back_off_ends_it_without_a_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spawn, started = _spawner(*SLEEPER)
    supervisor = Supervisor("sleeper", spawn, Backoff(first=3600))
    first = await supervisor.start()
    os.kill(first.pid, signal.SIGKILL)
    await _until(lambda: any("restarting it in 3600.0 s" in m for m in _messages(caplog)))
    async with asyncio.timeout(30):  # Not the hour of the back-off.
        await supervisor.stop()
    assert len(started) == 1 and supervisor.restarts == 0


async def test_a_failed_restart_is_logged_and_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spawn, started = _spawner(*SLEEPER)
    calls = 0

    async def flaky() -> asyncio.subprocess.Process:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("port in use")
        return await spawn()

    supervisor = Supervisor("flaky", flaky, Backoff(first=0.01))
    first = await supervisor.start()
    try:
        os.kill(first.pid, signal.SIGKILL)
        await _until(lambda: supervisor.restarts == 1)
    finally:
        await supervisor.stop()
    assert calls == 3 and len(started) == 2
    assert "flaky could not be restarted: port in use; next try in 0.0 s" in _messages(caplog)


async def test_the_first_start_fails_to_the_caller() -> None:
    async def broken() -> asyncio.subprocess.Process:
        raise OSError("no such binary")

    supervisor = Supervisor("broken", broken)
    with pytest.raises(OSError, match="no such binary"):
        await supervisor.start()
    await supervisor.stop()  # Nothing to stop: no error either.
