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

from cloudiag import datadir
from cloudiag.accounts import secret_box
from cloudiag.api.app import create_app
from cloudiag.api.context import AppState
from cloudiag.bus import streams, subjects
from cloudiag.bus.access import BusAccess
from cloudiag.bus.connect import connect
from cloudiag.bus.embedded import AUTHORIZATION_FILE, EmbeddedNats
from cloudiag.bus.messages import AgentReport
from cloudiag.bus.nkey_files import load_or_create_seed, public_key
from cloudiag.db.engine import create_engine, session_factory
from cloudiag.db.migrate import upgrade
from cloudiag.jobs import data_archive
from cloudiag.jobs.data_archive import DataArchives
from cloudiag.jobs.runner import JobRunner
from cloudiag.jobs.server_identity import claim_server_id
from cloudiag.metrics import bus as bus_metrics
from cloudiag.metrics import database as database_metrics
from cloudiag.services import accounts, agent_keys, housekeeping
from cloudiag.services.heartbeats import ReportIntake
from cloudiag.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Running:
    """A started server's parts, for the demo and the tests."""

    settings: Settings
    nats_url: str
    #: The management servers' credentials on that bus.
    access: BusAccess
    state: AppState
    nc: Client


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the caller owns Ctrl-C and cleanup."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _consume_reports(nc: Client, intake: ReportIntake) -> None:
    """Hand the agents' reports to the intake, each checked against its subject's host."""

    async def on_report(msg: Msg) -> None:
        host_id = subjects.host_of(msg.subject)
        try:
            report = AgentReport.model_validate_json(msg.data)
        except ValidationError:
            log.warning("malformed agent report of host %s ignored", host_id)
            return
        if report.host_id != host_id:
            # The bus let this agent publish as its own host only: it spoke for another.
            log.error("report for host %s sent as host %s refused", report.host_id, host_id)
            return
        intake.offer(report, msg.data)

    # A queue group: with several servers, each report is stored once.
    await nc.subscribe(subjects.AGENT_REPORTS, queue=subjects.SERVERS_QUEUE, cb=on_report)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Running]:
    """Start everything but the HTTP listener; stop it all on exit, in reverse order."""
    await asyncio.to_thread(datadir.prepare, settings.data_dir, sqlite=not settings.database_url)
    identity = await asyncio.to_thread(claim_server_id, settings.data_dir, settings.server_id)
    engine = create_engine(settings.resolved_database_url())
    database_metrics.watch(engine)
    embedded: EmbeddedNats | None = None
    nc: Client | None = None
    runner: JobRunner | None = None
    sweeper: asyncio.Task[None] | None = None
    reports: asyncio.Task[None] | None = None
    prober: asyncio.Task[None] | None = None
    collector: asyncio.Task[None] | None = None
    try:
        log.info(
            "management server id %s (from %s) on %s:%s",
            identity.id,
            identity.source,
            socket.gethostname(),
            settings.port,
        )
        await upgrade(engine)
        box = await asyncio.to_thread(
            secret_box.load_or_create, settings.resolved_secrets_key_file()
        )
        db = session_factory(engine)
        async with db.begin() as session:
            try:
                sealed = await accounts.seal_clear_secrets(session, box)
            except secret_box.SecretBoxError as exc:
                key_file = settings.resolved_secrets_key_file()
                raise secret_box.SecretBoxError(
                    f"{exc} ({key_file}): give the key file the database was sealed with "
                    "(CLOUDIAG_SECRETS_KEY_FILE)"
                ) from None
            if sealed:
                log.info("sealed %d API secret keys stored in clear by an older version", sealed)
            admin = await accounts.ensure_admin(session, box=box)
            if admin is not None:
                # Saved before the account is committed: a start that fails after this
                # point cannot leave an admin whose password nobody has seen.
                await asyncio.to_thread(
                    datadir.save_credentials, settings.data_dir, admin_credentials(admin)
                )
        nats_url = settings.nats_url
        access = settings.bus_access()
        if not nats_url:
            seed = await asyncio.to_thread(load_or_create_seed, settings.resolved_nkey_seed_file())
            manager = public_key(seed)
            async with db() as session:
                await agent_keys.publish_authorization(
                    session, settings.data_dir / AUTHORIZATION_FILE, [manager]
                )
            embedded = EmbeddedNats(settings.data_dir / "nats", manager)
            nats_url = await embedded.start()
            access = BusAccess(nkey_seed=seed)
        intake: ReportIntake | None = None

        async def restore_streams() -> None:
            # A replaced nats-server may have lost the streams and the agents' consumers:
            # make them again.
            if intake is not None:
                intake.forget_consumers()
            if runner is not None:
                await runner.ensure_streams()

        nc = await connect(
            nats_url,
            f"cloudiag-server-{socket.gethostname()}",
            on_reconnect=restore_streams,
            access=access,
        )
        archives = DataArchives(
            directory=settings.data_dir / data_archive.FOLDER,
            key=box.derive("diagnostics-data-url"),
            max_age=settings.diagnostics_data_max_file_age,
        )
        runner = JobRunner(
            db,
            nc,
            server_id=identity.id,
            server_label=f"{socket.gethostname()}:{settings.port}",
            start_timeout=settings.start_timeout,
            sweep_interval=settings.sweep_interval,
            archives=archives,
        )
        await runner.start()
        await runner.heartbeat()
        sweeper = asyncio.create_task(
            housekeeping.run_forever(runner, db, settings.session_lifetime)
        )
        prober = asyncio.create_task(bus_metrics.probe_forever(nc))
        if settings.diagnostics_data_gc_enable:
            collector = asyncio.create_task(
                housekeeping.collect_data_garbage(archives, settings.diagnostics_data_gc_interval)
            )
        state = AppState(
            settings=settings,
            db=db,
            runner=runner,
            nc=nc,
            secrets=box,
            js=nc.jetstream(),
            archives=archives,
        )
        js = nc.jetstream()
        intake = ReportIntake(db, consumer=lambda host: streams.ensure_agent_consumer(js, host))
        reports = asyncio.create_task(intake.run())
        await _consume_reports(nc, intake)
        yield Running(settings, nats_url, access, state, nc)
    finally:
        for task in (sweeper, reports, prober, collector):
            if task is not None:
                task.cancel()
        if runner is not None:
            await runner.close()
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.drain()
        if embedded is not None:
            await embedded.stop()
        await engine.dispose()
        identity.release()


