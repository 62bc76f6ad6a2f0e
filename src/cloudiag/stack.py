"""The whole stack in one process tree: server, private NATS, local agents and lab."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from pathlib import Path

from sqlalchemy import select

from cloudiag import datadir, host_registry
from cloudiag.accounts.secret_box import SecretBoxError
from cloudiag.bus.streams import JetStreamUnavailable
from cloudiag.child_process import die_with_parent
from cloudiag.console import say
from cloudiag.db.models import Host
from cloudiag.jobs.server_identity import ServerIdError
from cloudiag.lab import manager as lab
from cloudiag.lab.inventory import host_id as lab_host_id
from cloudiag.lab.layout import LabSize
from cloudiag.lab.topology import hypervisor_name, namespace
from cloudiag.server import (
    Running,
    admin_banner,
    admin_credentials,
    listen_socket,
    running,
    serve_http,
    stop_on_signals,
    url_of,
)
from cloudiag.services import accounts
from cloudiag.settings import Settings
from cloudiag.supervisor import Supervisor

log = logging.getLogger(__name__)


#: The demo's own agents' config files (their nkey seeds) in the data directory.
LOCAL_AGENT_CONFIG = "local-agent.toml"


def agent_data_dir(settings: Settings, host: int) -> Path:
    """The data directory of the agent of lab host ``host``: the demo's own for the first,
    its own below it for the others (``hosts/host2``…)."""
    return settings.data_dir if host == 1 else settings.data_dir / "hosts" / f"host{host}"


def local_host_name(settings: Settings, host: int) -> str:
    """The name lab host ``host`` registers under: ``lab-<prefix>`` for a lab of one host,
    else its hypervisor namespace (what its inventory names it)."""
    if settings.lab_hosts == 1:
        return f"lab-{settings.lab_prefix}"
    return namespace(settings.lab_prefix, hypervisor_name(host))


async def start_local_agent(run: Running, host: int = 1) -> Supervisor:
    """`cloudiag agent` of lab host ``host`` as a child process, restarted when it dies: it
    talks to the server over NATS like any agent, with credentials of its own (`cloudiag
    host add`'s). Stop it with the returned supervisor's `stop`."""
    settings = run.settings
    name = LOCAL_AGENT_CONFIG if host == 1 else f"local-agent-host{host}.toml"
    config = settings.data_dir / name
    await host_registry.local_agent(
        run.state.db,
        settings,
        config,
        name=local_host_name(settings, host),
        host_id=lab_host_id(settings.lab_prefix, host),
        nats_url=run.nats_url,
        agent={
            "lab_prefix": settings.lab_prefix,
            "executor": settings.executor,
            # Results not yet delivered wait in the demo's data directory (the first
            # host's) or one of their own below it.
            "data_dir": agent_data_dir(settings, host),
        },
    )
    argv = [
        sys.executable,
        "-m",
        "cloudiag",
        "agent",
        "--config",
        str(config),
        "--lab-host",
        str(host),
        "--heartbeat-interval",
        str(settings.heartbeat_interval),
    ]
    # Its settings are the file's: the serve process's own must not win over them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDIAG_NATS")}

    async def spawn() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            env=env,
            # Out of the terminal's process group: Ctrl-C reaches the demo alone, which
            # stops the agent itself (an agent ending on its own would be restarted).
            # The kernel stops it if the demo dies.
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )

    agent = Supervisor("local agent" if host == 1 else f"local agent of host {host}", spawn)
    await agent.start()
    return agent


async def wait_for_host(run: Running, timeout: float = 15.0, hosts: int = 1) -> bool:
    """True once ``hosts`` agents' first reports are stored."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        async with run.state.db() as db:
            connected = (await db.execute(select(Host.id).where(Host.connected))).all()
        if len(connected) >= hosts:
            return True
        await asyncio.sleep(0.1)
    return False


_SAVED_FIELDS = frozenset({"username", "password", "apikey", "secretkey"})


async def _saved(run: Running) -> dict[str, str] | None:
    """The credentials the first start saved in the data directory, when complete."""
    saved = await asyncio.to_thread(datadir.saved_credentials, run.settings.data_dir)
    return saved if saved is not None and _SAVED_FIELDS <= saved.keys() else None


async def _logs_in(run: Running, saved: dict[str, str]) -> bool:
    async with run.state.db() as db:
        return await accounts.check_password(db, saved["username"], saved["password"]) is not None


async def _keys_sign(run: Running, saved: dict[str, str]) -> bool:
    async with run.state.db() as db:
        user = await accounts.user_by_api_key(db, saved["apikey"])
    return user is not None and user.username == saved["username"]


async def first_admin(run: Running) -> dict[str, str] | None:
    """The generated admin credentials saved in the data directory, while they still log in."""
    saved = await _saved(run)
    return saved if saved is not None and await _logs_in(run, saved) else None


async def demo_credentials(run: Running) -> dict[str, str]:
    """The admin's credentials for the demo: the saved ones, else new ones (and saved).

    Saved keys that still sign as their user are kept even when the password no longer
    logs in (it was changed some other way): new keys would break the operator's scripts.
    """
    saved = await _saved(run)
    if saved is not None:
        if await _logs_in(run, saved):
            return saved
        if await _keys_sign(run, saved):
            return {**saved, "password": "(changed since; cloudiag user reset-password admin)"}
    async with run.state.db.begin() as db:
        creds = admin_credentials(
            await accounts.reset_credentials(db, "admin", box=run.state.secrets)
        )
        await asyncio.to_thread(datadir.save_credentials, run.settings.data_dir, creds)
    return creds


async def run_stack(settings: Settings, *, with_lab: bool, demo: bool) -> int:
    """Serve until Ctrl-C; with the lab, bring it up first and take it down at the end.

    The data directory is held and the port bound before the lab is touched: a start that
    cannot run refuses without harming what another one runs, and only a start that
    brought a lab up takes it down.
    """
    stop = asyncio.Event()
    stop_on_signals(stop)
    try:
        held = await asyncio.to_thread(datadir.lock, settings.data_dir)
    except datadir.DataDirInUse as exc:
        say(f"cloudiag: {exc}", err=True)
        return 1
    try:
        try:
            sock = await asyncio.to_thread(listen_socket, settings.host, settings.port)
        except OSError as exc:
            why = exc.strerror or str(exc)
            say(f"cloudiag: cannot listen on {settings.host}:{settings.port}: {why}", err=True)
            return 1
        with sock:
            # Port 0 became a real one: logs and the job runner's label name that one.
            settings = settings.model_copy(update={"port": sock.getsockname()[1]})
            return await _with_lab(settings, sock, stop, with_lab=with_lab, demo=demo)
    finally:
        held.release()


async def _with_lab(
    settings: Settings, sock: socket.socket, stop: asyncio.Event, *, with_lab: bool, demo: bool
) -> int:
    if not with_lab:
        return await _serve(settings, sock, stop, demo=demo, local_agent=False)
    ssh = settings.executor == "ssh"
    missing = lab.check_requirements(ssh=ssh)
    if missing:
        say("cannot build the lab:\n  " + "\n  ".join(missing), err=True)
        return 1
    size = LabSize(settings.lab_zones, settings.lab_hosts, settings.lab_routers)
    try:
        size.check()
    except ValueError as exc:
        say(f"cannot build the lab: {exc}", err=True)
        return 1
    current = await asyncio.to_thread(lab.status, settings.lab_prefix)
    if current.up:
        say(
            f"the lab {settings.lab_prefix} is up already (another demo's, or left behind): "
            "using it, and leaving it up; `cloudiag lab down` takes it down",
        )
        found = current.size
        if (found.zones, found.hosts, found.routers) != (size.zones, size.hosts, size.routers):
            say(
                f"it has {found.zones} zones, {found.hosts} hosts and {found.routers} routers "
                "per host: one agent per host of it",
            )
        settings = settings.model_copy(
            update={
                "lab_zones": found.zones,
                "lab_hosts": found.hosts,
                "lab_routers": found.routers,
            }
        )
        if ssh:
            # Idempotent: only starts the sshd the agent needs where it does not run yet.
            try:
                await asyncio.to_thread(lab.up, settings.lab_prefix, ssh=True)
            except lab.LabError as exc:
                say(f"cannot give the lab sshd: {exc}", err=True)
                return 1
        return await _serve(settings, sock, stop, demo=demo, local_agent=True)
    say(f"bringing the lab up (prefix {settings.lab_prefix}{', with sshd' if ssh else ''})…")
    try:
        try:
            await asyncio.to_thread(lab.up, settings.lab_prefix, ssh=ssh, size=size)
        except lab.LabError as exc:
            say(f"cannot build the lab: {exc}", err=True)
            return 1
        if stop.is_set():  # Ctrl-C while the lab was being built.
            return 0
        return await _serve(settings, sock, stop, demo=demo, local_agent=True)
    finally:
        say("taking the lab down…")
        await asyncio.to_thread(lab.down, settings.lab_prefix)
        say("the lab is down; stopped")


async def _serve(
    settings: Settings, sock: socket.socket, stop: asyncio.Event, *, demo: bool, local_agent: bool
) -> int:
    try:
        async with running(settings) as run:
            agents: list[Supervisor] = []
            try:
                if local_agent:
                    # One agent process per host of the lab, each on its own inventory.
                    for host in range(1, settings.lab_hosts + 1):
                        agents.append(await start_local_agent(run, host))
                    if not await wait_for_host(run, hosts=settings.lab_hosts):
                        say("warning: the local agents have not all reported yet", err=True)
                await _serve_until_stopped(run, sock, stop, demo)
            finally:
                # Before NATS goes: the agents say goodbye and their hosts show Disconnected.
                await asyncio.gather(*(agent.stop() for agent in agents))
    except (ServerIdError, SecretBoxError, JetStreamUnavailable) as exc:
        say(f"cloudiag: {exc}", err=True)
        return 1
    return 0


async def _serve_until_stopped(
    run: Running, sock: socket.socket, stop: asyncio.Event, demo: bool
) -> None:
    ready = asyncio.Event()
    http = asyncio.create_task(serve_http(run.state, sock, stop, ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({http, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if http.done():
        await http  # It failed to start: let the error out.
        return
    url = url_of(sock)
    if demo:
        say(_demo_banner(url, await demo_credentials(run), run.settings))
    else:
        say(admin_banner(await first_admin(run), url))
    await http


def _demo_banner(url: str, creds: dict[str, str], settings: Settings) -> str:
    api = f"{url}/client/api"
    lines = [
        "",
        "cloudiag demo is running",
        f"  web UI:     {url}/",
        f"  API:        {api}",
        f"  login:      {creds['username']} / {creds['password']}",
        f"  apikey:     {creds['apikey']}",
        f"  secretkey:  {creds['secretkey']}",
        f"  saved to:   {settings.data_dir / datadir.CREDENTIALS_FILE}",
        "",
        "Try it from another terminal, with the cs client installed in .venv:",
        f"  export CLOUDSTACK_ENDPOINT={api}",
        f"  export CLOUDSTACK_KEY={creds['apikey']}",
        f"  export CLOUDSTACK_SECRET={creds['secretkey']}",
        "  .venv/bin/cs listRouters",
        "",
        "Ctrl-C stops everything and takes the lab down.",
    ]
    return "\n".join(lines)
