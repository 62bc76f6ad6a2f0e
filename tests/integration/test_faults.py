"""Faults with real processes: the agent killed, the VM stopped, NATS restarted, the server
killed, the database gone. Each asserts the job's final state and its message."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.stack import Stack, cloudiag, start_server, stop, tool_pids
from tests.integration.tcp_proxy import TcpProxy


def _tool_running(namespace: str, tool: str) -> bool:
    return bool(tool_pids(namespace, tool))


def test_agent_killed_during_a_traceroute(stack: Stack) -> None:
    vm = stack.vm("router")
    jobid = stack.start_job(
        "router", "traceroute", stack.lab["targets"]["unreachable"], "-n -q 1 -w 2 -m 10"
    )
    stack.wait_for(lambda: _tool_running(vm["namespace"], "traceroute"), "traceroute to run")
    killed = time.monotonic()
    stack.stop_agent(signal.SIGKILL)
    try:
        job = stack.wait_job(jobid, timeout=30)
        assert time.monotonic() - killed < 10  # its limit is 600 s: this is detection, not timeout
        assert job["jobstatus"] == 2
        assert "disconnected during the job" in job["jobresult"]["errortext"]
        # The tool died with its agent, not at its own pace.
        stack.wait_for(lambda: not _tool_running(vm["namespace"], "traceroute"), "no orphan", 5)
        stack.wait_for(lambda: stack.host_state() == "Disconnected", "host Disconnected", 10)
    finally:
        stack.start_agent()
    assert stack.host_state() == "Up"
    job = stack.run("router", "ping", stack.lab["targets"]["web"], "-c 1")
    assert job["jobresult"]["diagnostics"]["exitcode"] == "0"


def test_vm_stopped_during_a_diagnostic(stack: Stack) -> None:
    vm = stack.vm("consoleproxy")
    jobid = stack.start_job("consoleproxy", "ping", stack.lab["targets"]["web"], "-c 20 -i 0.5")
    stack.wait_for(lambda: _tool_running(vm["namespace"], "ping"), "ping to run")
    time.sleep(1)
    assert cloudiag("lab", "stop", "--prefix", stack.prefix, vm["name"]).returncode == 0
    try:
        job = stack.wait_job(jobid, timeout=20)
        assert job["jobstatus"] == 2
        assert job["jobresult"]["errortext"] == (
            f"The VM {vm['name']} stopped during the diagnostic; its output is partial"
        )
        assert "icmp_seq=1 " in job["jobresult"]["diagnostics"]["stdout"]
    finally:
        assert cloudiag("lab", "start", "--prefix", stack.prefix, vm["name"]).returncode == 0
    stack.wait_for(
        lambda: stack.ok("listSystemVms", id=vm["uuid"])["systemvm"][0]["state"] == "Running",
        "the VM to run again",
    )


def test_nats_restarted_during_and_between_jobs(stack: Stack) -> None:
    jobid = stack.start_job("router", "ping", stack.lab["targets"]["web"], "-c 8 -i 0.5")
    time.sleep(1)
    stack.stop_nats()
    time.sleep(2)
    stack.start_nats()
    job = stack.wait_job(jobid, timeout=30)
    assert job["jobstatus"] in (1, 2)
    if job["jobstatus"] == 1:  # The agent's buffered result arrived after the reconnect.
        assert "8 packets transmitted" in job["jobresult"]["diagnostics"]["stdout"]
    else:
        assert job["jobresult"]["errortext"]
    # Between jobs: the server and the agent reconnected by themselves.
    stack.wait_for(lambda: stack.host_state() == "Up", "the host Up again", 20)
    again = stack.run("secondarystoragevm", "ping", stack.lab["targets"]["web"], "-c 1")
    assert again["jobstatus"] == 1
    assert stack.ok("listAsyncJobs", listall="true")["count"] >= 1
    pending = [
        j for j in stack.ok("listAsyncJobs", listall="true")["asyncjobs"] if j["jobstatus"] == 0
    ]
    assert pending == []


def test_server_killed_while_a_job_runs(stack: Stack) -> None:
    server_dir = stack.data_dir / "doomed"
    proc, port = start_server(
        stack.database_url, stack.nats_url, stack.data_dir, "doomed.log", server_dir=server_dir
    )
    url = f"http://127.0.0.1:{port}"
    try:
        stack.wait_for(lambda: httpx.get(f"{url}/client/api").status_code == 401, "API")
        jobid = stack.start_job(
            "secondarystoragevm", "ping", stack.lab["targets"]["web"], "-c 6 -i 0.5", url=url
        )
        time.sleep(0.8)
        proc.kill()
        proc.wait()
        assert stack.ok("queryAsyncJobResult", jobid=jobid)["jobstatus"] == 0
        # Another server starting changes nothing: it owns nothing of what was left.
        other, other_port = start_server(
            stack.database_url, stack.nats_url, stack.data_dir, "bystander.log"
        )
        try:
            stack.wait_for(
                lambda: httpx.get(f"http://127.0.0.1:{other_port}/client/api").status_code == 401,
                "the other server's API",
            )
            assert stack.ok("queryAsyncJobResult", jobid=jobid)["jobstatus"] == 0
        finally:
            stop(other)
        # The same server (its data directory, hence its id) starts again on another port
        # and fails what it left.
        proc, port = start_server(
            stack.database_url,
            stack.nats_url,
            stack.data_dir,
            "doomed-again.log",
            server_dir=server_dir,
        )
        url = f"http://127.0.0.1:{port}"
        stack.wait_for(lambda: httpx.get(f"{url}/client/api").status_code == 401, "API again")
        job = stack.wait_job(jobid, timeout=10)
        assert job["jobstatus"] == 2
        assert "management server stopped while the job ran" in job["jobresult"]["errortext"]
        # The agent's late answer (the ping ends ~3 s in) changes nothing.
        time.sleep(3.5)
        assert stack.ok("queryAsyncJobResult", jobid=jobid)["jobresult"] == job["jobresult"]
    finally:
        stop(proc)


def test_server_shutdown_stops_its_jobs_on_the_agents(stack: Stack) -> None:
    vm = stack.vm("consoleproxy")
    proc, port = start_server(stack.database_url, stack.nats_url, stack.data_dir, "stopped.log")
    url = f"http://127.0.0.1:{port}"
    try:
        stack.wait_for(lambda: httpx.get(f"{url}/client/api").status_code == 401, "API")
        jobid = stack.start_job(
            "consoleproxy", "ping", stack.lab["targets"]["web"], "-c 40 -i 0.5", url=url
        )
        stack.wait_for(lambda: _tool_running(vm["namespace"], "ping"), "ping to run")
        time.sleep(1)
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.monotonic() - stopping < 10  # the ping had 18 s to go
        assert not _tool_running(vm["namespace"], "ping")  # stopped, not left to run on
        job = stack.ok("queryAsyncJobResult", jobid=jobid)
        assert job["jobstatus"] == 2
        assert "management server shut down" in job["jobresult"]["errortext"]
        assert "icmp_seq=1 " in job["jobresult"]["diagnostics"]["stdout"]  # the output so far
    finally:
        stop(proc)


def test_two_servers_cannot_share_a_data_directory(stack: Stack) -> None:
    server_dir = stack.data_dir / "shared"
    first, port = start_server(
        stack.database_url, stack.nats_url, stack.data_dir, "first.log", server_dir=server_dir
    )
    second: subprocess.Popen[str] | None = None
    try:
        stack.wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/client/api").status_code == 401, "API"
        )
        second, _ = start_server(
            stack.database_url, stack.nats_url, stack.data_dir, "second.log", server_dir=server_dir
        )
        assert second.wait(30) == 1
        log = (stack.data_dir / "second.log").read_text()
        assert "another cloudiag server is running on the data directory" in log
    finally:
        stop(second)
        stop(first)


@pytest.fixture
def proxied_server(stack: Stack) -> Iterator[tuple[str, TcpProxy]]:
    """A server whose PostgreSQL connection goes through a proxy the test can cut."""
    if stack.backend != "postgresql":
        pytest.skip("the database outage is tested on PostgreSQL (SQLite is a local file)")
    db = urlsplit(stack.database_url)
    proxy = TcpProxy(db.hostname or "127.0.0.1", db.port or 5432)
    proxy.start()
    url_via_proxy = stack.database_url.replace(
        f"{db.hostname}:{db.port}", f"127.0.0.1:{proxy.port}"
    )
    proc, port = start_server(url_via_proxy, stack.nats_url, stack.data_dir, "proxied.log")
    url = f"http://127.0.0.1:{port}"
    try:
        stack.wait_for(lambda: httpx.get(f"{url}/client/api").status_code == 401, "API")
        yield url, proxy
    finally:
        stop(proc)
        proxy.close()


def test_database_outage_is_530_and_heals(
    stack: Stack, proxied_server: tuple[str, TcpProxy]
) -> None:
    url, proxy = proxied_server

    def call(command: str, **params: str) -> httpx.Response:
        return stack.call_at(url, command, **params)

    assert call("listZones").status_code == 200
    jobs_before = stack.ok("listAsyncJobs", listall="true")["count"]
    proxy.cut()
    r = call("listZones")
    assert r.status_code == 530
    assert r.json()["listzonesresponse"]["errortext"] == (
        "The database is unavailable; try again shortly"
    )
    r = call(
        "runDiagnostics",
        targetid=stack.vm("router")["uuid"],
        type="ping",
        ipaddress=stack.lab["targets"]["web"],
    )
    assert r.status_code == 530
    proxy.start()
    stack.wait_for(lambda: call("listZones").status_code == 200, "the API to heal", 20)
    assert stack.ok("listAsyncJobs", listall="true")["count"] == jobs_before  # nothing half-written
    r = call(
        "runDiagnostics",
        targetid=stack.vm("router")["uuid"],
        type="ping",
        ipaddress=stack.lab["targets"]["web"],
        params="-c 1",
    )
    assert r.status_code == 200
    assert stack.wait_job(r.json()["rundiagnosticsresponse"]["jobid"])["jobstatus"] == 1
