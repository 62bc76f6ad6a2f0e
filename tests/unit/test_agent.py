"""The agent on a real nats-server with JetStream (fake executors): results that fit the
server's message limit and reach the results stream, requests taken at most once (a
duplicate or a replay never runs twice, a stale one is refused), what an earlier agent
process left in the job table, and heartbeats that fail."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.errors import OutboundBufferLimitError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from cloudiag.agent import agent as agent_module
from cloudiag.agent import results as results_module
from cloudiag.agent.agent import Agent
from cloudiag.agent.executors.registry import Executors
from cloudiag.agent.job_table import JobTable
from cloudiag.agent.results import ResultSender, fit_result
from cloudiag.agent.sources.base import Host, Zone
from cloudiag.bus import subjects
from cloudiag.bus.embedded import MAX_PAYLOAD
from cloudiag.bus.messages import (
    AgentReport,
    CancelReply,
    CancelRequest,
    JobRecord,
    NetnsAccess,
    OutputLine,
    RunRequest,
    RunResult,
    StatusReply,
    VmReport,
)
from cloudiag.bus.streams import ensure_agent_consumer
from tests.unit.agent_fakes import ROUTER, FakeExecutor, request
from tests.unit.nats_servers import nats_server

MIB = 1 << 20
HOST = "h-bus"


def _result(stdout: str, stderr: str = "", job_id: str = "j1") -> RunResult:
    return RunResult(job_id=job_id, stdout=stdout, stderr=stderr, exitcode="0", duration=1.5)


def test_a_result_that_fits_is_left_alone() -> None:
    result = _result("PING ok\n")
    assert fit_result(result, MIB) is result


@pytest.mark.parametrize(
    "stdout",
    [
        "64 bytes from 198.51.100.10: icmp_seq=1 ttl=63 time=0.1 ms\n" * 40000,
        "\x01" * 300000,  # Six bytes each once escaped in JSON.
        "é€😀" * 200000,  # Several bytes each in UTF-8.
    ],
)
def test_a_result_too_big_is_cut_to_fit(stdout: str) -> None:
    limit = 256 * 1024
    result = _result(stdout, "ping: warning\n" * 1000)
    fitted = fit_result(result, limit)
    size = len(fitted.encode())
    assert size <= limit
    assert size > limit * 0.8  # Cut to fit, not to nothing.
    assert fitted.truncated is True and fitted.exitcode == "0" and fitted.duration == 1.5
    assert stdout.startswith(fitted.stdout) and fitted.stdout
    assert fitted.stderr.startswith("ping: warning\n")
    assert fitted.stderr.endswith(f"output cut to fit the message bus's limit of {limit} bytes\n")


def test_a_limit_too_small_for_any_output_sends_none() -> None:
    fitted = fit_result(_result("x" * 10000), 150)  # Less than the message without output.
    assert fitted.stdout == "" and fitted.truncated is True
    assert "output cut" in fitted.stderr


async def _stored_result(js: JetStreamContext, job_id: str, timeout: float = 5) -> RunResult:
    """The job's result once it is in the results stream."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                msg = await js.get_msg(
                    subjects.RESULTS_STREAM, subject=subjects.job_result(HOST, job_id)
                )
            except NotFoundError:
                await asyncio.sleep(0.02)
                continue
            assert msg.data is not None
            return RunResult.model_validate_json(msg.data)


async def _results_by_subject(js: JetStreamContext) -> dict[str, int]:
    """How many results the stream holds for each job's subject."""
    info = await js.stream_info(subjects.RESULTS_STREAM, subjects_filter=">")
    return dict(info.state.subjects or {})


def _sender(nc: Client, session: str = "s1") -> tuple[ResultSender, JobTable]:
    async def bucket() -> Any:
        return await nc.jetstream().key_value(subjects.JOBS_BUCKET)

    table = JobTable(bucket, HOST, session)
    return ResultSender(nc.jetstream, table, lambda: nc.max_payload), table


async def test_the_result_is_cut_to_the_connections_limit_and_recorded_sent(
    bus: Client,
) -> None:
    sender, table = _sender(bus)
    limit = 64 * 1024
    sender = ResultSender(bus.jetstream, table, lambda: limit)
    await sender.send(_result("x" * MIB))
    sent = await _stored_result(bus.jetstream(), "j1")
    assert sent.truncated is True and 0 < len(sent.stdout) < limit
    record = await table.get("j1")
    assert record is not None and (record.state, record.published) == ("finished", True)
    assert record.result == sent  # The table keeps what was sent, for a server's question.


