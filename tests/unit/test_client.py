"""cloudiag.client against the real API app in process (httpx's ASGI transport, SQLite), and
its edge cases and blocking face against stand-in transports."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from nats.errors import TimeoutError as NatsTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.accounts.secret_box import SecretBox
from cloudiag.api.app import create_app
from cloudiag.api.context import AppState
from cloudiag.bus import subjects
from cloudiag.bus.messages import OutputLine as BusLine
from cloudiag.client import (
    ApiCallError,
    ApiKey,
    AsyncClient,
    AsyncJob,
    Client,
    JobTimeout,
    OutputLine,
    signature,
)
from cloudiag.client.sse import ServerSentEvent, read_events
from cloudiag.db.models import AsyncJob as JobRow
from cloudiag.db.models import Host, VirtualMachine, Zone
from cloudiag.domain import JobStatus
from cloudiag.services import accounts
from cloudiag.settings import Settings

ZONE, HOST, ROUTER = (str(uuid.uuid4()) for _ in range(3))


@dataclass
class _Msg:
    data: bytes


class _Subscription:
    """The bus side of /client/stream: the lines published for the job, then silence."""

    def __init__(self, lines: list[BusLine]) -> None:
        self._pending: Iterator[BusLine] = iter(lines)

    async def next_msg(self, timeout: float) -> _Msg:
        line = next(self._pending, None)
        if line is None:
            await asyncio.sleep(timeout)
            raise NatsTimeout
        return _Msg(line.model_dump_json().encode())

    async def unsubscribe(self) -> None:
        return None


class _Bus:
    def __init__(self) -> None:
        self.lines: list[BusLine] = []
        self.subjects: list[str] = []

    async def subscribe(self, subject: str) -> _Subscription:
        self.subjects.append(subject)
        return _Subscription(self.lines)


@dataclass
class Api:
    """The app in process, its database, its bus and two accounts' keys."""

    transport: httpx.ASGITransport
    db: async_sessionmaker[AsyncSession]
    bus: _Bus
    admin: accounts.NewUser
    user: accounts.NewUser

    def client(self, who: accounts.NewUser | ApiKey | None = None) -> AsyncClient:
        key = ApiKey(who.apikey, who.secretkey) if isinstance(who, accounts.NewUser) else who
        http = httpx.AsyncClient(transport=self.transport, base_url="http://api")
        return AsyncClient("http://api", key, http=http)

    async def add_job(self, **fields: Any) -> str:
        async with self.db.begin() as db:
            row = JobRow(
                user_id=self.admin.id,
                account_id=self.admin.id,
                cmd="org.apache.cloudstack.api.command.admin.diagnostics.RunDiagnosticsCmd",
                instance_type="DomainRouter",
                instance_id=ROUTER,
                **fields,
            )
            db.add(row)
            await db.flush()
            return row.id

    async def finish_job(self, jobid: str, result: dict[str, Any]) -> None:
        async with self.db.begin() as db:
            row = await db.get(JobRow, jobid)
            assert row is not None
            row.status, row.result = JobStatus.SUCCEEDED, result


@pytest.fixture
async def api(db: async_sessionmaker[AsyncSession]) -> AsyncIterator[Api]:
    box = SecretBox.generate()
    async with db.begin() as session:
        admin = await accounts.create_user(session, "admin", "admin", box=box)
        user = await accounts.create_user(session, "plain", "user", box=box)
        # One flush each: the models have no relationships to order the inserts by.
        for row in (
            Zone(id=ZONE, name="lab-zone"),
            Host(id=HOST, name="lab-host", zone_id=ZONE),
            VirtualMachine(
                id=ROUTER, name="r-1-VM", vm_type="domainrouter", host_id=HOST, zone_id=ZONE
            ),
        ):
            session.add(row)
            await session.flush()
    bus = _Bus()
    state = AppState(Settings(), db=db, runner=None, nc=bus, secrets=box)  # type: ignore[arg-type]
    yield Api(httpx.ASGITransport(app=create_app(state)), db, bus, admin, user)


