"""`cloudiag demo` as a user runs it: started twice, and stopped with Ctrl-C under a pipe.

Each test has a lab of its own prefix (see test_lab.py) and takes it down even on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.cli_process import CliProcess
from tests.integration.test_lab import new_prefix, skip_unless_possible

pytestmark = pytest.mark.lab

RUNNING = r"^cloudiag demo is running$"
URL = r"web UI:\s+(http://\S+)/$"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A lab prefix nobody else uses; its lab is taken down at the end whatever happened."""
    skip_unless_possible()
    name = new_prefix()
    yield name
    subprocess.run([sys.executable, "-m", "cloudiag", "lab", "down", "--prefix", name], check=False)


def _lab(prefix: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "cloudiag", "lab", "status", "--prefix", prefix, "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    status: dict[str, object] = json.loads(out.stdout)
    return status


def _processes_of(prefix: str) -> list[str]:
    """Live processes (zombies included) whose command line names the lab."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if prefix in cmdline and "pytest" not in cmdline:
            found.append(f"{pid} {cmdline}")
    return found


def _demo(prefix: str, data_dir: Path, log: Path) -> CliProcess:
    return CliProcess(
        "demo", "--port", "0", "--lab-prefix", prefix, "--data-dir", str(data_dir), log=log
    )


def test_a_second_demo_on_a_running_one_refuses_and_leaves_its_lab_alone(
    prefix: str, tmp_path: Path
) -> None:
    first = _demo(prefix, tmp_path / "data", tmp_path / "first.log")
    try:
        first.wait_for(RUNNING, timeout=180)
        url = first.wait_for(URL).group(1)
        second = subprocess.run(
            [sys.executable, "-m", "cloudiag", "demo", "--port", "0", "--lab-prefix", prefix,
             "--data-dir", str(tmp_path / "data")],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert second.returncode == 1
        assert "running on the data directory" in second.stderr
        assert "taking the lab down" not in second.stdout
        lab = _lab(prefix)
        assert lab["up"] is True
        assert all(ns["running"] for ns in lab["namespaces"])  # type: ignore[attr-defined]
        assert httpx.get(f"{url}/client/api", timeout=10).status_code == 401
    finally:
        assert first.stop() == 0, first.output()
    assert _lab(prefix)["up"] is False


def test_ctrl_c_with_the_output_pipe_gone_still_takes_the_lab_down(
    prefix: str, tmp_path: Path
) -> None:
    # As `demo.sh | tee log` and Ctrl-C: tee dies with the demo, the pipe has no reader.
    demo = subprocess.Popen(
        [sys.executable, "-m", "cloudiag", "demo", "--port", "0", "--lab-prefix", prefix,
         "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert demo.stdout is not None and demo.stderr is not None
    try:
        deadline = time.monotonic() + 180
        for line in demo.stdout:
            if line.startswith("Ctrl-C stops everything") or time.monotonic() > deadline:
                break
        assert _lab(prefix)["up"] is True
        demo.stdout.close()
        demo.send_signal(signal.SIGINT)
        status = demo.wait(120)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    errors = demo.stderr.read()
    assert status == 0, errors
    assert "BrokenPipeError" not in errors
    lab = _lab(prefix)
    assert not any(ns["running"] for ns in lab["namespaces"])  # type: ignore[attr-defined]
    assert _processes_of(prefix) == []


def test_a_demo_on_a_lab_it_did_not_bring_up_leaves_it_up(prefix: str, tmp_path: Path) -> None:
    up = subprocess.run(
        [sys.executable, "-m", "cloudiag", "lab", "up", "--prefix", prefix],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    demo = _demo(prefix, tmp_path / "data", tmp_path / "demo.log")
    try:
        demo.wait_for(r"is up already", timeout=60)
        demo.wait_for(RUNNING, timeout=120)
    finally:
        assert demo.stop() == 0, demo.output()
    assert not any("taking the lab down" in line for line in demo.lines)
    assert _lab(prefix)["up"] is True