def listen_socket(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound now so that a busy port is known before anything
    starts; port 0 picks a free one (getsockname tells which). Raises OSError.

    Blocking (a host name is resolved): call it in a thread.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    """The base URL of the API served on `sock`, with the port really bound."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve_http(
    state: AppState, sock: socket.socket, stop: asyncio.Event, ready: asyncio.Event | None = None
) -> None:
    """Serve the API on `sock` until `stop` is set."""
    proxies = state.settings.trusted_proxies
    config = uvicorn.Config(
        create_app(state),
        log_config=None,
        access_log=False,
        lifespan="off",
        # httptools' C parser: a request costs the server a fraction of h11's pure Python.
        http="httptools",
        # X-Forwarded-For names the client only when a proxy the operator trusts sent it;
        # uvicorn's default trusts loopback, and any local user can connect from there.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )
    server = _Uvicorn(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    # uvicorn offers a flag, not an event, for "listening".
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    if task.done():
        await task
        raise RuntimeError(f"the HTTP server did not start on {url_of(sock)}")
    if ready is not None:
        ready.set()
    await stop.wait()
    if state.runner is not None:  # (Some tests serve the API without a job engine.)
        state.runner.finals.close()  # Requests waiting for a job answer now, not the exit.
    server.should_exit = True
    await task


def stop_on_signals(stop: asyncio.Event) -> None:
    """Ctrl-C and SIGTERM set `stop`; a second Ctrl-C is handled the same way."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def admin_credentials(admin: accounts.NewUser) -> dict[str, str]:
    """What credentials.json keeps of the generated admin account."""
    return {
        "username": admin.username,
        "password": admin.password,
        "apikey": admin.apikey,
        "secretkey": admin.secretkey,
    }


def admin_banner(saved: dict[str, str] | None, url: str) -> str:
    """What every start prints: where to go, and the first admin's login until it changes."""
    where = f"cloudiag web UI at {url}/ and API at {url}/client/api"
    if saved is None:
        return where
    return (
        f"{where}\n"
        f"Generated user {saved['username']!r} (role Admin), shown until its password changes\n"
        f"  password:  {saved['password']}\n"
        f"  apikey:    {saved['apikey']}\n"
        f"  secretkey: {saved['secretkey']}\n"
        "Log in with: login username=admin password=<password> (POST), or sign calls with the keys."
    )
