"""A lab of 2 zones, 2 hosts and 2 routers per host, run by `cloudiag demo` with one agent
process per host: listZones, listHosts, listRouters and listSystemVms show each VM on its
own host and zone, a ping runs on a router of each host and on each zone's SSVM (entered
as a namespace, and over SSH from each host's own cloud0), a killed agent is restarted by
the demo, and Ctrl-C takes everything down.

Its own lab prefix and data directory; the lab is taken down even on failure.
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
from typing import Any

import pytest

from cloudiag.client import ApiKey, Client
from tests.integration.cli_process import CliProcess
from tests.integration.test_lab import new_prefix, skip_unless_possible

pytestmark = pytest.mark.lab

RUNNING = r"^cloudiag demo is running$"
URL = r"web UI:\s+(http://\S+)/$"
SIZE = ("--zones", "2", "--hosts", "2", "--routers", "2")


@pytest.fixture
def prefix() -> Iterator[str]:
    """A lab prefix nobody else uses; its lab is taken down at the end whatever happened."""
    skip_unless_possible()
    name = new_prefix()
    yield name
    subprocess.run([sys.executable, "-m", "cloudiag", "lab", "down", "--prefix", name], check=False)


def _agents(data: Path) -> dict[int, int]:
    """Lab host number -> pid of the live `cloudiag agent` of the demo with that data
    directory (its agents' config files are there)."""
    found: dict[int, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        ours = any(word.startswith(f"{data}/") for word in argv)
        if "agent" in argv and ours and "--lab-host" in argv and state != "Z":
            found[int(argv[argv.index("--lab-host") + 1])] = int(pid)
    return found


def _wait(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _ping(client: Client, vm_id: str, address: str) -> dict[str, Any]:
    job = client.wait_job(client.run_diagnostics(vm_id, "ping", address, "-c 1"), timeout=120)
    return job.model_dump()


@pytest.mark.parametrize("executor", ["netns", "ssh"])
def test_a_sized_lab_with_one_agent_per_host(prefix: str, tmp_path: Path, executor: str) -> None:
    data = tmp_path / "data"
    demo = CliProcess(
        *("demo", "--port", "0", "--lab-prefix", prefix, "--data-dir", str(data), *SIZE),
        *("--executor", executor),
        log=tmp_path / "demo.log",
    )
    try:
        demo.wait_for(RUNNING, timeout=240)
        url = demo.wait_for(URL).group(1)
        creds = json.loads((data / "credentials.json").read_text())
        lab = json.loads(
            subprocess.run(
                [sys.executable, "-m", "cloudiag", "lab", "status", "--prefix", prefix, "--json"],
                capture_output=True, text=True, check=True,
            ).stdout
        )  # fmt: skip
        assert lab["up"] is True and lab["size"] == {"zones": 2, "hosts": 2, "routers": 2}
        assert (lab["ssh"] is not None) == (executor == "ssh")
        hosts = {h["uuid"]: h for h in lab["hosts"]}
        zones = {z["uuid"]: z for z in lab["zones"]}
        assert len(hosts) == 2 and len(zones) == 2
        by_name = {ns["name"]: ns for ns in lab["namespaces"]}

        with Client(url, ApiKey(creds["apikey"], creds["secretkey"])) as client:

            def all_up() -> bool:
                listed = client.call("listHosts").get("host", [])
                return len(listed) == 2 and all(h["state"] == "Up" for h in listed)

            _wait(all_up, "both hosts Up")
            listed_hosts = {h["id"]: h for h in client.call("listHosts")["host"]}
            assert set(listed_hosts) == set(hosts)
            for host_id, host in hosts.items():
                assert listed_hosts[host_id]["zoneid"] == host["zone"]
                assert listed_hosts[host_id]["name"] == host["namespace"]
            assert {z["id"] for z in client.call("listZones")["zone"]} == set(zones)

            routers = client.call("listRouters", listall=True)["router"]
            assert len(routers) == 4
            for r in routers:
                declared = by_name[r["name"]]
                host = next(h for h in hosts.values() if h["number"] == declared["host"])
                assert (r["hostid"], r["zoneid"]) == (host["uuid"], declared["zone"])
                assert r["state"] == "Running"
            system_vms = client.call("listSystemVms")["systemvm"]
            ssvms = [v for v in system_vms if v["systemvmtype"] == "secondarystoragevm"]
            assert {v["zoneid"] for v in ssvms} == set(zones)
            assert len([v for v in system_vms if v["systemvmtype"] == "consoleproxy"]) == 2

            # A ping on one router of each host and on each zone's SSVM, each by its host's
            # own agent (over SSH: from that host's cloud0, the only one that reaches it).
            targets = [next(r for r in routers if r["hostid"] == h) for h in hosts]
            for vm in [*targets, *ssvms]:
                job = _ping(client, vm["id"], "203.0.113.1")
                assert job["jobstatus"] == 1, job
                result = job["jobresult"]["diagnostics"]
                assert result["exitcode"] == "0", result
                assert "1 received" in result["stdout"], result

            # The demo supervises every agent: one killed is started again.
            before = _agents(data)
            assert set(before) == {1, 2}
            os.kill(before[2], signal.SIGKILL)
            _wait(lambda: _agents(data).get(2) not in (None, before[2]), "host 2's agent again")
            assert _agents(data)[1] == before[1]
            _wait(all_up, "both hosts Up after the restart")
            job = _ping(client, targets[1]["id"], "203.0.113.1")
            assert job["jobstatus"] == 1, job
    finally:
        assert demo.stop() == 0, demo.output()
    assert _agents(data) == {}
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"{prefix}-" not in left


def test_down_removes_a_big_lab_killed_halfway_through_up(prefix: str) -> None:
    up = subprocess.Popen(
        [sys.executable, "-m", "cloudiag", "lab", "up", "--prefix", prefix,
         "--hosts", "4", "--routers", "25"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(lambda: f"{prefix}-r-" in _namespaces(), "the first VMs of the lab")
    finally:
        up.kill()
        up.wait()
    assert any(ns.startswith(f"{prefix}-") for ns in _namespaces().split())
    for _ in range(2):  # Idempotent: the second finds nothing to do.
        done = subprocess.run(
            [sys.executable, "-m", "cloudiag", "lab", "down", "--prefix", prefix],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert not [ns for ns in _namespaces().split() if ns.startswith(f"{prefix}-")]
    assert not list(Path("/etc/netns").glob(f"{prefix}-*"))
    assert not Path("/run/cloudiag-lab", prefix).exists()


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
