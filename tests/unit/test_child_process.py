"""Children that die with their parent, and stopping one in order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time

from cloudiag.child_process import die_with_parent, stop_process
from tests.processes import alive

_PARENT = """
import subprocess, sys, time
from cloudiag.child_process import die_with_parent

child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)"], preexec_fn=die_with_parent()
)
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_child_dies_with_its_sigkilled_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 20
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "the child outlived its parent"
    finally:
        parent.kill()
        parent.wait()
        if child and alive(child):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_a_child_of_a_living_parent_runs_on() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "print('ran', flush=True)"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_parent(),
    )
    out, _ = child.communicate(timeout=30)
    assert (child.returncode, out) == (0, "ran\n")


async def test_stop_process_reaps_a_child_that_already_exited() -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()
    await stop_process(proc)
    assert proc.returncode == 0