async def test_signed_calls_read_typed_answers(api: Api) -> None:
    async with api.client(api.admin) as client:
        assert [(z.id, z.name) for z in await client.list_zones()] == [(ZONE, "lab-zone")]
        (host,) = await client.list_hosts()
        assert (host.id, host.name, host.state) == (HOST, "lab-host", "Disconnected")
        (router,) = await client.list_routers()
        assert (router.id, router.name, router.hostid) == (ROUTER, "r-1-VM", HOST)
        assert "ping" in router.diagnosticstypes.split(",")
        assert await client.list_system_vms() == []
        types = {t.name: t for t in await client.list_diagnostics_types(targetid=ROUTER)}
        count = next(o for o in types["ping"].options if o.flag == "-c")
        assert (count.minimum, count.maximum) == (1, 100)
        # Fields the models do not declare are kept as received.
        assert (await client.list_zones())[0].model_dump()["networktype"] == "Advanced"


async def test_the_signature_is_the_servers(api: Api) -> None:
    """A request the client signed passes the server's check; one changed after signing fails."""
    async with api.client(api.admin) as client:
        r = await client.request("listRouters", keyword="r-1")
        assert r.status_code == 200
        query = dict(r.request.url.params)
        assert query["signature"] == signature(
            {k: v for k, v in query.items() if k != "signature"}, api.admin.secretkey
        )
    tampered = {**query, "keyword": "s-2"}
    async with httpx.AsyncClient(transport=api.transport, base_url="http://api") as raw:
        assert (await raw.get("/client/api", params=tampered)).status_code == 401


async def test_refusals_raise_with_the_servers_codes(api: Api) -> None:
    async with api.client(ApiKey(api.admin.apikey, "not-the-secret")) as client:
        with pytest.raises(ApiCallError) as refused:
            await client.list_zones()
    assert (refused.value.errorcode, refused.value.cserrorcode) == (401, None)
    assert refused.value.command == "listZones"
    async with api.client(api.user) as client:
        with pytest.raises(ApiCallError) as forbidden:
            await client.run_diagnostics(ROUTER, "ping", "198.51.100.10")
        assert forbidden.value.errorcode == 432 and "not allowed" in forbidden.value.errortext
        # Unknown to the server: the error comes under errorresponse.
        with pytest.raises(ApiCallError) as unknown:
            await client.call("deployVirtualMachine")
        assert unknown.value.errorcode == 432
    async with api.client(api.admin) as client:
        with pytest.raises(ApiCallError) as bad:
            await client.query_job(str(uuid.uuid4()))
    assert (bad.value.errorcode, bad.value.cserrorcode) == (431, 4350)
    assert bad.value.errortext.startswith("Unable to find a job with id")


async def test_an_answer_that_is_not_the_apis_is_an_error() -> None:
    page = httpx.MockTransport(lambda request: httpx.Response(502, text="<h1>Bad Gateway</h1>"))
    async with AsyncClient("http://api", http=httpx.AsyncClient(transport=page)) as client:
        with pytest.raises(ApiCallError) as err:
            await client.call("listZones")
    assert err.value.errorcode == 502 and "Bad Gateway" in err.value.errortext


async def test_a_session_calls_without_keys_until_logout(api: Api) -> None:
    async with api.client() as client:
        with pytest.raises(ApiCallError) as wrong:
            await client.login("admin", "wrong password")
        assert wrong.value.errorcode == 531
        login = await client.login("admin", api.admin.password)
        assert login.username == "admin" and login.sessionkey == client.sessionkey
        assert [z.name for z in await client.list_zones()] == ["lab-zone"]
        r = await client.request("listZones")
        assert "signature" not in r.request.url.params  # The session, not a key.
        await client.logout()
        with pytest.raises(ApiCallError) as after:
            await client.list_zones()
        assert after.value.errorcode == 401


async def test_wait_job_polls_until_the_job_is_final(api: Api) -> None:
    jobid = await api.add_job(request={"type": "ping", "ipaddress": "198.51.100.10"})
    result = {"diagnostics": {"exitcode": "0", "stdout": "1 received\n", "stderr": ""}}

    async def finish_later() -> None:
        await asyncio.sleep(0.3)
        await api.finish_job(jobid, result)

    async with api.client(api.admin) as client:
        assert not (await client.query_job(jobid)).done
        finisher = asyncio.create_task(finish_later())
        job = await client.wait_job(jobid, timeout=10, interval=0.05)
        await finisher
    assert job.jobstatus is JobStatus.SUCCEEDED and job.jobid == jobid
    assert job.diagnostics is not None and job.diagnostics.stdout == "1 received\n"
    assert job.request == {"type": "ping", "ipaddress": "198.51.100.10"}
    async with api.client(api.admin) as client:
        assert [j.jobid for j in await client.list_async_jobs(listall=True)] == [jobid]


