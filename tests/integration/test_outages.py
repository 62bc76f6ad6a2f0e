"""Issue 9's fault scenarios with real processes: NATS killed during jobs, the agent paused
past a request's deadline, the server killed with jobs running, PostgreSQL stopped while
jobs finish; and around them: jobs submitted while NATS is down, a request copied or
replayed on the bus, two faults at once. Each asserts every job's final state, exit code,
complete output and its one Completed event, and that no tool ran twice (the agent's log).

All but the database outage run on SQLite only: their faults are in NATS, the agent and the
server process, and the database stays up throughout (the engine's database code is the
same on both backends, and the shared `stack` covers both). The database outage runs on a
PostgreSQL of its own (tests/pg_server.py), stopped and started by the test.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudiag.bus.messages import RunRequest
from tests.integration import chaos
from tests.integration.stack import Stack, start_server, stop


@pytest.fixture(scope="module")
def st(
    request: pytest.FixtureRequest, lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack of this module's own, which its tests break and mend."""
    failed_before = request.session.testsfailed
    with chaos.chaos_stack(lab, tmp_path_factory.mktemp("outages")) as stack:
        yield stack
        if request.session.testsfailed > failed_before:
            stack.show_logs()


def assert_pinged(job: dict[str, Any], count: int) -> None:
    """The job succeeded with the whole output of its `ping -c count`."""
    assert job["jobstatus"] == 1, job.get("jobresult")
    diagnostics = job["jobresult"]["diagnostics"]
    assert diagnostics["exitcode"] == "0"
    assert f"{count} packets transmitted, {count} received" in diagnostics["stdout"]
    assert f"icmp_seq={count} " in diagnostics["stdout"]  # the last reply too, not a summary


def assert_one_completion(st: Stack, ids: list[str]) -> None:
    """Every one of the jobs has exactly one Completed event."""
    events = chaos.completion_events(st)
    counts = {i: len(events.get(i, [])) for i in ids}
    assert counts == dict.fromkeys(ids, 1)


def assert_ran_once(st: Stack, ids: list[str]) -> None:
    """The agent started every job's tool exactly once."""
    runs = chaos.agent_runs(st)
    assert {i: runs[i] for i in ids} == dict.fromkeys(ids, 1)


@pytest.mark.parametrize("outage", [3, 7, 12])
def test_nats_killed_during_running_jobs(st: Stack, outage: float) -> None:
    """Results the agent sends while NATS is down are stored once it is back, complete."""
    # 2 to 5.6 s each: some end during even the shortest outage, the rest after it.
    jobs = chaos.start_pings(st, [10 + 2 * i for i in range(10)])
    st.wait_for(lambda: chaos.tools_running(st) == 10, "the 10 pings to run")
    time.sleep(1)
    streams = chaos.streams_created(st)
    down = time.time()
    chaos.nats_outage(st, outage)
    assert chaos.streams_created(st) == streams  # the same streams: the store was kept
    assert chaos.finished_between(st, down, time.time()) & set(jobs)  # ended while NATS was down
    final = chaos.wait_final(st, list(jobs), timeout=30)
    for jobid, count in jobs.items():
        assert_pinged(final[jobid], count)
    assert_one_completion(st, list(jobs))
    assert_ran_once(st, list(jobs))
    st.wait_for(lambda: st.host_state() == "Up", "the host Up again", 20)


def test_jobs_submitted_while_nats_is_down(st: Stack) -> None:
    """The API takes jobs while NATS is away; their requests go out once it is back."""
    chaos.kill_nats(st)
    try:
        jobs = chaos.start_pings(st, [3] * 6)
        time.sleep(4)
    finally:
        chaos.restart_nats(st)
    final = chaos.wait_final(st, list(jobs), timeout=30)
    for jobid, count in jobs.items():
        assert_pinged(final[jobid], count)
    assert_one_completion(st, list(jobs))
    assert_ran_once(st, list(jobs))


