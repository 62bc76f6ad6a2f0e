"""The bus's authorization on a real nats-server with cloudiag's authorization file: an
agent works with only its own host's rights, cannot read or write as another host, a
management server ignores a body about another host than its subject's, a revoked agent
is dropped and refused; and TLS with a CA of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.errors import Error as NatsError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.agent.agent import Agent
from cloudiag.agent.executors.registry import Executors
from cloudiag.agent.sources.base import Host, Zone
from cloudiag.bus import subjects
from cloudiag.bus.access import BusAccess
from cloudiag.bus.authorization import AgentUser, write_authorization
from cloudiag.bus.embedded import AUTHORIZATION_FILE, PID_FILE, reload_private
from cloudiag.bus.messages import AgentReport, NetnsAccess, RunResult, VmReport
from cloudiag.bus.nkey_files import new_seed, public_key
from cloudiag.bus.streams import ensure_agent_consumer, ensure_jetstream
from cloudiag.db.models import Host as HostRow
from cloudiag.jobs.diagnostics_job import DiagnosticsJob
from cloudiag.jobs.result_intake import ResultIntake
from cloudiag.server import _consume_reports
from cloudiag.services.heartbeats import ReportIntake
from tests.tls_certs import make_certs
from tests.unit.agent_fakes import ROUTER, FakeExecutor, request
from tests.unit.nats_servers import nats_process

A, B = "host-a", "host-b"


@dataclass
class AuthorizedBus:
    """A nats-server with cloudiag's authorization: a manager and the agents of A and B."""

    url: str
    folder: Path
    manager: str
    seeds: dict[str, str]
    nc: Client

    def write(self, hosts: list[str]) -> None:
        """Allow the manager and the agents of `hosts` only."""
        write_authorization(
            self.folder / AUTHORIZATION_FILE,
            [public_key(self.manager)],
            [AgentUser(h, public_key(self.seeds[h])) for h in hosts],
        )


@contextlib.asynccontextmanager
async def authorized_bus(tmp_path: Path) -> AsyncIterator[AuthorizedBus]:
    """The bus, its streams and both hosts' request consumers made by the manager."""
    manager = new_seed()
    seeds = {A: new_seed(), B: new_seed()}
    folder = tmp_path / "nats"
    folder.mkdir()
    bus = AuthorizedBus("", folder, manager, seeds, None)  # type: ignore[arg-type]
    bus.write([A, B])
    lines = (
        f"include {json.dumps(AUTHORIZATION_FILE)}",
        f"pid_file: {json.dumps(str(folder / PID_FILE))}",
    )
    async with nats_process(folder, *lines) as url:
        bus.url = url
        bus.nc = await nats.connect(url, nkeys_seed_str=manager, allow_reconnect=False)
        try:
            js, _ = await ensure_jetstream(bus.nc)
            for host in (A, B):
                await ensure_agent_consumer(js, host)
            yield bus
        finally:
            await bus.nc.close()


@dataclass
class AgentClient:
    """A client holding one host's agent credentials, and the errors the server sent it."""

    nc: Client
    errors: list[Exception]

    async def violations(self, expected: int) -> list[str]:
        """The permission violations the server reported (lower case, as nats-py says
        them), once there are `expected` of them, or after a few seconds."""
        await self.nc.flush(timeout=5)
        found: list[str] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while True:
                    found = [str(e).lower() for e in self.errors]
                    found = [e for e in found if "permissions violation" in e]
                    if len(found) >= expected:
                        break
                    await asyncio.sleep(0.02)
        return found


@contextlib.asynccontextmanager
async def as_agent(bus: AuthorizedBus, host: str) -> AsyncIterator[AgentClient]:
    """A client connected as the agent of `host`."""
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(
        bus.url,
        nkeys_seed_str=bus.seeds[host],
        inbox_prefix=subjects.agent_inbox_prefix(host),
        error_cb=on_error,
        allow_reconnect=False,
    )
    try:
        yield AgentClient(nc, errors)
    finally:
        await nc.close()


class HostSource:
    """Host A with one router."""

    zone = Zone(id="z1", name="zone")
    host = Host(id=A, name="kvm-a")

    async def vms(self) -> list[VmReport]:
        return [ROUTER]


