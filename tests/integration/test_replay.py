"""Replayed signed requests over HTTP against real servers: a captured runDiagnostics or
cancelDiagnostics runs once, whichever server the copy reaches; list calls stay repeatable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.integration.stack import Stack, cs_signature, start_server, stop, tool_pids


def _signed(stack: Stack, **params: str) -> dict[str, str]:
    """A request signed as a CloudStack client signs it (no expires unless given).

    With a parameter of its own (signed, unknown to every command): the stack's memory of
    used signatures lasts the whole session, and another test's identical call (libcloud
    signs `runDiagnostics` without expires too) must not find its signature used.
    """
    query = {"response": "json", "apiKey": stack.admin.apikey, "testcall": uuid.uuid4().hex}
    query |= params
    return {**query, "signature": cs_signature(query, stack.admin.secretkey)}


def _expires(ahead: timedelta) -> dict[str, str]:
    when = datetime.now(UTC) + ahead
    return {"signatureVersion": "3", "expires": when.strftime("%Y-%m-%dT%H:%M:%S+0000")}


def _ping(stack: Stack, params: str, **extra: str) -> dict[str, str]:
    return _signed(
        stack,
        command="runDiagnostics",
        targetid=stack.vm("router")["uuid"],
        type="ping",
        ipaddress=stack.lab["targets"]["web"],
        params=params,
        **extra,
    )


def _job_count(stack: Stack) -> int:
    return int(stack.ok("listAsyncJobs", listall="true").get("count", 0))


def _refused(r: httpx.Response, *words: str) -> None:
    assert r.status_code == 401, r.text
    body = next(iter(r.json().values()))
    assert body["errorcode"] == 401 and "cserrorcode" not in body
    assert all(word in body["errortext"] for word in words), body["errortext"]
    assert r.headers["X-Description"]


def _started(stack: Stack, r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    jobid: str = r.json()["rundiagnosticsresponse"]["jobid"]
    return jobid


@pytest.fixture(scope="module")
def strict(stack: Stack) -> Iterator[str]:
    """A second management server of the stack's database that requires expires."""
    proc, port = start_server(
        stack.database_url,
        stack.nats_url,
        stack.data_dir,
        "strict.log",
        {"CLOUDIAG_REQUIRE_EXPIRES": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        stack.wait_for(lambda: httpx.get(f"{url}/client/api").status_code == 401, "the API")
        yield f"{url}/client/api"
    finally:
        stop(proc)


def test_an_exact_replay_is_refused(stack: Stack) -> None:
    query = _ping(stack, "-c 1")
    job = stack.wait_job(_started(stack, httpx.get(stack.api, params=query)))
    assert job["jobresult"]["diagnostics"]["exitcode"] == "0"
    before = _job_count(stack)
    for _ in range(2):
        _refused(httpx.get(stack.api, params=query), "already used", "sign it again")
    # A POST of the same parameters is the same signature.
    _refused(httpx.post(stack.api, data=query), "already used")
    assert _job_count(stack) == before


def test_a_case_changed_replay_is_refused(stack: Stack) -> None:
    query = _ping(stack, "-c 1 -w 5")
    job = stack.wait_job(_started(stack, httpx.get(stack.api, params=query)))
    assert job["jobresult"]["diagnostics"]["exitcode"] == "0"
    before = _job_count(stack)
    # CloudStack's canonical string is lower-cased: -W 5 (another option) signs the same.
    changed = {**query, "params": "-c 1 -W 5"}
    _refused(httpx.get(stack.api, params=changed), "already used")
    _refused(httpx.get(stack.api, params={**query, "type": "PING"}), "already used")
    assert _job_count(stack) == before


#: A day ahead when the tests are collected: still beyond the hour when they run.
_TOMORROW = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+0000")


@pytest.mark.parametrize("expires", ["9999-12-31T23:59:59+0000", "9999-12-31T00:00:00Z", _TOMORROW])
def test_far_expires_is_refused(stack: Stack, expires: str) -> None:
    before = _job_count(stack)
    query = _ping(stack, "-c 1", signatureVersion="3", expires=expires)
    _refused(httpx.get(stack.api, params=query), "too far in the future", "3600 seconds")
    assert _job_count(stack) == before


def test_a_replay_to_another_server_is_refused(stack: Stack, strict: str) -> None:
    query = _ping(stack, "-c 1", **_expires(timedelta(minutes=5)))
    jobid = _started(stack, httpx.get(stack.api, params=query))
    _refused(httpx.get(strict, params=query), "already used")
    assert stack.wait_job(jobid)["jobresult"]["diagnostics"]["exitcode"] == "0"


def test_missing_expires_is_refused_where_required(stack: Stack, strict: str) -> None:
    bare = _signed(stack, command="listZones")
    _refused(httpx.get(strict, params=bare), "requires signatureVersion=3")
    assert httpx.get(stack.api, params=bare).status_code == 200
    expiring = _signed(stack, command="listZones", **_expires(timedelta(minutes=5)))
    assert httpx.get(strict, params=expiring).status_code == 200


def test_read_only_commands_stay_repeatable(stack: Stack) -> None:
    for query in (
        _signed(stack, command="listRouters"),
        _signed(stack, command="listSystemVms", **_expires(timedelta(minutes=5))),
    ):
        answers = [httpx.get(stack.api, params=query) for _ in range(3)]
        assert [r.status_code for r in answers] == [200] * 3
        assert len({r.text for r in answers}) == 1


def test_a_fresh_signature_of_the_same_call_runs(stack: Stack) -> None:
    """What a client does to repeat a call: sign it again (the cloudiag client signs every
    call with an expires of its own), or, without expires, change a parameter."""
    address = stack.lab["targets"]["web"]
    jobs = [stack.start_job("router", "ping", address, "-c 1") for _ in range(2)]
    assert jobs[0] != jobs[1]
    for jobid in jobs:
        assert stack.wait_job(jobid)["jobresult"]["diagnostics"]["exitcode"] == "0"
    first = _ping(stack, "-c 1 -W 2")
    # The same call with an extra parameter (every parameter is signed): a new signature.
    second = {k: v for k, v in first.items() if k != "signature"} | {"pagesize": "1"}
    second["signature"] = cs_signature(second, stack.admin.secretkey)
    for query in (first, second):
        jobid = _started(stack, httpx.get(stack.api, params=query))
        assert stack.wait_job(jobid)["jobresult"]["diagnostics"]["exitcode"] == "0"


def test_a_replayed_cancel_is_refused(stack: Stack) -> None:
    vm = stack.vm("router")
    jobid = stack.start_job("router", "ping", stack.lab["targets"]["web"], "-c 60 -i 0.5")
    stack.wait_for(lambda: bool(tool_pids(vm["namespace"], "ping")), "ping to run on the VM")
    cancel = _signed(stack, command="cancelDiagnostics", jobid=jobid)
    r = httpx.get(stack.api, params=cancel)
    assert r.status_code == 200, r.text
    _refused(httpx.get(stack.api, params=cancel), "already used")
    job = stack.wait_job(jobid, timeout=10)
    assert job["jobstatus"] == 2 and job["jobresult"]["cancelled"] is True


@pytest.mark.parametrize(
    "bad",
    [{"params": "-c 1 -f"}, {"ipaddress": "198.51.100.10;reboot"}, {"type": "rm"}],
    ids=["option", "address", "type"],
)
def test_a_call_refused_for_its_input_does_not_spend_its_signature(
    stack: Stack, bad: dict[str, str]
) -> None:
    """Refused for its input, the call changed nothing: sent again, it hears the same
    reason, not "already used"."""
    call = {
        "command": "runDiagnostics",
        "targetid": stack.vm("router")["uuid"],
        "type": "ping",
        "ipaddress": stack.lab["targets"]["web"],
        "params": "-c 1",
    }
    query = _signed(stack, **(call | bad))
    before = _job_count(stack)
    for _ in range(2):
        r = httpx.get(stack.api, params=query)
        assert r.status_code == 431, r.text
        assert "already used" not in r.text
    assert _job_count(stack) == before
