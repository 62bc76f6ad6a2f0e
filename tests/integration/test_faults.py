"""Faults with real processes, one job at a time: the agent killed, the VM stopped, the
server killed or shut down, the database unreachable. Each asserts the job's final state and
its message. Issue 9's scenarios with many jobs at once (NATS killed, the agent paused past
a deadline, twenty jobs on a killed server, PostgreSQL stopped) are in test_outages.py."""

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
    """The job waits for the truth rather than guess from a silent agent: the restarted
    agent finds the job its predecessor left running in its job table and fails it."""
    vm = stack.vm("router")
    jobid = stack.start_job(
        "router", "traceroute", stack.lab["targets"]["unreachable"], "-n -q 1 -w 2 -m 10"
    )
    stack.wait_for(lambda: _tool_running(vm["namespace"], "traceroute"), "traceroute to run")
    stack.stop_agent(signal.SIGKILL)
    try:
        # The tool died with its agent, not at its own pace.
        stack.wait_for(lambda: not _tool_running(vm["namespace"], "traceroute"), "no orphan", 5)
        stack.wait_for(lambda: stack.host_state() == "Disconnected", "host Disconnected", 10)
        # Nobody has said the job is lost: it is still pending, not failed on a guess.
        assert stack.ok("queryAsyncJobResult", jobid=jobid)["jobstatus"] == 0
    finally:
        # As its supervisor would: the new agent process finds the job its predecessor
        # left running in the job table and ends it.
        restarted = time.monotonic()
        stack.start_agent()
    job = stack.wait_job(jobid, timeout=15)
    assert time.monotonic() - restarted < 10  # its limit is 600 s: this is the job table
    assert job["jobstatus"] == 2
    assert job["jobresult"]["errortext"] == (
        "The agent restarted during the job; its output is lost; run the diagnostic again"
    )
    assert stack.host_state() == "Up"
    job = stack.run("router", "ping", stack.lab["targets"]["web"], "-c 1")
    assert job["jobresult"]["diagnostics"]["exitcode"] == "0"


def test_vm_stopped_during_a_diagnostic(stack: Stack) -> None:
    # A VM whose output streams on every executor (the CPVM's CloudStack script has none
    # until its end, see test_ssh_faults).
    vm = stack.vm("secondarystoragevm")
    jobid = stack.start_job(
        "secondarystoragevm", "ping", stack.lab["targets"]["web"], "-c 20 -i 0.5"
    )
    stack.wait_for(lambda: _tool_running(vm["namespace"], "ping"), "ping to run")
    time.sleep(1)
    assert cloudiag("lab", "stop", "--prefix", stack.prefix, vm["name"]).returncode == 0
    try:
        job = stack.wait_job(jobid, timeout=20)
        assert job["jobstatus"] == 2
        if stack.executor == "ssh":
            # Over SSH a stopped VM is a session that ended under the job, as on a cloud.
            assert job["jobresult"]["errortext"].startswith(
                f"the session to {vm['name']} ended during the job: the SSH connection was lost"
            ), job["jobresult"]["errortext"]
        else:
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


def test_server_killed_while_jobs_run(stack: Stack) -> None:
    """A result that ends while its server is dead waits in the results stream and any
    server stores it; the restarted server stops the tool it left running on the agent."""
    vm = stack.vm("secondarystoragevm")
    server_dir = stack.data_dir / "doomed"
    proc, port = start_server(
        stack.database_url, stack.nats_url, stack.data_dir, "doomed.log", server_dir=server_dir
    )
    url = f"http://127.0.0.1:{port}"
    try:
        stack.wait_for(lambda: httpx.get(f"{url}/client/api").status_code == 401, "API")
        web = stack.lab["targets"]["web"]
        short = stack.start_job("secondarystoragevm", "ping", web, "-c 6 -i 0.5", url=url)
        long = stack.start_job("secondarystoragevm", "ping", web, "-c 100 -i 0.5", url=url)
        stack.wait_for(lambda: len(tool_pids(vm["namespace"], "ping")) == 2, "both pings")
        proc.kill()
        proc.wait()
        assert stack.ok("queryAsyncJobResult", jobid=short)["jobstatus"] == 0
        # Another server stores the result that ends meanwhile; it leaves the job its live
        # owner (as far as it knows: the heartbeat is fresh) still runs.
        other, _ = start_server(stack.database_url, stack.nats_url, stack.data_dir, "bystander.log")
        try:
            done = stack.wait_job(short, timeout=15)
            assert done["jobstatus"] == 1, done
            assert "6 packets transmitted, 6 received" in done["jobresult"]["diagnostics"]["stdout"]
            assert stack.ok("queryAsyncJobResult", jobid=long)["jobstatus"] == 0
        finally:
            stop(other)
        # The same server (its data directory, hence its id) starts again on another port
        # and stops the tool it left running, keeping its output so far.
        proc, port = start_server(
            stack.database_url,
            stack.nats_url,
            stack.data_dir,
            "doomed-again.log",
            server_dir=server_dir,
        )
        url = f"http://127.0.0.1:{port}"
        stack.wait_for(lambda: httpx.get(f"{url}/client/api").status_code == 401, "API again")
        job = stack.wait_job(long, timeout=15)
        assert job["jobstatus"] == 2
        assert job["jobresult"]["errortext"] == (
            "The management server stopped while the job ran; run the diagnostic again"
        )
        assert "icmp_seq=1 " in job["jobresult"]["diagnostics"]["stdout"]
        stack.wait_for(lambda: not tool_pids(vm["namespace"], "ping"), "the ping stopped", 5)
        events = stack.ok("listEvents", resourceid=vm["uuid"], pagesize=500)["event"]
        for jobid in (short, long):
            states = [e["state"] for e in events if e.get("jobid") == jobid]
            assert sorted(states) == ["Completed", "Started"], states
    finally:
        stop(proc)


def test_server_shutdown_stops_its_jobs_on_the_agents(stack: Stack) -> None:
    # A VM whose tools can be stopped on every executor (not the CPVM's CloudStack script).
    vm = stack.vm("secondarystoragevm")
    proc, port = start_server(stack.database_url, stack.nats_url, stack.data_dir, "stopped.log")
    url = f"http://127.0.0.1:{port}"
    try:
        stack.wait_for(lambda: httpx.get(f"{url}/client/api").status_code == 401, "API")
        jobid = stack.start_job(
            "secondarystoragevm", "ping", stack.lab["targets"]["web"], "-c 40 -i 0.5", url=url
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
