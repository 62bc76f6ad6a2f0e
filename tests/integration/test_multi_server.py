"""Several management servers on one PostgreSQL and one NATS: a job started through one is
queried, streamed and cancelled through another, and a killed server's jobs are taken over
by the others and followed to their end.

Its own stack (not the shared one): every server of it sweeps each second, so a server is
judged dead three seconds after its last heartbeat, and the shared stack's servers (which
beat every 30 s) would look dead to these.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.stack import Stack, cs_signature, launch, start_server, stop, tool_pids
from tests.integration.test_streaming import _whole_stream

SWEEP = {"CLOUDIAG_SWEEP_INTERVAL": "1"}
#: A dead server's jobs change owner within three intervals and one sweep; with slack.
TAKEOVER_WITHIN = 15.0


@pytest.fixture(scope="module")
def fleet(lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack on PostgreSQL whose servers sweep every second."""
    data_dir = tmp_path_factory.mktemp("fleet")
    with launch("postgresql", lab, data_dir, server_env=SWEEP) as st:
        yield st


class Server:
    """One more `cloudiag serve` of the fleet, with its own identity."""

    def __init__(self, st: Stack, name: str) -> None:
        self.dir = st.data_dir / name
        self.proc: subprocess.Popen[str]
        self.proc, port = start_server(
            st.database_url, st.nats_url, st.data_dir, f"{name}.log", SWEEP, server_dir=self.dir
        )
        self.url = f"http://127.0.0.1:{port}"
        st.wait_for(lambda: httpx.get(f"{self.url}/client/api").status_code == 401, name)

    @property
    def id(self) -> str:
        return (self.dir / "server-id").read_text().strip()


@pytest.fixture
def second(fleet: Stack) -> Iterator[Server]:
    """A second server of the fleet, stopped after the test."""
    server = Server(fleet, "second")
    try:
        yield server
    finally:
        stop(server.proc)


def _owner(st: Stack, jobid: str) -> str:
    async def ask() -> str:
        conn = await asyncpg.connect(st.database_url.replace("+asyncpg", ""), timeout=5)
        try:
            return str(await conn.fetchval("SELECT server_id FROM async_jobs WHERE id=$1", jobid))
        finally:
            await conn.close()

    return asyncio.run(ask())


def _events(st: Stack, vm: dict[str, Any], jobid: str) -> list[str]:
    events = st.ok("listEvents", resourceid=vm["uuid"], pagesize=500)["event"]
    return sorted(e["state"] for e in events if e.get("jobid") == jobid)


def test_a_job_is_queried_and_streamed_through_another_server(fleet: Stack, second: Server) -> None:
    web = fleet.lab["targets"]["web"]
    jobid = fleet.start_job("router", "ping", web, "-c 4 -i 0.3")
    query = {"apiKey": fleet.admin.apikey, "jobid": jobid}
    query["signature"] = cs_signature(query, fleet.admin.secretkey)
    with httpx.Client() as client:
        events = _whole_stream(client, second.url, query)
    lines = [data for name, data in events if name == "line"]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert events[-1][0] == "end" and events[-1][1]["jobid"] == jobid
    through_second = fleet.call_at(second.url, "queryAsyncJobResult", jobid=jobid).json()
    through_second = through_second["queryasyncjobresultresponse"]
    assert through_second["jobstatus"] == 1, through_second
    stdout = through_second["jobresult"]["diagnostics"]["stdout"]
    assert "4 packets transmitted, 4 received" in stdout
    assert stdout == "".join(line["text"] for line in lines if line["stream"] == "stdout")


