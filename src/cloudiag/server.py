"""`cloudiag serve`: database, bus, job runner and the HTTP API in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from nats.aio.client import Client
from nats.aio.msg import Msg
from pydantic import ValidationError

from cloudiag.api.app import create_app
from cloudiag.api.context import AppState
from cloudiag.bus import subjects
from cloudiag.bus.connect import connect
from cloudiag.bus.embedded import EmbeddedNats
from cloudiag.bus.messages import AgentReport
from cloudiag.bus.streams import ensure_output_stream
from cloudiag.db.engine import create_engine, session_factory
from cloudiag.db.migrate import upgrade
from cloudiag.jobs.runner import JobRunner
from cloudiag.jobs.server_identity import claim_server_id
from cloudiag.services import accounts, housekeeping, inventory
from cloudiag.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Running:
    """A started server's parts, for the demo and the tests."""

    settings: Settings
    nats_url: str
    state: AppState
    nc: Client
    #: Set on the first start only: the generated admin account.
    admin: accounts.NewUser | None


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the caller owns Ctrl-C and cleanup."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _consume_reports(nc: Client, state: AppState) -> None:
    async def on_report(msg: Msg) -> None:
        try:
            report = AgentReport.model_validate_json(msg.data)
        except ValidationError:
            log.warning("malformed agent report ignored")
            return
        try:
            async with state.db.begin() as db:
                await inventory.apply_report(db, report)
        except Exception:
            log.exception("could not store the report of host %s", report.host_id)

    # A queue group: with several servers, each report is stored once.
    await nc.subscribe(subjects.AGENT_REPORTS, queue=subjects.SERVERS_QUEUE, cb=on_report)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Running]:
    """Start everything but the HTTP listener; stop it all on exit, in reverse order."""
    identity = await asyncio.to_thread(claim_server_id, settings.data_dir, settings.server_id)
    engine = create_engine(settings.resolved_database_url())
    embedded: EmbeddedNats | None = None
    nc: Client | None = None
    runner: JobRunner | None = None
    sweeper: asyncio.Task[None] | None = None
    try:
        log.info(
            "management server id %s (from %s) on %s:%s",
            identity.id,
            identity.source,
            socket.gethostname(),
            settings.port,
        )
        await upgrade(engine)
        db = session_factory(engine)
        async with db.begin() as session:
            admin = await accounts.ensure_admin(session)
        nats_url = settings.nats_url
        if not nats_url:
            embedded = EmbeddedNats(settings.data_dir / "nats")
            nats_url = await embedded.start()
        holder: list[AppState] = []

        async def restore_stream() -> None:
            # A restarted nats-server lost the memory stream of job output: make it again.
            if holder and nc is not None:
                holder[0].js = await ensure_output_stream(nc)

        nc = await connect(
            nats_url, f"cloudiag-server-{socket.gethostname()}", on_reconnect=restore_stream
        )
        runner = JobRunner(
            db,
            nc,
            server_id=identity.id,
            server_label=f"{socket.gethostname()}:{settings.port}",
            concurrency=settings.job_concurrency,
        )
        await runner.recover()
        await runner.heartbeat()
        sweeper = asyncio.create_task(
            housekeeping.run_forever(runner, db, settings.session_lifetime)
        )
        js = await ensure_output_stream(nc)
        state = AppState(settings=settings, db=db, runner=runner, nc=nc, js=js)
        holder.append(state)
        await _consume_reports(nc, state)
        yield Running(settings, nats_url, state, nc, admin)
    finally:
        if sweeper is not None:
            sweeper.cancel()
        if runner is not None:
            await runner.close()
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.drain()
        if embedded is not None:
            await embedded.stop()
        await engine.dispose()
        identity.release()


async def serve_http(
    state: AppState, host: str, port: int, stop: asyncio.Event, ready: asyncio.Event | None = None
) -> None:
    """Serve the API until `stop` is set."""
    config = uvicorn.Config(
        create_app(state), host=host, port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = _Uvicorn(config)
    task = asyncio.create_task(server.serve())
    # uvicorn offers a flag, not an event, for "listening".
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if task.done():
        await task  # Surfaces the bind error.
        raise RuntimeError(f"the HTTP server did not start on {host}:{port}")
    if ready is not None:
        ready.set()
    await stop.wait()
    server.should_exit = True
    await task


def stop_on_signals(stop: asyncio.Event) -> None:
    """Ctrl-C and SIGTERM set `stop`; a second Ctrl-C is handled the same way."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def admin_banner(admin: accounts.NewUser | None, url: str) -> str:
    """What the first start prints about the generated admin account."""
    where = f"cloudiag web UI at {url}/ and API at {url}/client/api"
    if admin is None:
        return where
    return (
        f"{where}\n"
        f"First start: created user {admin.username!r} (role Admin)\n"
        f"  password:  {admin.password}\n"
        f"  apikey:    {admin.apikey}\n"
        f"  secretkey: {admin.secretkey}\n"
        "Log in with: login username=admin password=<password> (POST), or sign calls with the keys."
    )
