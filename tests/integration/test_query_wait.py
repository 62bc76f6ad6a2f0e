"""queryAsyncJobResult with cloudiag's `wait`: one call answered when the job is final."""

from __future__ import annotations

import time

from tests.integration.stack import Stack


def test_one_call_answers_when_the_job_is_final(stack: Stack) -> None:
    jobid = stack.start_job("router", "ping", stack.lab["targets"]["web"], "-c 2 -i 0.5")
    started = time.monotonic()
    job = stack.ok("queryAsyncJobResult", jobid=jobid, wait="30")
    elapsed = time.monotonic() - started
    assert job["jobstatus"] == 1, job
    assert job["jobresult"]["diagnostics"]["exitcode"] == "0"
    # Two pings half a second apart: the answer comes with the job's end, not at the wait's.
    assert 0.4 < elapsed < 10, elapsed


def test_a_pending_job_is_answered_when_the_wait_is_over(stack: Stack) -> None:
    jobid = stack.start_job("router", "ping", stack.lab["targets"]["web"], "-c 4 -i 1")
    started = time.monotonic()
    job = stack.ok("queryAsyncJobResult", jobid=jobid, wait="1")
    assert job["jobstatus"] == 0 and 0.9 < time.monotonic() - started < 5
    assert stack.wait_job(jobid)["jobstatus"] == 1


def test_a_wait_over_the_limit_is_refused(stack: Stack) -> None:
    jobid = stack.start_job("router", "ping", stack.lab["targets"]["web"], "-c 1")
    r = stack.call("queryAsyncJobResult", jobid=jobid, wait="31")
    assert r.status_code == 431 and "wait" in r.text
    stack.wait_job(jobid)
