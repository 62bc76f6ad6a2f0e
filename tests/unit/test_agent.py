"""The agent's side of the bus: results that fit the server's message limit, and what
happens when a publish (a result, a heartbeat) fails."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.errors import ConnectionClosedError, MaxPayloadError, OutboundBufferLimitError

from cloudiag.agent import agent as agent_module
from cloudiag.agent.agent import Agent
from cloudiag.agent.executors.registry import Executors
from cloudiag.agent.results import fit_result, send_result
from cloudiag.agent.sources.base import Host, Zone
from cloudiag.bus import subjects
from cloudiag.bus.embedded import (
    MAX_PAYLOAD,
    EmbeddedNats,
    NatsServerError,
    find_nats_server,
    free_port,
)
from cloudiag.bus.messages import (
    AgentReport,
    CancelReply,
    CancelRequest,
    NetnsAccess,
    OutputLine,
    RunAccepted,
    RunResult,
    StatusReply,
    VmReport,
)
from tests.unit.agent_fakes import ROUTER, FakeExecutor, request

MIB = 1 << 20


def _result(stdout: str, stderr: str = "") -> RunResult:
    return RunResult(job_id="j1", stdout=stdout, stderr=stderr, exitcode="0", duration=1.5)


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


class FakeBus:
    """A connected client as the agent uses it: each publish is checked, kept or refused."""

    def __init__(self, max_payload: int, refuse: Callable[[bytes], Exception | None]) -> None:
        self.max_payload = max_payload
        self.refuse = refuse
        self.sent: list[tuple[str, RunResult]] = []

    async def publish(self, subject: str, payload: bytes) -> None:
        error = self.refuse(payload)
        if error is not None:
            raise error
        self.sent.append((subject, RunResult.model_validate_json(payload)))


async def test_the_result_is_cut_to_the_connections_limit() -> None:
    def too_big(payload: bytes) -> Exception | None:
        return MaxPayloadError() if len(payload) > 64 * 1024 else None

    bus = FakeBus(64 * 1024, too_big)
    await send_result(bus, _result("x" * MIB))  # type: ignore[arg-type]
    [(subject, sent)] = bus.sent
    assert subject == subjects.job_result("j1")
    assert sent.truncated is True and 0 < len(sent.stdout) < 64 * 1024


async def test_a_result_that_cannot_be_sent_becomes_an_error_result() -> None:
    def closed_once(payload: bytes) -> Exception | None:
        return ConnectionClosedError() if not bus.sent and b'"error":""' in payload else None

    bus = FakeBus(MIB, closed_once)
    await send_result(bus, _result("PING ok\n"))  # type: ignore[arg-type]
    [(_, sent)] = bus.sent
    assert sent.job_id == "j1" and sent.exitcode == "0"
    assert sent.error.startswith("The agent could not send the result over the message bus")


@contextlib.asynccontextmanager
async def nats_server(tmp_path: Path, max_payload: int | None) -> AsyncIterator[Client]:
    """A client of a nats-server on loopback: the private one `cloudiag serve` starts
    (max_payload None), or one with only that max_payload (0: nats-server's default)."""
    if max_payload is None:
        server = EmbeddedNats(tmp_path / "store")
        try:
            url = await server.start()
        except NatsServerError as exc:
            pytest.skip(str(exc))
        try:
            nc = await nats.connect(url, allow_reconnect=False)
            try:
                yield nc
            finally:
                await nc.close()
        finally:
            await server.stop()
        return
    try:
        binary = find_nats_server()
    except NatsServerError as exc:
        pytest.skip(str(exc))
    port = free_port()
    config = tmp_path / "nats.conf"
    lines = [f"listen: {json.dumps(f'127.0.0.1:{port}')}"]
    lines += [f"max_payload: {max_payload}"] if max_payload else []
    config.write_text("\n".join(lines) + "\n")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-c",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            break
        nc = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False)
        try:
            yield nc
        finally:
            await nc.close()
    finally:
        proc.terminate()
        await proc.wait()


@pytest.mark.parametrize(
    "max_payload", [None, 0, 256 * 1024], ids=["private-server", "nats-default", "small"]
)
async def test_a_result_at_the_cap_arrives_whatever_the_servers_limit(
    tmp_path: Path, max_payload: int | None
) -> None:
    """stdout and stderr each at the 1 MiB cap: whole through the private server, cut to fit
    through a server with a smaller limit."""
    async with nats_server(tmp_path, max_payload) as nc:
        sub = await nc.subscribe(subjects.job_result("j1"))
        result = _result("o" * MIB, "e" * MIB)
        await send_result(nc, result)
        got = RunResult.model_validate_json((await sub.next_msg(timeout=5)).data)
        if max_payload is None:
            assert nc.max_payload == MAX_PAYLOAD
            assert got == result
        else:
            assert len(got.encode()) <= nc.max_payload < len(result.encode())
            assert got.truncated is True and got.stdout and got.stdout == "o" * len(got.stdout)