async def test_wait_job_gives_up_at_its_deadline(api: Api) -> None:
    jobid = await api.add_job()
    loop = asyncio.get_running_loop()
    async with api.client(api.admin) as client:
        started = loop.time()
        with pytest.raises(JobTimeout) as late:
            await client.wait_job(jobid, timeout=0.3, interval=0.05)
    assert late.value.jobid == jobid
    assert 0.3 <= loop.time() - started < 5


async def test_stream_yields_the_lines_then_the_final_job(api: Api) -> None:
    jobid = await api.add_job(host_id="host-1")  # Its output comes from its host's agent.
    api.bus.lines = [
        BusLine(job_id=jobid, seq=1, stream="stdout", text="PING 198.51.100.10\n"),
        BusLine(job_id=jobid, seq=2, stream="stdout", text="1 received\n"),
    ]
    await api.finish_job(jobid, {"diagnostics": {"exitcode": "0", "stdout": "", "stderr": ""}})
    async with api.client(api.admin) as client:
        items = [item async for item in client.stream(jobid)]
    assert [(i.seq, i.text) for i in items if isinstance(i, OutputLine)] == [
        (1, "PING 198.51.100.10\n"),
        (2, "1 received\n"),
    ]
    assert isinstance(items[-1], AsyncJob) and items[-1].jobstatus is JobStatus.SUCCEEDED
    assert api.bus.subjects == [subjects.job_output("host-1", jobid)]


async def test_stream_of_a_job_the_caller_cannot_see_is_refused(api: Api) -> None:
    jobid = await api.add_job()
    async with api.client(api.user) as client:
        with pytest.raises(ApiCallError) as refused:
            [item async for item in client.stream(jobid)]
    assert refused.value.errorcode == 431 and "Unable to find a job" in refused.value.errortext


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_sse_events_comments_and_multiline_data() -> None:
    events = [
        e
        async for e in read_events(
            _lines(": stream open", "", "event: line", "data: a", "", "data: b", "data: c", "")
        )
    ]
    assert events == [ServerSentEvent("line", "a"), ServerSentEvent("message", "b\nc")]


async def test_a_stream_answer_that_is_no_event_stream_is_an_error() -> None:
    json_ok = httpx.MockTransport(lambda request: httpx.Response(200, json={"streamresponse": {}}))
    async with AsyncClient("http://api", http=httpx.AsyncClient(transport=json_ok)) as client:
        with pytest.raises(ApiCallError) as err:
            [item async for item in client.stream(str(uuid.uuid4()))]
    assert "no event stream" in err.value.errortext


def _fake_server(request: httpx.Request) -> httpx.Response:
    """Just enough of the API for the blocking client: a job that is done, and its stream."""
    if request.url.path == "/client/stream":
        body = 'event: line\ndata: {"seq": 1, "stream": "stdout", "text": "hi\\n"}\n\n'
        body += 'event: end\ndata: {"jobid": "j1", "jobstatus": 1}\n\n'
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    command = request.url.params["command"]
    if command == "queryAsyncJobResult":
        return httpx.Response(
            200, json={"queryasyncjobresultresponse": {"jobid": "j1", "jobstatus": 1}}
        )
    return httpx.Response(200, json={f"{command.lower()}response": {"count": 0}})


def _blocking_client() -> Client:
    http = httpx.AsyncClient(transport=httpx.MockTransport(_fake_server))
    return Client("http://api", ApiKey("key", "secret"), http=http)


def test_the_blocking_client_calls_waits_and_streams() -> None:
    with _blocking_client() as client:
        assert client.call("listZones") == {"count": 0}
        assert client.wait_job("j1").jobstatus is JobStatus.SUCCEEDED
        items = list(client.stream("j1"))
    assert isinstance(items[0], OutputLine) and items[0].text == "hi\n"
    assert isinstance(items[1], AsyncJob) and items[1].jobid == "j1"


async def test_the_blocking_client_works_inside_a_running_event_loop() -> None:
    """The calls run on the client's own loop: a caller's running loop is no obstacle."""
    with _blocking_client() as client:
        assert client.call("listZones") == {"count": 0}


def test_the_blocking_client_serves_several_threads_at_once() -> None:
    with _blocking_client() as client, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: client.call("listHosts", page=i + 1), range(32)))
    assert answers == [{"count": 0}] * 32
