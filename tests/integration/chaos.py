"""Faults with real processes, for the scenario tests and the soak bench.

Outages of the nats-server, the agent and the server (killed, paused, restarted on the same
store, port and identity), and the evidence read afterwards: the jobs as the API shows them,
their Completed events, the agent's JSON log (one "running" line per run of a job) and its
status reply (how many processes it has spawned).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from cloudiag.bus import subjects
from cloudiag.bus.messages import RunRequest, StatusReply
from cloudiag.client import ApiCallError
from tests.integration.stack import Stack, launch, start_server, stop, tool_pids

#: No admission limit gets in the way of many jobs at once on three VMs and one user.
LIFTED = {
    "CLOUDIAG_LIMIT_PER_VM": "0",
    "CLOUDIAG_LIMIT_PER_HOST": "0",
    "CLOUDIAG_LIMIT_PER_USER": "0",
    "CLOUDIAG_RATE_LIMIT": "0",
}
#: The logs as JSON lines, each with the job id on a job's path: the tests count them.
JSON_LOGS = {"CLOUDIAG_LOG_FORMAT": "json"}
#: The lab's system VMs, which the jobs of a scenario are spread over.
SYSTEM_VMS = ("router", "secondarystoragevm", "consoleproxy")
#: The agent's log line as a job's tool starts, and as it ends (agent/dispatch.py).
RUNNING = re.compile(r"^running ")
FINISHED = re.compile(r"^finished exitcode=(\S+)")


@contextlib.contextmanager
def chaos_stack(
    lab: dict[str, Any],
    data_dir: Path,
    *,
    database_url: str | None = None,
    server_env: dict[str, str] | None = None,
    heartbeat: float = 1.0,
) -> Iterator[Stack]:
    """A stack of its own (nats-server, server, agent) that a scenario may break: limits
    lifted, JSON logs; SQLite unless `database_url` is given (a PostgreSQL of the test's)."""
    with launch(
        "sqlite" if database_url is None else "postgresql",
        lab,
        data_dir,
        heartbeat,
        database_url=database_url,
        server_env={**LIFTED, **JSON_LOGS, **(server_env or {})},
        agent_env=JSON_LOGS,
    ) as st:
        yield st


def start_pings(
    st: Stack, counts: Sequence[int], interval: float = 0.2, url: str = ""
) -> dict[str, int]:
    """One `ping -c COUNT -i interval` per count, spread over the system VMs; job id → count."""
    web = st.lab["targets"]["web"]
    jobs = {}
    for i, count in enumerate(counts):
        role = SYSTEM_VMS[i % len(SYSTEM_VMS)]
        jobs[st.start_job(role, "ping", web, f"-c {count} -i {interval}", url=url)] = count
    return jobs


def tools_running(st: Stack, tool: str = "ping") -> int:
    """Processes named `tool` in the lab's system VMs."""
    return sum(len(tool_pids(st.vm(role)["namespace"], tool)) for role in SYSTEM_VMS)


def kill_tools(st: Stack, tool: str = "ping") -> None:
    """SIGKILL the processes named `tool` in the system VMs: a failed test's leftovers, which
    would otherwise still run during the next test."""
    for role in SYSTEM_VMS:
        for pid in tool_pids(st.vm(role)["namespace"], tool):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def wait_listening(url: str, timeout: float = 15) -> None:
    """Wait until something accepts TCP connections at the URL's host and port."""
    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1),
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens at {parts.hostname}:{parts.port}")


def kill_nats(st: Stack) -> None:
    """SIGKILL the nats-server: no goodbye, JetStream's store as the kill left it."""
    stop(st.nats, signal.SIGKILL)


def restart_nats(st: Stack) -> None:
    """Start the nats-server again on the same port and JetStream store; wait until it listens."""
    st.start_nats()
    wait_listening(st.nats_url)


def nats_outage(st: Stack, seconds: float) -> None:
    """The nats-server killed for `seconds`, then back on the same store."""
    kill_nats(st)
    time.sleep(seconds)
    restart_nats(st)


@contextlib.contextmanager
def agent_paused(st: Stack) -> Iterator[None]:
    """The agent SIGSTOPped for the block (SIGCONT at the end, even on failure)."""
    assert st.agent is not None
    st.agent.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        st.agent.send_signal(signal.SIGCONT)


