"""The whole stack in one process tree: server, private NATS, local agent and lab."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

from sqlalchemy import select

from cloudiag.db.models import Host
from cloudiag.jobs.server_identity import ServerIdError
from cloudiag.lab import manager as lab
from cloudiag.server import Running, admin_banner, running, serve_http, stop_on_signals
from cloudiag.services import accounts
from cloudiag.settings import Settings

log = logging.getLogger(__name__)


async def start_local_agent(settings: Settings, nats_url: str) -> asyncio.subprocess.Process:
    """`cloudiag agent` as a child process: it talks to the server over NATS like any agent."""
    argv = [
        sys.executable,
        "-m",
        "cloudiag",
        "agent",
        "--lab-prefix",
        settings.lab_prefix,
        "--heartbeat-interval",
        str(settings.heartbeat_interval),
    ]
    # The URL carries the bus token: through the environment, never argv (`ps` shows argv).
    env = {**os.environ, "CLOUDIAG_NATS_URL": nats_url}
    return await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL, env=env)


async def stop_process(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; reaps the child."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def wait_for_host(run: Running, timeout: float = 15.0) -> bool:
    """True once an agent's first report is stored."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        async with run.state.db() as db:
            if (await db.execute(select(Host.id).where(Host.connected))).first():
                return True
        await asyncio.sleep(0.1)
    return False


async def demo_credentials(run: Running, path: Path, url: str) -> dict[str, str]:
    """The admin's credentials for the demo: new on the first start, kept in `path` after."""
    admin = run.admin
    if admin is None:
        with contextlib.suppress(ValueError, OSError):
            saved = json.loads(await asyncio.to_thread(_read_private, path))
            return {**saved, "url": url}
        async with run.state.db.begin() as db:
            admin = await accounts.reset_credentials(db, "admin")
    creds = {
        "url": url,
        "username": admin.username,
        "password": admin.password,
        "apikey": admin.apikey,
        "secretkey": admin.secretkey,
    }
    await asyncio.to_thread(_write_private, path, json.dumps(creds, indent=2))
    return creds


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds a password and a secret key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        # The mode of os.open applies to a new file only: an existing one keeps its own.
        os.fchmod(fd, 0o600)
        fh.write(text)


def _read_private(path: Path) -> str:
    """Read a file of secrets, making it readable by its owner only if it was not."""
    with path.open() as fh:
        os.fchmod(fh.fileno(), 0o600)
        return fh.read()


async def run_stack(settings: Settings, *, with_lab: bool, demo: bool) -> int:
    """Serve until Ctrl-C; with the lab, bring it up first and take it down at the end."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    url = f"http://{settings.host}:{settings.port}"
    if with_lab:
        missing = lab.check_requirements()
        if missing:
            print("cannot build the lab:\n  " + "\n  ".join(missing), file=sys.stderr)
            return 1
        print(f"bringing the lab up (prefix {settings.lab_prefix})…", flush=True)
        try:
            await asyncio.to_thread(lab.up, settings.lab_prefix)
        except lab.LabError as exc:
            print(f"cannot build the lab: {exc}", file=sys.stderr)
            return 1
    try:
        async with running(settings) as run:
            agent: asyncio.subprocess.Process | None = None
            try:
                if with_lab:
                    agent = await start_local_agent(settings, run.nats_url)
                    if not await wait_for_host(run):
                        print("warning: the local agent has not reported yet", file=sys.stderr)
                await _serve_until_stopped(run, settings, stop, url, demo)
            finally:
                # Before NATS goes: the agent says goodbye and its host shows Disconnected.
                if agent is not None:
                    await stop_process(agent)
    except ServerIdError as exc:
        print(f"cloudiag: {exc}", file=sys.stderr)
        return 1
    finally:
        if with_lab:
            print("taking the lab down…", flush=True)
            await asyncio.to_thread(lab.down, settings.lab_prefix)
            print("the lab is down; stopped", flush=True)
    return 0


async def _serve_until_stopped(
    run: Running, settings: Settings, stop: asyncio.Event, url: str, demo: bool
) -> None:
    ready = asyncio.Event()
    http = asyncio.create_task(serve_http(run.state, settings.host, settings.port, stop, ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({http, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if http.done():
        await http  # It failed to start: let the error out.
        return
    if demo:
        creds = await demo_credentials(run, settings.data_dir / "credentials.json", url)
        print(_demo_banner(creds, settings), flush=True)
    else:
        print(admin_banner(run.admin, url), flush=True)
    await http


def _demo_banner(creds: dict[str, str], settings: Settings) -> str:
    api = f"{creds['url']}/client/api"
    lines = [
        "",
        "cloudiag demo is running",
        f"  web UI:     {creds['url']}/",
        f"  API:        {api}",
        f"  login:      {creds['username']} / {creds['password']}",
        f"  apikey:     {creds['apikey']}",
        f"  secretkey:  {creds['secretkey']}",
        f"  saved to:   {settings.data_dir / 'credentials.json'}",
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
