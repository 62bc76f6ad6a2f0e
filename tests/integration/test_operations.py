"""Operating a running stack: /metrics as Prometheus scrapes it, and `cloudiag status`.

A real server, agent, nats-server and lab: a diagnostic is run, then the metrics and the
status are read as an operator would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.stack import Stack, manager_seed_file, tool_pids


def scrape(stack: Stack) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics, by name and labels."""
    reply = httpx.get(f"{stack.url}/metrics", timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    """One sample's value, 0 when the series does not exist yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_a_diagnostic_by_type_and_outcome(stack: Stack) -> None:
    before = scrape(stack)
    job = stack.run("router", "ping", stack.lab["targets"]["web"], "-c 1")
    assert job["jobstatus"] == 1, job
    after = scrape(stack)
    jobs = "cloudiag_jobs_total"
    assert value(after, jobs, type="ping", outcome="succeeded") == (
        value(before, jobs, type="ping", outcome="succeeded") + 1
    )
    timed = "cloudiag_job_duration_seconds_count"
    assert value(after, timed, type="ping") == value(before, timed, type="ping") + 1
    assert value(after, "cloudiag_job_duration_seconds_sum", type="ping") > value(
        before, "cloudiag_job_duration_seconds_sum", type="ping"
    )
    assert value(after, "cloudiag_agents", state="Up") == 1
    assert value(after, "cloudiag_management_servers", state="Up") >= 1
    assert value(after, "cloudiag_nats_connected") == 1
    assert value(after, "cloudiag_nats_rtt_seconds") > 0
    assert value(after, "cloudiag_fleet_scrape_ok") == 1
    # Every stream's depth is there (what earlier tests left in them is theirs).
    for stream in ("CLOUDIAG_REQUESTS", "CLOUDIAG_RESULTS", "CLOUDIAG_OUTPUT"):
        assert ("cloudiag_stream_messages", frozenset({("stream", stream)})) in after
    # No job id in any label: series do not grow with the jobs.
    assert not any(job["jobid"] in str(labels) for _, labels in after)


def test_a_cancelled_diagnostic_is_counted_cancelled(stack: Stack) -> None:
    before = scrape(stack)
    vm = stack.vm("secondarystoragevm")
    jobid = stack.start_job(
        "secondarystoragevm", "ping", stack.lab["targets"]["web"], "-c 60 -i 0.5"
    )
    stack.wait_for(lambda: bool(tool_pids(vm["namespace"], "ping")), "ping to run on the VM")
    running = scrape(stack)
    assert value(running, "cloudiag_jobs_pending") >= 1
    assert stack.call("cancelDiagnostics", jobid=jobid).status_code == 200
    job = stack.wait_job(jobid, timeout=10)
    assert job["jobstatus"] == 2 and job["jobresult"]["cancelled"] is True, job
    after = scrape(stack)
    assert value(after, "cloudiag_jobs_pending") <= value(running, "cloudiag_jobs_pending") - 1
    jobs = "cloudiag_jobs_total"
    for outcome, more in (("cancelled", 1), ("succeeded", 0), ("failed", 0)):
        assert value(after, jobs, type="ping", outcome=outcome) == (
            value(before, jobs, type="ping", outcome=outcome) + more
        ), outcome


def test_status_shows_the_stack(stack: Stack) -> None:
    """`cloudiag status --json` against the stack's database and NATS."""
    out = subprocess.run(
        [sys.executable, "-m", "cloudiag", "status", "--json", "--database-url",
         stack.database_url, "--data-dir", str(stack.data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "CLOUDIAG_NATS_URL": stack.nats_url,
             "CLOUDIAG_NATS_NKEY_SEED_FILE": str(manager_seed_file(stack.data_dir)),
             "CLOUDIAG_HEARTBEAT_INTERVAL": str(stack.heartbeat)},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    status = json.loads(out.stdout)
    assert status["healthy"] is True
    db = status["database"]
    assert db["reachable"] and db["revision"] == db["head"]
    assert db["backend"] == ("sqlite" if stack.backend == "sqlite" else "postgresql")
    assert "password" not in db["url"]
    nats = status["nats"]
    assert nats["reachable"] and nats["rtt_ms"] > 0
    assert "@" not in nats["url"]  # The token stays out of the report.
    streams = {s["name"]: s for s in nats["streams"]}
    assert set(streams) == {
        "CLOUDIAG_REQUESTS",
        "CLOUDIAG_RESULTS",
        "CLOUDIAG_OUTPUT",
        "CLOUDIAG_DATA",
    }
    consumers = {c["name"] for c in streams["CLOUDIAG_REQUESTS"]["consumers"]}
    host = stack.ok("listHosts")["host"][0]
    assert f"agent-{host['id']}" in consumers
    assert [a["state"] for a in status["agents"]] == ["Up"]
    assert status["agents"][0]["system_vms"] >= 3
    assert any(s["state"] == "Up" for s in status["servers"])
    assert isinstance(status["jobs_pending"], int)


def test_status_says_what_is_down(stack: Stack) -> None:
    """An unreachable NATS is reported, with the database still read; exit status 1."""
    out = subprocess.run(
        [sys.executable, "-m", "cloudiag", "status", "--database-url", stack.database_url,
         "--data-dir", str(stack.data_dir), "--nats-url", "nats://127.0.0.1:1"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "unreachable" in out.stdout
    assert "NOT healthy" in out.stdout
    assert "Agents: 1 Up, 0 Disconnected" in out.stdout