class FlakyJetStream:
    """The stream's publish fails a few times first, as while the bus is away."""

    def __init__(self, js: JetStreamContext, failures: int) -> None:
        self._js = js
        self.failures = failures

    async def publish(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise NatsTimeout
        return await self._js.publish(*args, **kwargs)


async def test_a_result_the_stream_does_not_take_is_sent_again_until_it_does(
    bus: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results_module, "RETRY_FIRST", 0.01)
    _, table = _sender(bus)
    flaky = FlakyJetStream(bus.jetstream(), failures=3)
    sender = ResultSender(lambda: flaky, table, lambda: bus.max_payload)  # type: ignore[arg-type,return-value]
    result = _result("PING ok\n")
    await sender.send(result)
    assert flaky.failures == 0
    assert await _stored_result(bus.jetstream(), "j1") == result  # Whole, not an error.
    assert await _results_by_subject(bus.jetstream()) == {subjects.job_result(HOST, "j1"): 1}
    record = await table.get("j1")
    assert record is not None and record.published is True


@pytest.mark.parametrize("max_payload", [0, 256 * 1024], ids=["nats-default", "small"])
async def test_a_result_at_the_cap_is_cut_to_a_servers_smaller_limit(
    tmp_path: Path, max_payload: int
) -> None:
    """stdout and stderr each at the 1 MiB cap, through a server with a smaller limit than
    the private one's: cut to fit, and in the stream."""
    async with nats_server(tmp_path, max_payload) as nc:
        sender, _ = _sender(nc)
        result = _result("o" * MIB, "e" * MIB)
        await sender.send(result)
        got = await _stored_result(nc.jetstream(), "j1")
        assert len(got.encode()) <= nc.max_payload < len(result.encode())
        assert got.truncated is True and got.stdout and got.stdout == "o" * len(got.stdout)


async def test_a_result_at_the_cap_arrives_whole_through_the_private_server(
    bus: Client,
) -> None:
    sender, _ = _sender(bus)
    result = _result("o" * MIB, "e" * MIB)
    await sender.send(result)
    assert bus.max_payload == MAX_PAYLOAD
    assert await _stored_result(bus.jetstream(), "j1") == result


class OneVmSource:
    """A host with one router, reached through a namespace."""

    zone = Zone(id="z1", name="zone")
    host = Host(id=HOST, name="kvm-1")

    async def vms(self) -> list[VmReport]:
        return [ROUTER]


@contextlib.asynccontextmanager
async def running_agent(url: str, executor: FakeExecutor, **options: Any) -> AsyncIterator[Agent]:
    """The agent of host h-bus serving its requests until the block ends (its consumer
    made first, as a server does when the host reports)."""
    nc = await nats.connect(url)
    try:
        await ensure_agent_consumer(nc.jetstream(), HOST)
    finally:
        await nc.close()
    agent = Agent(url, OneVmSource(), Executors({NetnsAccess: executor}), **options)
    task = asyncio.create_task(agent.run())
    try:
        ready = asyncio.create_task(agent.ready.wait())
        await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():
            task.result()  # Raises why it stopped.
        assert agent.ready.is_set()
        yield agent
    finally:
        agent.stop()
        await asyncio.wait_for(task, 10)


async def _request(
    js: JetStreamContext, req: RunRequest | bytes, job_id: str = "j1", msg_id: str | None = None
) -> None:
    """Put a request for h-bus in the stream (a message id as the server gives it, or none:
    a replay after the stream's duplicate window)."""
    payload = req if isinstance(req, bytes) else req.encode()
    await js.publish(
        subjects.agent_request(HOST, job_id),
        payload,
        stream=subjects.REQUESTS_STREAM,
        headers={"Nats-Msg-Id": msg_id} if msg_id else None,
    )


async def _requests_taken(js: JetStreamContext, timeout: float = 5) -> None:
    """Wait until the agent has acknowledged every request in the stream."""
    async with asyncio.timeout(timeout):
        while (await js.stream_info(subjects.REQUESTS_STREAM)).state.messages:
            await asyncio.sleep(0.02)


async def test_a_request_delivered_again_never_runs_twice(bus: Client, nats_url: str) -> None:
    """The same job's request replayed while it runs and after it finished runs once."""
    js = bus.jetstream()
    executor = FakeExecutor(block=True)
    async with running_agent(nats_url, executor, heartbeat_interval=30):
        await _request(js, request("j1"), msg_id="j1")
        await asyncio.wait_for(executor.started.wait(), 5)
        await _request(js, request("j1"))  # Replayed while it runs.
        await _requests_taken(js)
        cancel = CancelRequest(job_id="j1", by="admin").encode()
        await bus.request(subjects.agent_cancel(HOST), cancel, timeout=5)
        first = await _stored_result(js, "j1")
        await _request(js, request("j1"))  # Replayed after it finished.
        await _request(js, request("j1"), msg_id="other-id")
        await _requests_taken(js)
        await asyncio.sleep(0.2)  # Time to run it, were it to.
    assert [r.job_id for _, r in executor.runs] == ["j1"]
    assert first.cancelled_by == "admin"
    assert await _results_by_subject(js) == {subjects.job_result(HOST, "j1"): 1}


async def test_a_request_past_its_deadline_is_refused_and_never_runs(
    bus: Client, nats_url: str
) -> None:
    js = bus.jetstream()
    executor = FakeExecutor()
    await _request(js, request("j1", start_by=time.time() - 5), msg_id="j1")
    async with running_agent(nats_url, executor, heartbeat_interval=30) as agent:
        result = await _stored_result(js, "j1")
        await _requests_taken(js)
        record = await agent.table.get("j1")
    assert "after its deadline to start" in result.refused and result.exitcode == "-1"
    assert executor.runs == []
    assert record is not None and record.state == "finished" and record.result == result


async def test_a_withdrawn_request_is_not_run(bus: Client, nats_url: str) -> None:
    """The server recorded the job first (it gave up on it): the agent skips it."""
    js = bus.jetstream()
    kv = await js.key_value(subjects.JOBS_BUCKET)
    withdrawn = RunResult(job_id="j1", stdout="", stderr="", exitcode="-1", refused="withdrawn")
    await kv.create(
        subjects.job_key(HOST, "j1"), JobRecord(state="finished", result=withdrawn).encode()
    )
    await _request(js, request("j1"), msg_id="j1")
    executor = FakeExecutor()
    async with running_agent(nats_url, executor, heartbeat_interval=30):
        await _requests_taken(js)
        await asyncio.sleep(0.2)
    assert executor.runs == []
    assert await _results_by_subject(js) == {}


async def test_a_stopping_agent_closes_its_executors_after_its_jobs(
    bus: Client, nats_url: str
) -> None:
    """Its warm sessions get EOF and its connections close, after the running job ended."""
    executor = FakeExecutor(block=True)
    async with running_agent(nats_url, executor, heartbeat_interval=30):
        await _request(bus.jetstream(), request("j1"), msg_id="j1")
        await asyncio.wait_for(executor.started.wait(), 5)
        assert not executor.closed
    assert executor.closed
    assert await _stored_result(bus.jetstream(), "j1") is not None


async def test_at_start_the_agent_ends_what_an_earlier_process_left(
    bus: Client, nats_url: str
) -> None:
    """A job left running died with its process; a result left unsent is sent now; a result
    already sent, and other hosts' jobs, are left alone."""
    js = bus.jetstream()
    kv = await js.key_value(subjects.JOBS_BUCKET)
    unsent = _result("done before\n", job_id="j-unsent")
    records = {
        subjects.job_key(HOST, "j-running"): JobRecord(state="running", session="old"),
        subjects.job_key(HOST, "j-unsent"): JobRecord(
            state="finished", session="old", result=unsent
        ),
        subjects.job_key(HOST, "j-sent"): JobRecord(
            state="finished", session="old", result=_result("", job_id="j-sent"), published=True
        ),
        subjects.job_key("other-host", "j-other"): JobRecord(state="running", session="old"),
    }
    for key, record in records.items():
        await kv.create(key, record.encode())
    async with running_agent(nats_url, FakeExecutor(), heartbeat_interval=30) as agent:
        died = await _stored_result(js, "j-running")
        assert await _stored_result(js, "j-unsent") == unsent
        assert await _results_by_subject(js) == {
            subjects.job_result(HOST, "j-running"): 1,
            subjects.job_result(HOST, "j-unsent"): 1,
        }
        for job_id in ("j-running", "j-unsent"):
            found = await agent.table.get(job_id)
            assert found is not None and found.published is True, job_id
    assert died.error.startswith("The agent restarted during the job")
    assert died.exitcode == "-1"


class FlakyReports:
    """A real client whose first reports fail to go, as while it reconnects."""

    def __init__(self, nc: Client, failures: int) -> None:
        self._nc = nc
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._nc, name)

    async def publish(self, subject: str, payload: bytes = b"", **kwargs: Any) -> None:
        if subject == subjects.agent_report(HOST) and self.failures:
            self.failures -= 1
            raise OutboundBufferLimitError
        await self._nc.publish(subject, payload, **kwargs)