async def test_an_agent_runs_a_job_with_only_its_own_hosts_rights(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with authorized_bus(tmp_path) as bus:
        js = bus.nc.jetstream()
        reports = await bus.nc.subscribe(subjects.AGENT_REPORTS)
        agent = Agent(
            bus.url,
            HostSource(),
            Executors({NetnsAccess: FakeExecutor()}),
            heartbeat_interval=30,
            access=BusAccess(nkey_seed=bus.seeds[A]),
        )
        task = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.ready.wait(), 10)
            report = await reports.next_msg(timeout=5)
            assert report.subject == subjects.agent_report(A)
            await js.publish(
                subjects.agent_request(A, "j1"), request("j1").encode(), stream="CLOUDIAG_REQUESTS"
            )
            async with asyncio.timeout(10):
                while True:
                    try:
                        msg = await js.get_msg(
                            subjects.RESULTS_STREAM, subject=subjects.job_result(A, "j1")
                        )
                        break
                    except NatsError:
                        await asyncio.sleep(0.05)
            assert RunResult.model_validate_json(msg.data or b"").exitcode == "0"
            # Its record in the job table, under its own host's keys.
            kv = await js.key_value(subjects.JOBS_BUCKET)
            async with asyncio.timeout(10):
                while (
                    "finished"
                    not in ((await kv.get(subjects.job_key(A, "j1"))).value or b"").decode()
                ):
                    await asyncio.sleep(0.05)
        finally:
            agent.stop()
            await asyncio.wait_for(task, 15)
    assert "ermissions" not in caplog.text


async def test_an_agent_cannot_read_another_hosts_requests_or_replies(tmp_path: Path) -> None:
    async with authorized_bus(tmp_path) as bus, as_agent(bus, B) as b:
        await b.nc.subscribe(subjects.agent_status(A))
        await b.nc.subscribe(subjects.agent_requests(A))
        await b.nc.subscribe(f"{subjects.agent_inbox_prefix(A)}.>")
        await b.nc.subscribe(subjects.AGENT_REPORTS)
        # Reading through JetStream is publishing to its API: A's consumer of requests, a
        # consumer of its own on A's requests or A's job records, A's records by key.
        kv = f"KV_{subjects.JOBS_BUCKET}"
        keys = f"$KV.{subjects.JOBS_BUCKET}.{subjects.job_key(A, '>')}"
        api = [
            f"$JS.API.CONSUMER.MSG.NEXT.CLOUDIAG_REQUESTS.agent-{A}",
            f"$JS.API.CONSUMER.CREATE.CLOUDIAG_REQUESTS.spy.{subjects.agent_requests(A)}",
            f"$JS.API.CONSUMER.CREATE.{kv}.spy.{keys}",
            f"$JS.API.CONSUMER.CREATE.{kv}",
            f"$JS.API.DIRECT.GET.{kv}.$KV.{subjects.JOBS_BUCKET}.{subjects.job_key(A, 'j1')}",
            f"$JS.API.STREAM.MSG.GET.{kv}",
            f"$JS.API.STREAM.INFO.{kv}",
        ]
        for subject in api:
            await b.nc.publish(subject, b"{}")
        found = await b.violations(4 + len(api))
        assert len([v for v in found if "subscription" in v]) == 4, found
        for subject in api:
            assert any(f'publish to "{subject.lower()}"' in v for v in found), (subject, found)


@pytest.mark.parametrize(
    "subject",
    [
        subjects.agent_report(A),
        subjects.job_result(A, "j1"),
        subjects.job_output(A, "j1"),
        f"$KV.{subjects.JOBS_BUCKET}.{subjects.job_key(A, 'j1')}",
        subjects.agent_request(B, "j2"),  # Nor requests, even to itself.
    ],
)
async def test_an_agent_cannot_publish_as_another_host(tmp_path: Path, subject: str) -> None:
    async with authorized_bus(tmp_path) as bus, as_agent(bus, B) as b:
        seen = await bus.nc.subscribe(">")
        await bus.nc.flush()
        await b.nc.publish(subject, b"{}")
        found = await b.violations(1)
        assert found and subject.lower() in found[0], found
        got = []
        with contextlib.suppress(NatsError):
            while True:
                got.append((await seen.next_msg(timeout=0.2)).subject)
        assert subject not in got