def restart_server(
    st: Stack, log_name: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start the stack's server again: same identity (server dir) and port, so the same URL."""
    assert st.server_dir is not None
    env = {**LIFTED, **JSON_LOGS, "CLOUDIAG_HEARTBEAT_INTERVAL": str(st.heartbeat), **(env or {})}
    port = urlsplit(st.url).port
    st.server, _ = start_server(
        st.database_url, st.nats_url, st.data_dir, log_name, env, port, st.server_dir
    )
    st.wait_for(lambda: api_up(st.url), "the restarted server's API", 30)
    return st.server


def api_up(url: str) -> bool:
    """Whether a server answers its API (401 to an unsigned call)."""
    try:
        return httpx.get(f"{url}/client/api", timeout=2).status_code == 401
    except httpx.HTTPError:
        return False


def host_id(st: Stack) -> str:
    """The lab host's id."""
    return str(st.ok("listHosts")["host"][0]["id"])


def agent_status(st: Stack, timeout: float = 10) -> StatusReply:
    """The agent's live status reply (running jobs, processes spawned so far)."""

    async def ask() -> StatusReply:
        import nats

        nc = await nats.connect(
            st.nats_url, connect_timeout=5, max_reconnect_attempts=0, **st.bus_options()
        )
        try:
            reply = await nc.request(subjects.agent_status(host), b"", timeout=timeout)
        finally:
            await nc.close()
        return StatusReply.model_validate_json(reply.data)

    host = host_id(st)
    return asyncio.run(ask())


def publish_request(st: Stack, req: RunRequest, msg_id: str) -> bool:
    """Put a request in the host's request stream as a server would (or a replayer);
    whether the stream stored it (False: dropped as a duplicate of `msg_id`)."""

    async def publish() -> bool:
        import nats

        nc = await nats.connect(
            st.nats_url, connect_timeout=5, max_reconnect_attempts=0, **st.bus_options()
        )
        try:
            ack = await nc.jetstream().publish(
                subjects.agent_request(host, req.job_id),
                req.encode(),
                stream=subjects.REQUESTS_STREAM,
                headers={"Nats-Msg-Id": msg_id},
            )
        finally:
            await nc.close()
        return not ack.duplicate

    host = host_id(st)
    return asyncio.run(publish())


def agent_said(st: Stack, job_id: str, text: str) -> bool:
    """Whether the agent logged a line containing `text` for the job."""
    return any(
        r.get("job_id") == job_id and text in str(r.get("message", ""))
        for r in log_records(st.data_dir / "agent.log")
    )


def streams_created(st: Stack) -> dict[str, Any]:
    """When each of the durable streams (requests, results, the agents' job table) was made:
    unchanged across a restart of the nats-server means it kept its JetStream store."""

    async def ask() -> dict[str, Any]:
        import nats

        # A nats-server just started may need a moment before JetStream answers.
        nc = await nats.connect(
            st.nats_url, connect_timeout=5, max_reconnect_attempts=0, **st.bus_options()
        )
        try:
            js = nc.jetstream(timeout=10)
            names = (
                subjects.REQUESTS_STREAM,
                subjects.RESULTS_STREAM,
                f"KV_{subjects.JOBS_BUCKET}",
            )
            created = {name: (await js.stream_info(name)).created for name in names}
        finally:
            await nc.close()
        assert all(created.values()), created
        return created

    return asyncio.run(ask())


def log_records(path: Path) -> list[dict[str, Any]]:
    """The JSON records of a log file (lines that are not JSON, e.g. a crash's print, skipped)."""
    records = []
    if not path.exists():
        return records
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                records.append(entry)
    return records


def agent_runs(st: Stack) -> collections.Counter[str]:
    """How many times the agent (every run of it) started each job's tool, by job id."""
    return collections.Counter(
        str(r["job_id"])
        for r in log_records(st.data_dir / "agent.log")
        if r.get("job_id") and RUNNING.match(str(r.get("message", "")))
    )


def agent_finishes(st: Stack) -> dict[str, list[tuple[float, str]]]:
    """When (Unix time) and with which exit code the agent logged each job's tool ending."""
    ends: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
    for r in log_records(st.data_dir / "agent.log"):
        found = FINISHED.match(str(r.get("message", "")))
        if r.get("job_id") and found:
            at = datetime.fromisoformat(str(r["time"])).timestamp()
            ends[str(r["job_id"])].append((at, found.group(1)))
    return dict(ends)


def agent_exitcodes(st: Stack) -> dict[str, list[str]]:
    """The exit codes the agent logged as each job's tool ended, by job id."""
    return {job: [code for _, code in ends] for job, ends in agent_finishes(st).items()}


def finished_between(st: Stack, since: float, until: float) -> set[str]:
    """The jobs whose tool ended on the agent between two Unix times (from its log's times):
    a test's evidence that its outage overlapped the jobs' ends."""
    return {
        job
        for job, ends in agent_finishes(st).items()
        if any(since <= at <= until for at, _ in ends)
    }


def all_jobs(st: Stack) -> dict[str, dict[str, Any]]:
    """Every async job of the stack's database, by id, as listAsyncJobs shows it."""
    listed = st.ok("listAsyncJobs", listall="true", pagesize="-1").get("asyncjobs", [])
    return {str(j["jobid"]): j for j in listed}


def wait_final(st: Stack, ids: Sequence[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Wait until every one of the jobs is final; them by id (AssertionError names the rest).

    Polls the API; a server that is down or has no database for the moment is waited on.
    """
    deadline = time.monotonic() + timeout
    pending: list[str] = list(ids)
    while True:
        with contextlib.suppress(httpx.HTTPError, ApiCallError):
            jobs = all_jobs(st)
            pending = [i for i in ids if jobs.get(i, {}).get("jobstatus", 0) == 0]
            if not pending:
                return {i: jobs[i] for i in ids}
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(pending)} of {len(ids)} jobs not final: {pending[:5]}")
        time.sleep(0.25)


def completion_events(st: Stack) -> dict[str, list[dict[str, Any]]]:
    """The Completed events of the audit trail, by the job id each names."""
    events = st.ok("listEvents", listall="true", pagesize="-1").get("event", [])
    found: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for event in events:
        if event.get("state") == "Completed" and event.get("jobid"):
            found[str(event["jobid"])].append(event)
    return dict(found)