async def test_the_agent_keeps_beating_through_failed_heartbeats(
    bus: Client, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky: list[FlakyReports] = []

    async def connect(url: str, name: str, on_reconnect: Any = None, **_: Any) -> FlakyReports:
        flaky.append(FlakyReports(await nats.connect(url), failures=3))
        return flaky[0]

    monkeypatch.setattr(agent_module, "connect", connect)
    reports = await bus.subscribe(subjects.agent_report(HOST))
    async with running_agent(nats_url, FakeExecutor(), heartbeat_interval=0.01):
        # The first report and two beats fail; the agent is still there for the next ones.
        for _ in range(3):
            report = AgentReport.model_validate_json((await reports.next_msg(timeout=5)).data)
            assert report.host_id == HOST and report.connected is True
        assert flaky[0].failures == 0
    while True:  # It still says goodbye, last.
        last = AgentReport.model_validate_json((await reports.next_msg(timeout=5)).data)
        if not last.connected:
            break
    await reports.unsubscribe()


async def test_the_agent_serves_runs_refusals_cancels_and_status_over_nats(
    bus: Client, nats_url: str
) -> None:
    """The report carries the typed access; requests from the stream: a malformed one and
    one for another host's VM are refused (a result says why), one for the VM runs on its
    executor; status says it runs; a cancel stops it and its result says who asked."""
    js = bus.jetstream()
    executor = FakeExecutor(block=True, lines=[("stdout", "64 bytes\n")])
    reports = await bus.subscribe(subjects.agent_report(HOST))
    output = await bus.subscribe(subjects.job_output(HOST, "j1"))
    async with running_agent(nats_url, executor, heartbeat_interval=30):
        report = AgentReport.model_validate_json((await reports.next_msg(timeout=5)).data)
        assert (report.host_id, report.host_name, report.zone_id) == (HOST, "kvm-1", "z1")
        assert [vm.access for vm in report.vms] == [NetnsAccess(namespace="lab-r-1-VM")]

        async def ask(subject: str, payload: bytes) -> bytes:
            return (await bus.request(subject, payload, timeout=5)).data

        await _request(js, b"{}", job_id="j-bad")
        assert (await _stored_result(js, "j-bad")).refused == "malformed request"
        await _request(js, request("j0", "vm-elsewhere"), job_id="j0")
        refused = await _stored_result(js, "j0")
        assert refused.refused == "VM vm-elsewhere is not on host kvm-1"
        assert executor.runs == []

        await _request(js, request("j1"), msg_id="j1")
        line = OutputLine.model_validate_json((await output.next_msg(timeout=5)).data)
        assert (line.seq, line.text) == (1, "64 bytes\n")
        status = StatusReply.model_validate_json(await ask(subjects.agent_status(HOST), b""))
        assert (status.running, status.spawned) == (["j1"], 1)

        cancel = CancelRequest(job_id="j1", by="admin").encode()
        reply = CancelReply.model_validate_json(await ask(subjects.agent_cancel(HOST), cancel))
        assert reply.cancelled is True
        result = await _stored_result(js, "j1")
        assert (result.cancelled_by, result.stdout) == ("admin", "partial\n")
        again = CancelReply.model_validate_json(await ask(subjects.agent_cancel(HOST), cancel))
        assert again == CancelReply(cancelled=False, error="not running")
    await reports.unsubscribe()
    await output.unsubscribe()
