"""Live output over Server-Sent Events, cancel, the types list and per-VM history."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from cloudiag.client import AsyncJob
from cloudiag.sysvm import registry
from tests.integration.stack import Stack, cs_signature, tool_pids


def _events(stack: Stack, jobid: str, timeout: float = 60) -> list[tuple[float, str, Any]]:
    """Read the whole stream: (arrival time, event name, data) for each event."""
    events: list[tuple[float, str, Any]] = []
    deadline = time.monotonic() + timeout
    for item in stack.client().stream(jobid):
        name = "end" if isinstance(item, AsyncJob) else "line"
        events.append((time.monotonic(), name, item.model_dump(exclude_unset=True)))
        assert time.monotonic() < deadline, f"the stream of {jobid} lasted over {timeout} s"
    return events


def test_lines_arrive_live_then_end(stack: Stack) -> None:
    jobid = stack.start_job("router", "ping", stack.lab["targets"]["web"], "-c 5 -i 0.4")
    events = _events(stack, jobid)
    lines = [e for e in events if e[1] == "line"]
    end = events[-1]
    assert end[1] == "end"
    assert end[2]["jobstatus"] == 1 and end[2]["jobresult"]["diagnostics"]["exitcode"] == "0"
    assert [e[2]["seq"] for e in lines] == list(range(1, len(lines) + 1))
    assert all(set(e[2]) == {"seq", "stream", "text"} for e in lines)  # one job: no jobid
    replies = [e for e in lines if "icmp_seq=" in e[2]["text"]]
    assert len(replies) == 5
    # The first reply came well before the job ended: it was streamed, not replayed.
    assert end[0] - replies[0][0] > 1.0
    assert (
        "".join(e[2]["text"] for e in lines if e[2]["stream"] == "stdout")
        == (end[2]["jobresult"]["diagnostics"]["stdout"])
    )


def test_a_late_viewer_gets_every_line_from_the_start(stack: Stack) -> None:
    job = stack.run("secondarystoragevm", "traceroute", stack.lab["targets"]["web"], "-n -q 1")
    events = _events(stack, job["jobid"], timeout=10)
    text = "".join(e[2]["text"] for e in events if e[1] == "line")
    assert text == job["jobresult"]["diagnostics"]["stdout"]
    assert events[-1][1] == "end"


def test_stream_needs_credentials_and_a_visible_job(stack: Stack) -> None:
    job = stack.run("router", "ping", stack.lab["targets"]["web"], "-c 1")
    r = httpx.get(f"{stack.url}/client/stream", params={"jobid": job["jobid"]})
    assert r.status_code == 401
    user = {"apiKey": stack.user.apikey, "jobid": job["jobid"]}
    user["signature"] = cs_signature(user, stack.user.secretkey)
    r = httpx.get(f"{stack.url}/client/stream", params=user)
    assert r.status_code == 431 and "Unable to find a job" in r.text


def _signed(stack: Stack, params: dict[str, str]) -> dict[str, str]:
    """A raw signed query (the client streams one job; these tests stream several)."""
    query = {"apiKey": stack.admin.apikey, **params}
    query["signature"] = cs_signature(query, stack.admin.secretkey)
    return query


def _whole_stream(
    client: httpx.Client, url: str, params: Any, timeout: float = 60
) -> list[tuple[str, Any]]:
    """Every event of a stream, (name, data), read until the server closes it."""
    events: list[tuple[str, Any]] = []
    name = ""
    with client.stream("GET", f"{url}/client/stream", params=params, timeout=timeout) as r:
        assert r.status_code == 200, r.read()
        for raw in r.iter_lines():
            if raw.startswith("event: "):
                name = raw.removeprefix("event: ")
            elif raw.startswith("data: "):
                events.append((name, json.loads(raw.removeprefix("data: "))))
    return events


def _check_jobs_streamed(stack: Stack, events: list[tuple[str, Any]], jobids: list[str]) -> None:
    """Each job's lines, tagged with its id, in order and whole, then its end; then the close."""
    ends = [data["jobid"] for name, data in events if name == "end"]
    assert sorted(ends) == sorted(jobids)
    assert events[-1][0] == "end"
    for jobid in jobids:
        lines = [data for name, data in events if name == "line" and data["jobid"] == jobid]
        assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
        job = stack.wait_job(jobid)
        stdout = "".join(line["text"] for line in lines if line["stream"] == "stdout")
        assert stdout == job["jobresult"]["diagnostics"]["stdout"] and stdout
        end = next(
            i for i, (name, data) in enumerate(events) if data["jobid"] == jobid and name == "end"
        )
        assert all(data["jobid"] != jobid for _, data in events[end + 1 :])


def test_one_stream_follows_several_jobs(stack: Stack) -> None:
    web = stack.lab["targets"]["web"]
    slow = stack.start_job("router", "ping", web, "-c 4 -i 0.4")
    quick = stack.start_job("secondarystoragevm", "ping", web, "-c 1")
    with httpx.Client() as client:
        events = _whole_stream(client, stack.url, _signed(stack, {"jobid": f"{slow},{quick}"}))
    _check_jobs_streamed(stack, events, [slow, quick])
    # The quick job ended while the slow one still printed: each job ends on its own.
    ends = [i for i, (name, _) in enumerate(events) if name == "end"]
    assert any(name == "line" and data["jobid"] == slow for name, data in events[ends[0] :])