def test_agent_paused_past_a_requests_deadline(st: Stack) -> None:
    """A request the agent takes after its deadline is discarded: the job fails once, clearly,
    and its tool never runs, not even after the agent resumes."""
    start_timeout = 3
    proc, port = start_server(
        st.database_url,
        st.nats_url,
        st.data_dir,
        "deadline.log",
        env={**chaos.LIFTED, **chaos.JSON_LOGS, "CLOUDIAG_START_TIMEOUT": str(start_timeout)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        st.wait_for(lambda: chaos.api_up(url), "the API")
        spawned = chaos.agent_status(st).spawned
        with chaos.agent_paused(st):
            jobid = st.start_job("router", "ping", st.lab["targets"]["web"], "-c 1", url=url)
            time.sleep(start_timeout + 3)
        job = chaos.wait_final(st, [jobid], timeout=20)[jobid]
        assert job["jobstatus"] == 2
        # Discarded by the agent when it resumes, or withdrawn by the server before that.
        assert re.fullmatch(
            r"The agent for host \S+ (refused the job: the request reached the agent [\d.]+ s "
            r"after its deadline to start \(the agent was paused or unreachable\); it was not "
            rf"run|did not take the job within {start_timeout} s \(it is paused, overloaded or "
            r"unreachable\))",
            job["jobresult"]["errortext"],
        ), job["jobresult"]
        time.sleep(3)  # The agent has caught up: anything it would run, it has started.
        assert chaos.agent_status(st).spawned == spawned
        assert chaos.agent_runs(st)[jobid] == 0
        assert chaos.tools_running(st) == 0
        assert chaos.all_jobs(st)[jobid] == job  # failed once: nothing came after
        assert_one_completion(st, [jobid])
        # The agent serves as before.
        again = st.start_job("router", "ping", st.lab["targets"]["web"], "-c 2 -i 0.2", url=url)
        assert_pinged(chaos.wait_final(st, [again], timeout=20)[again], 2)
    finally:
        stop(proc)


def test_agent_paused_within_a_requests_deadline(st: Stack) -> None:
    """A request that waits for a paused agent less than its deadline runs when it resumes."""
    with chaos.agent_paused(st):
        jobid = st.start_job("router", "ping", st.lab["targets"]["web"], "-c 2 -i 0.2")
        time.sleep(4)  # past the host's Disconnected (3 heartbeats), within the 60 s to start
    assert_pinged(chaos.wait_final(st, [jobid], timeout=20)[jobid], 2)
    assert_one_completion(st, [jobid])
    assert_ran_once(st, [jobid])


def test_request_replayed_on_the_bus_never_runs_twice(st: Stack) -> None:
    """A finished job's request put in the stream again, as a copy (same message id) or a
    replay (another id, a fresh deadline): the agent's job table knows it; nothing runs."""
    web, vm = st.lab["targets"]["web"], st.vm("router")
    jobid = st.start_job("router", "ping", web, "-c 2 -i 0.2")
    job = chaos.wait_final(st, [jobid], timeout=20)[jobid]
    assert_pinged(job, 2)
    spawned = chaos.agent_status(st).spawned
    again = RunRequest(
        job_id=jobid,
        start_by=time.time() + 60,
        vm_id=vm["uuid"],
        type="ping",
        address=web,
        params=["-c", "2", "-i", "0.2"],
        time_limit=120,
    )
    assert not chaos.publish_request(st, again, msg_id=jobid)  # the stream drops a copy
    assert chaos.publish_request(st, again, msg_id=f"replay-{jobid}")
    st.wait_for(
        lambda: chaos.agent_said(st, jobid, "delivered again"), "the agent to discard it", 10
    )
    time.sleep(1)
    assert chaos.agent_status(st).spawned == spawned
    assert chaos.agent_runs(st)[jobid] == 1
    assert chaos.all_jobs(st)[jobid] == job
    assert_one_completion(st, [jobid])


def test_server_killed_with_jobs_running(st: Stack) -> None:
    """A server killed with 20 jobs running: restarted, it ends all 20 within their time limit
    + 5 s, stops their tools on the agent and writes each one's completion event."""
    limit = 60
    server_dir = st.data_dir / "killed-server"
    env = {**chaos.LIFTED, **chaos.JSON_LOGS, "CLOUDIAG_DIAGNOSTICS_TIMEOUT": str(limit)}
    proc, port = start_server(
        st.database_url, st.nats_url, st.data_dir, "killed.log", env=env, server_dir=server_dir
    )
    url = f"http://127.0.0.1:{port}"
    try:
        st.wait_for(lambda: chaos.api_up(url), "the API")
        submitted = time.monotonic()
        # 50 s pings: only a cancel, not their own end or their limit, stops them soon.
        jobs = chaos.start_pings(st, [100] * 20, interval=0.5, url=url)
        st.wait_for(lambda: chaos.tools_running(st) == 20, "the 20 pings to run")
        proc.kill()
        proc.wait()
        proc, _ = start_server(
            st.database_url,
            st.nats_url,
            st.data_dir,
            "killed-again.log",
            env=env,
            port=port,
            server_dir=server_dir,
        )
        restarted = time.monotonic()
        st.wait_for(lambda: chaos.api_up(url), "the restarted server's API", 30)
        final = chaos.wait_final(st, list(jobs), timeout=limit + 5 - (time.monotonic() - submitted))
        st.wait_for(lambda: chaos.tools_running(st) == 0, "the tools to be stopped", 5)
        assert time.monotonic() - restarted < 15  # stopped by the restart, not by the limit
        for job in final.values():
            assert job["jobstatus"] == 2
            assert job["jobresult"]["errortext"] == (
                "The management server stopped while the job ran; run the diagnostic again"
            )
            # Cancelled on the agent, with the output so far.
            assert job["jobresult"]["cancelled"] is True
            assert "icmp_seq=1 " in job["jobresult"]["diagnostics"]["stdout"]
        assert_one_completion(st, list(jobs))
        assert_ran_once(st, list(jobs))
    finally:
        stop(proc)


def test_long_nats_outage_with_many_jobs_printing(st: Stack) -> None:
    """A NATS outage long enough for the jobs' output to overflow the agent's buffer of
    messages waiting for the bus: the lines may be lost, the jobs must not be."""
    # 150 pings printing 5 lines a second each: ~150 KB/s, over 2 MiB in the first 15 s.
    jobs = chaos.start_pings(st, [100] * 150)
    st.wait_for(lambda: chaos.tools_running(st) >= 140, "the pings to run", 30)
    chaos.nats_outage(st, 20)
    final = chaos.wait_final(st, list(jobs), timeout=60)
    for jobid, count in jobs.items():
        assert_pinged(final[jobid], count)
    assert_one_completion(st, list(jobs))
    assert_ran_once(st, list(jobs))


def test_agent_killed_while_nats_is_down_after_its_job_ended(st: Stack) -> None:
    """Two faults at once: the tool ends while NATS is away, then its agent is killed before
    the bus is back; the result it held must still reach the database."""
    jobs = chaos.start_pings(st, [10])
    st.wait_for(lambda: chaos.tools_running(st) == 1, "the ping to run")
    chaos.kill_nats(st)
    try:
        st.wait_for(lambda: chaos.agent_exitcodes(st).get(next(iter(jobs))), "the ping to end")
        st.stop_agent(signal.SIGKILL)
    finally:
        chaos.restart_nats(st)
        st.start_agent()
    final = chaos.wait_final(st, list(jobs), timeout=30)
    for jobid, count in jobs.items():
        assert_pinged(final[jobid], count)
    assert_one_completion(st, list(jobs))


def test_server_and_nats_killed_together(st: Stack) -> None:
    """A rolling restart gone wrong: the server and the nats-server killed at once with jobs
    running, and the server back before the agent has reconnected. The jobs that ended
    meanwhile are stored with their output; the tools still running are stopped."""
    short = chaos.start_pings(st, [10] * 5)  # 2 s: they end during the outage
    long = chaos.start_pings(st, [60] * 5, interval=0.5)  # 30 s: a restarted server stops them
    st.wait_for(lambda: chaos.tools_running(st) == 10, "the 10 pings to run")
    try:
        chaos.kill_nats(st)
        stop(st.server, signal.SIGKILL)
        with chaos.agent_paused(st):  # It reconnects last.
            time.sleep(3)
            chaos.restart_nats(st)
            chaos.restart_server(st, "rolling.log")
            time.sleep(1)
        final = chaos.wait_final(st, [*short, *long], timeout=30)
        for jobid, count in short.items():
            assert_pinged(final[jobid], count)
        for jobid in long:
            assert final[jobid]["jobresult"]["errortext"] == (
                "The management server stopped while the job ran; run the diagnostic again"
            )
        st.wait_for(lambda: chaos.tools_running(st) == 0, "the tools to be stopped", 10)
        assert_one_completion(st, [*short, *long])
        assert_ran_once(st, [*short, *long])
    finally:
        chaos.kill_tools(st)


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    """A PostgreSQL of this module's own, which the test stops and starts."""
    from tests.pg_server import pg_server

    with pg_server() as server:
        yield server


@pytest.fixture(scope="module")
def pg_st(
    request: pytest.FixtureRequest,
    lab: dict[str, Any],
    pg: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """A stack on that PostgreSQL."""
    failed_before = request.session.testsfailed
    data_dir: Path = tmp_path_factory.mktemp("pg-outages")
    with chaos.chaos_stack(lab, data_dir, database_url=pg.url) as stack:
        yield stack
        if request.session.testsfailed > failed_before:
            stack.show_logs()


@pytest.mark.parametrize("outage", [5, 15])
def test_database_stopped_while_jobs_finish(pg_st: Stack, pg: Any, outage: float) -> None:
    """Outcomes that cannot be stored wait in the results stream: none is lost."""
    st = pg_st
    # 2 to 6 s each: they finish before, during and after a 5 s outage, and during a 15 s one.
    jobs = chaos.start_pings(st, [10 + i % 20 for i in range(60)])
    down = time.time()
    pg.stop()
    try:
        time.sleep(outage)
    finally:
        pg.start()
    assert chaos.finished_between(st, down, time.time()) & set(jobs)  # ended with no database
    st.wait_for(lambda: st.call("listZones").status_code == 200, "the API to heal", 30)
    final = chaos.wait_final(st, list(jobs), timeout=60)
    for jobid, count in jobs.items():
        assert_pinged(final[jobid], count)
    assert_one_completion(st, list(jobs))
    assert_ran_once(st, list(jobs))