class FlakyBus:
    """A client the agent connects to: its first publishes fail as during a reconnect."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.reports: list[AgentReport] = []
        self.beating = asyncio.Event()

    async def subscribe(self, subject: str, cb: object = None) -> None:
        return None

    async def publish(self, subject: str, payload: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise OutboundBufferLimitError
        self.reports.append(AgentReport.model_validate_json(payload))
        if len(self.reports) >= 3:
            self.beating.set()

    async def flush(self, timeout: float) -> None:
        return None

    async def close(self) -> None:
        return None


async def test_the_agent_keeps_beating_through_failed_heartbeats(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bus = FlakyBus(failures=3)

    async def connect(url: str, name: str) -> FlakyBus:
        return bus

    async def no_addresses() -> list[str]:
        return []

    class NoVms:
        zone = Zone(id="z1", name="zone")
        host = Host(id="h1")

        async def vms(self) -> list[VmReport]:
            return []

    monkeypatch.setattr(agent_module, "connect", connect)
    monkeypatch.setattr(agent_module, "host_addresses", no_addresses)
    agent = Agent("nats://127.0.0.1:1", NoVms(), Executors({}), heartbeat_interval=0.01)
    task = asyncio.create_task(agent.run())
    try:
        # The first report and two beats fail; the agent is still there for the next ones.
        await asyncio.wait_for(bus.beating.wait(), 5)
        assert not task.done()
        assert agent.ready.is_set()
    finally:
        agent.stop()
        await asyncio.wait_for(task, 5)
    assert all(r.host_id == "h1" for r in bus.reports)
    assert bus.reports[-1].connected is False  # It still said goodbye.


class OneVmSource:
    """A host with one router, reached through a namespace."""

    zone = Zone(id="z1", name="zone")
    host = Host(id="h-bus", name="kvm-1")

    async def vms(self) -> list[VmReport]:
        return [ROUTER]


async def test_the_agent_serves_runs_refusals_cancels_and_status_over_nats(
    tmp_path: Path,
) -> None:
    """Through a real nats-server: the report carries the typed access, a request for the
    VM is accepted and runs on its executor, a bad one is refused, a cancel stops the run."""
    executor = FakeExecutor(block=True, lines=[("stdout", "64 bytes\n")])
    async with nats_server(tmp_path, 0) as nc:
        reports = await nc.subscribe(subjects.AGENT_REPORTS)
        output = await nc.subscribe(subjects.job_output("j1"))
        results = await nc.subscribe(subjects.job_result("j1"))
        agent = Agent(
            f"nats://127.0.0.1:{nc.connected_url.port}",
            OneVmSource(),
            Executors({NetnsAccess: executor}),
            heartbeat_interval=30,
        )
        task = asyncio.create_task(agent.run())
        try:
            report = AgentReport.model_validate_json((await reports.next_msg(timeout=5)).data)
            assert (report.host_id, report.host_name, report.zone_id) == ("h-bus", "kvm-1", "z1")
            assert [vm.access for vm in report.vms] == [NetnsAccess(namespace="lab-r-1-VM")]

            async def ask(subject: str, payload: bytes) -> bytes:
                return (await nc.request(subject, payload, timeout=5)).data

            run = subjects.agent_run("h-bus")
            refused = RunAccepted.model_validate_json(await ask(run, b"{}"))
            assert not refused.accepted and refused.error.startswith("malformed request")
            elsewhere = request("j0", "vm-elsewhere").encode()
            refused = RunAccepted.model_validate_json(await ask(run, elsewhere))
            assert refused.error == "VM vm-elsewhere is not on host kvm-1"
            assert executor.runs == []

            accepted = RunAccepted.model_validate_json(await ask(run, request("j1").encode()))
            assert accepted == RunAccepted(accepted=True)
            line = OutputLine.model_validate_json((await output.next_msg(timeout=5)).data)
            assert (line.seq, line.text) == (1, "64 bytes\n")
            status = StatusReply.model_validate_json(await ask(subjects.agent_status("h-bus"), b""))
            assert (status.running, status.spawned) == (["j1"], 1)

            cancel = CancelRequest(job_id="j1", by="admin").encode()
            reply = CancelReply.model_validate_json(
                await ask(subjects.agent_cancel("h-bus"), cancel)
            )
            assert reply.cancelled is True
            result = RunResult.model_validate_json((await results.next_msg(timeout=5)).data)
            assert (result.cancelled_by, result.stdout) == ("admin", "partial\n")
            again = CancelReply.model_validate_json(
                await ask(subjects.agent_cancel("h-bus"), cancel)
            )
            assert again == CancelReply(cancelled=False, error="not running")
        finally:
            agent.stop()
            await asyncio.wait_for(task, 5)