def test_a_job_is_cancelled_through_another_server(fleet: Stack, second: Server) -> None:
    vm = fleet.vm("secondarystoragevm")
    web = fleet.lab["targets"]["web"]
    jobid = fleet.start_job("secondarystoragevm", "ping", web, "-c 100 -i 0.5")
    fleet.wait_for(lambda: tool_pids(vm["namespace"], "ping"), "the ping")
    r = fleet.call_at(second.url, "cancelDiagnostics", jobid=jobid)
    assert r.status_code == 200, r.text
    job = fleet.wait_job(jobid, timeout=15)
    assert job["jobstatus"] == 2, job
    assert "cancel" in job["jobresult"]["errortext"].lower()
    assert "icmp_seq=1 " in job["jobresult"]["diagnostics"]["stdout"]
    fleet.wait_for(lambda: not tool_pids(vm["namespace"], "ping"), "the ping stopped", 5)
    assert _events(fleet, vm, jobid) == ["Completed", "Started"]


def test_a_killed_servers_jobs_are_taken_over_and_finished(fleet: Stack, second: Server) -> None:
    """Its job keeps running on the agent; another server becomes its owner within a bounded
    time and stores its result, once, with one completion event."""
    vm = fleet.vm("secondarystoragevm")
    web = fleet.lab["targets"]["web"]
    doomed = Server(fleet, "doomed")
    try:
        jobid = fleet.start_job("secondarystoragevm", "ping", web, "-c 16 -i 0.5", url=doomed.url)
        assert _owner(fleet, jobid) == doomed.id
        fleet.wait_for(lambda: tool_pids(vm["namespace"], "ping"), "the ping")
        doomed.proc.send_signal(signal.SIGKILL)
        doomed.proc.wait()
        fleet.wait_for(
            lambda: _owner(fleet, jobid) not in (doomed.id, "None"),
            "another server's takeover",
            TAKEOVER_WITHIN,
        )
        assert fleet.ok("queryAsyncJobResult", jobid=jobid)["jobstatus"] in (0, 1)
        job = fleet.wait_job(jobid, timeout=20)
        assert job["jobstatus"] == 1, job
        assert "16 packets transmitted, 16 received" in job["jobresult"]["diagnostics"]["stdout"]
        assert _events(fleet, vm, jobid) == ["Completed", "Started"]
    finally:
        stop(doomed.proc)


def test_a_taken_over_job_is_cancelled_by_its_new_owner(fleet: Stack, second: Server) -> None:
    """A long job of a killed server: its new owner stops it on cancel as if it had sent it."""
    vm = fleet.vm("router")
    web = fleet.lab["targets"]["web"]
    doomed = Server(fleet, "doomed-too")
    try:
        jobid = fleet.start_job("router", "ping", web, "-c 100 -i 0.5", url=doomed.url)
        fleet.wait_for(lambda: tool_pids(vm["namespace"], "ping"), "the ping")
        doomed.proc.send_signal(signal.SIGKILL)
        doomed.proc.wait()
        fleet.wait_for(
            lambda: _owner(fleet, jobid) not in (doomed.id, "None"),
            "another server's takeover",
            TAKEOVER_WITHIN,
        )
        assert fleet.ok("queryAsyncJobResult", jobid=jobid)["jobstatus"] == 0
        r = fleet.call_at(second.url, "cancelDiagnostics", jobid=jobid)
        assert r.status_code == 200, r.text
        job = fleet.wait_job(jobid, timeout=15)
        assert job["jobstatus"] == 2, job
        assert "icmp_seq=1 " in job["jobresult"]["diagnostics"]["stdout"]
        fleet.wait_for(lambda: not tool_pids(vm["namespace"], "ping"), "the ping stopped", 5)
        assert _events(fleet, vm, jobid) == ["Completed", "Started"]
    finally:
        stop(doomed.proc)


def test_a_server_id_file_names_the_owner(fleet: Stack) -> None:
    """The fixture's own server owns what it starts (the takeover tests read owners so)."""
    jobid = fleet.start_job("router", "ping", fleet.lab["targets"]["web"], "-c 1")
    server_dir = fleet.server_dir
    assert isinstance(server_dir, Path)
    assert _owner(fleet, jobid) == (server_dir / "server-id").read_text().strip()
    fleet.wait_job(jobid)
