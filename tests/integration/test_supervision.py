"""`cloudiag serve` and `cloudiag demo` restart the private nats-server and the local agent
when they die, and a SIGKILLed server leaves neither behind.

Each test has a lab of its own prefix and takes it down even on failure.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudiag import datadir
from cloudiag.client import ApiKey, Client
from tests.integration.cli_process import CliProcess
from tests.integration.stack import tool_pids
from tests.integration.test_lab import skip_unless_possible
from tests.processes import alive, children

pytestmark = pytest.mark.lab


@pytest.fixture
def prefix(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A lab prefix of this file's own; its lab is taken down at the end whatever happened."""
    skip_unless_possible()
    # The private nats-server runs only when no external NATS is configured.
    monkeypatch.delenv("CLOUDIAG_NATS_URL", raising=False)
    name = "cdxs" + "".join(secrets.choice("ghijklmnopqrstuvwxyz") for _ in range(3))
    yield name
    subprocess.run([sys.executable, "-m", "cloudiag", "lab", "down", "--prefix", name], check=False)


def _child(parent: int, marker: str, not_pid: int = 0, timeout: float = 30) -> int:
    """The pid of the child of `parent` whose command line holds `marker` (not `not_pid`)."""
    found = _until(
        lambda: next(
            (p for p, cmd in children(parent).items() if marker in cmd and p != not_pid), None
        ),
        f"a child {marker!r} of {parent}",
        timeout,
    )
    return int(found)


def _until(probe: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _logged(log: Path, text: str) -> bool:
    return text in log.read_text()


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _nats_port(data_dir: Path) -> int:
    listen = re.search(r'listen: "127\.0\.0\.1:(\d+)"', (data_dir / "nats.conf").read_text())
    assert listen, "no listen line in nats.conf"
    return int(listen.group(1))


def _client(url: str, data_dir: Path) -> Client:
    saved = json.loads((data_dir / datadir.CREDENTIALS_FILE).read_text())
    return Client(url, ApiKey(saved["apikey"], saved["secretkey"]))


def _lab(prefix: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "cloudiag", "lab", "status", "--prefix", prefix, "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    status: dict[str, Any] = json.loads(out.stdout)
    return status


def _ping_works(client: Client, prefix: str) -> None:
    lab = _lab(prefix)
    router = next(ns for ns in lab["namespaces"] if ns["role"] == "router")
    job = client.wait_job(
        client.run_diagnostics(router["uuid"], "ping", lab["targets"]["web"], "-c 1"), timeout=60
    )
    assert job.jobstatus == 1, job
    assert job.diagnostics is not None and job.diagnostics.exitcode == "0", job


def _host_up(client: Client) -> bool:
    hosts = client.call("listHosts").get("host", [])
    return bool(hosts) and hosts[0]["state"] == "Up"


def test_serve_restarts_its_killed_nats_server_and_dies_with_it(
    prefix: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    serve = CliProcess(
        "serve", "--lab", "--lab-prefix", prefix, "--port", "0", "--data-dir", str(data_dir),
        log=tmp_path / "serve.log",
    )  # fmt: skip
    nats_pid = agent_pid = 0
    try:
        url = serve.wait_for(r"web UI at (http://\S+)/ and API", timeout=180).group(1)
        client = _client(url, data_dir)
        port = _nats_port(data_dir)
        nats_pid = _child(serve.proc.pid, "nats-server")
        agent_pid = _child(serve.proc.pid, "cloudiag agent")

        os.kill(nats_pid, signal.SIGKILL)
        nats_pid = _child(serve.proc.pid, "nats-server", not_pid=nats_pid)
        _until(lambda: _listens(port), f"a nats-server on port {port} again", 10)
        assert _nats_port(data_dir) == port
        for name in ("cloudiag-server", "cloudiag-agent"):
            line = f"nats reconnected name={name}"
            _until(functools.partial(_logged, serve.log, line), f"{name} to reconnect")
        _ping_works(client, prefix)
        log = serve.log.read_text()
        assert "private nats-server killed by SIGKILL after " in log
        assert f"private nats-server restarted pid={nats_pid} restarts=1" in log

        # No cleanup runs in a SIGKILLed server: its children must go by themselves, the
        # agent even with a job running whose result can no longer go anywhere.
        lab = _lab(prefix)
        router = next(ns for ns in lab["namespaces"] if ns["role"] == "router")
        client.run_diagnostics(router["uuid"], "ping", lab["targets"]["web"], "-c 100 -i 0.2")
        _until(lambda: bool(tool_pids(router["namespace"], "ping")), "the ping to run", 20)
        serve.proc.kill()
        serve.proc.wait()
        _until(lambda: not alive(nats_pid), "the nats-server to die with serve", 20)
        _until(lambda: not alive(agent_pid), "the agent to die with serve", 20)
        _until(lambda: not tool_pids(router["namespace"], "ping"), "its tool to die too", 10)
    finally:
        serve.stop()
        for pid in (nats_pid, agent_pid):
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_demo_restarts_its_killed_agent(prefix: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    demo = CliProcess(
        "demo", "--port", "0", "--lab-prefix", prefix, "--data-dir", str(data_dir),
        log=tmp_path / "demo.log",
    )  # fmt: skip
    try:
        url = demo.wait_for(r"web UI:\s+(http://\S+)/$", timeout=180).group(1)
        client = _client(url, data_dir)
        assert _host_up(client)
        first = _child(demo.proc.pid, "cloudiag agent")

        os.kill(first, signal.SIGKILL)
        second = _child(demo.proc.pid, "cloudiag agent", not_pid=first)
        # The first one's host is still Up (its heartbeats have not expired yet): wait
        # for the new one to be listening before a job is sent to it.
        _until(
            lambda: demo.log.read_text().count("cloudiag.agent.agent agent started") == 2,
            "the new agent to start",
        )
        _until(lambda: _host_up(client), "the host to be Up again")
        _ping_works(client, prefix)
        log = demo.log.read_text()
        assert "local agent killed by SIGKILL after " in log
        assert f"local agent restarted pid={second} restarts=1" in log
    finally:
        assert demo.stop() == 0, demo.output()
    assert "restarts=2" not in demo.log.read_text()  # Ctrl-C stopped it: no restart.