def test_a_session_streams_jobs_named_by_repeated_jobid(stack: Stack) -> None:
    web = stack.lab["targets"]["web"]
    jobids = [
        stack.start_job(role, "ping", web, "-c 2 -i 0.2") for role in ("router", "consoleproxy")
    ]
    with httpx.Client(timeout=30) as browser:
        login = stack.login(stack.admin.username, stack.admin.password, browser)
        key = login.json()["loginresponse"]["sessionkey"]
        params = [
            ("jobid", jobids[0]),
            ("jobid", jobids[1]),
            ("jobid", jobids[0]),
            ("sessionkey", key),
        ]
        events = _whole_stream(browser, stack.url, params)
    _check_jobs_streamed(stack, events, jobids)


def test_every_job_of_a_stream_is_checked(stack: Stack) -> None:
    job = stack.run("router", "ping", stack.lab["targets"]["web"], "-c 1")
    unknown = "00000000-0000-4000-8000-000000000000"
    for jobid, why in (
        (f"{job['jobid']},{unknown}", f"Unable to find a job with id {unknown}"),
        (f"{job['jobid']},not-a-uuid", "not a valid uuid"),
        (f"{job['jobid']},", "not a valid uuid"),
    ):
        r = httpx.get(f"{stack.url}/client/stream", params=_signed(stack, {"jobid": jobid}))
        assert r.status_code == 431 and why in r.text, (jobid, r.text)
    user = {"apiKey": stack.user.apikey, "jobid": f"{job['jobid']},{job['jobid']}"}
    user["signature"] = cs_signature(user, stack.user.secretkey)
    r = httpx.get(f"{stack.url}/client/stream", params=user)
    assert r.status_code == 431 and "Unable to find a job" in r.text


def test_cancel_stops_the_tool_on_the_vm(stack: Stack) -> None:
    # The SSVM runs our zipapp over SSH too (live output, a tool that can be stopped): the
    # CPVM's CloudStack script prints only when its tool ends, and nothing stops that tool.
    vm = stack.vm("secondarystoragevm")
    jobid = stack.start_job(
        "secondarystoragevm", "ping", stack.lab["targets"]["web"], "-c 60 -i 0.5"
    )
    seen: list[tuple[float, str, Any]] = []
    reader = threading.Thread(target=lambda: seen.extend(_events(stack, jobid)))
    reader.start()
    stack.wait_for(lambda: bool(tool_pids(vm["namespace"], "ping")), "ping to run on the VM")
    time.sleep(1.2)
    r = stack.call("cancelDiagnostics", jobid=jobid)
    assert r.status_code == 200, r.text
    job = stack.wait_job(jobid, timeout=10)
    reader.join(15)
    assert job["jobstatus"] == 2
    assert job["jobresult"]["cancelled"] is True
    assert job["jobresult"]["errortext"] == f"Cancelled by {stack.admin.username}"
    partial = job["jobresult"]["diagnostics"]["stdout"]
    assert "icmp_seq=1 " in partial and "icmp_seq=60 " not in partial
    assert tool_pids(vm["namespace"], "ping") == []
    assert seen and seen[-1][1] == "end" and seen[-1][2]["jobstatus"] == 2
    # A finished job cannot be cancelled again.
    again = stack.call("cancelDiagnostics", jobid=jobid)
    assert again.status_code == 431 and "already finished" in again.text


def test_types_per_vm(stack: Stack) -> None:
    router = stack.ok("listDiagnosticsTypes", targetid=stack.vm("router")["uuid"])
    ssvm = stack.ok("listDiagnosticsTypes", targetid=stack.vm("secondarystoragevm")["uuid"])
    # Every type the registry has for the VM's type (tracepath, mtr… as they come), in order.
    assert [t["name"] for t in router["diagnosticstype"]] == [
        t.name for t in registry.types_for_vm("domainrouter")
    ]
    assert [t["name"] for t in ssvm["diagnosticstype"]] == [
        t.name for t in registry.types_for_vm("secondarystoragevm")
    ]
    assert {"ping", "traceroute", "arping", "ping6", "traceroute6"} <= {
        t["name"] for t in router["diagnosticstype"]
    }
    ssvm_names = {t["name"] for t in ssvm["diagnosticstype"]}
    assert {"ping", "traceroute", "arping"} <= ssvm_names
    assert not {"ping6", "traceroute6"} & ssvm_names
    ping = next(t for t in ssvm["diagnosticstype"] if t["name"] == "ping")
    count = next(o for o in ping["options"] if o["flag"] == "-c")
    assert (count["minimum"], count["maximum"]) == (1, 100)
    assert stack.call("listDiagnosticsTypes", stack.user).status_code == 432


def test_history_of_one_vm(stack: Stack) -> None:
    vm = stack.vm("router")["uuid"]
    job = stack.run("router", "ping", stack.lab["targets"]["web"], "-c 1 -n")
    history = stack.ok("listAsyncJobs", listall="true", instanceid=vm)["asyncjobs"]
    assert all(j["jobinstanceid"] == vm for j in history)
    mine = next(j for j in history if j["jobid"] == job["jobid"])
    assert mine["request"] == {
        "type": "ping",
        "ipaddress": "198.51.100.10",
        "params": ["-c", "1", "-n"],
        "timelimit": 120.0,
    }
    assert mine["username"] == stack.admin.username
    assert mine["jobresult"]["diagnostics"]["exitcode"] == "0"