async def test_the_server_ignores_a_report_about_another_host(
    tmp_path: Path, db: async_sessionmaker[AsyncSession]
) -> None:
    def report(host_id: str) -> bytes:
        return AgentReport(
            host_id=host_id,
            host_name=host_id,
            zone_id="z1",
            zone_name="zone",
            agent_version="t",
            session="s",
        ).encode()

    async with authorized_bus(tmp_path) as bus, as_agent(bus, B) as b:
        intake = ReportIntake(db)
        flushing = asyncio.create_task(intake.run())
        await _consume_reports(bus.nc, intake)
        await bus.nc.flush()
        await b.nc.publish(subjects.agent_report(B), report(A))  # Its own subject, A's body.
        await b.nc.publish(subjects.agent_report(B), report(B))
        await b.nc.flush()
        assert b.errors == []
        async with asyncio.timeout(10):
            while True:
                async with db() as session:
                    if await session.get(HostRow, B) is not None:
                        assert await session.get(HostRow, A) is None
                        break
                await asyncio.sleep(0.05)
        flushing.cancel()


async def test_the_server_refuses_a_result_for_another_hosts_job(
    tmp_path: Path, db: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    job_of_a = DiagnosticsJob(
        "jA", A, "kvm-a", "r-1-VM", "domainrouter", request("jA"), "u", "user", "acc", "dom"
    )
    stored: list[Any] = []
    async with authorized_bus(tmp_path) as bus, as_agent(bus, B) as b:
        js = bus.nc.jetstream()
        forged = RunResult(job_id="jA", stdout="forged\n", stderr="", exitcode="0")
        await b.nc.jetstream().publish(
            subjects.job_result(B, "jA"), forged.encode(), stream=subjects.RESULTS_STREAM
        )
        intake = ResultIntake(
            db,
            lambda: js,
            start_timeout=60,
            held=lambda job_id: job_of_a if job_id == "jA" else None,
            on_stored=lambda job_id, got: stored.append((job_id, got)),
        )
        with caplog.at_level(logging.ERROR):
            intake.start()
            try:
                async with asyncio.timeout(10):
                    while (await js.stream_info(subjects.RESULTS_STREAM)).state.messages:
                        await asyncio.sleep(0.05)
            finally:
                await intake.close()
    assert stored == []
    assert f"result sent by host {B} for a job of host {A} refused" in caplog.text


async def test_a_revoked_agent_is_dropped_and_refused(tmp_path: Path) -> None:
    async with authorized_bus(tmp_path) as bus, as_agent(bus, A) as a:
        assert a.nc.is_connected
        bus.write([B])
        assert reload_private(bus.folder)
        async with asyncio.timeout(10):
            while a.nc.is_connected:
                await asyncio.sleep(0.05)
        with pytest.raises(Exception, match=r"(?i)authorization"):
            await nats.connect(
                bus.url, nkeys_seed_str=bus.seeds[A], allow_reconnect=False, connect_timeout=3
            )
        # B, still registered, is unaffected.
        async with as_agent(bus, B) as b:
            assert b.nc.is_connected


async def test_tls_with_the_ca_works_and_without_it_fails_clearly(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    files = f"cert_file: {json.dumps(str(certs.cert))}, key_file: {json.dumps(str(certs.key))}"
    tls = f"tls {{ {files} }}"
    async with nats_process(tmp_path, tls, jetstream=False, scheme="tls") as url:
        nc = await nats.connect(url, allow_reconnect=False, **BusAccess(tls_ca=certs.ca).options())
        try:
            sub = await nc.subscribe("tls.check")
            await nc.publish("tls.check", b"over tls")
            assert (await sub.next_msg(timeout=5)).data == b"over tls"
        finally:
            await nc.close()
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            await nats.connect(
                url, allow_reconnect=False, connect_timeout=3, tls=ssl.create_default_context()
            )
