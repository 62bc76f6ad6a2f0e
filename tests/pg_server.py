"""A PostgreSQL server of a test's own, on a spare loopback port, to stop and start at will.

`with pg_server() as pg:` makes a cluster in a temporary directory (initdb, trust
authentication, a database `cloudiag`), starts it on a free 127.0.0.1 port with its unix
socket in that directory, and yields it: `pg.url` is its SQLAlchemy URL
(postgresql+asyncpg://…), `pg.stop()` / `pg.start()` make an outage. At the end the server
is stopped (immediately) and the directory removed, also when the test failed.

The binaries come from `pg_config --bindir` or /usr/lib/postgresql/<version>/bin
(scripts/setup.sh --test installs Debian's postgresql package where they are missing).
initdb refuses to run as root, so under root every server command runs as the `postgres`
OS user. Without the binaries a test skips, except under CI=true where it fails.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

import pytest

from tests.databases import IN_CI

#: The OS user that runs the server when the tests run as root.
SERVER_USER = "postgres"
#: The database every server gets, besides `postgres`.
DATABASE = "cloudiag"
#: How long pg_ctl waits for a start or a stop, in seconds.
PG_CTL_TIMEOUT = 60
#: Settings for a throwaway server: no durability to pay for, no log files to rotate.
BASE_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
}

#: The lowest port a server gets (above the well-known and most registered services).
PORTS_FROM = 20000

StopMode = Literal["smart", "fast", "immediate"]


def find_bindir() -> Path | None:
    """The directory of PostgreSQL's server binaries (initdb, pg_ctl, postgres), if any."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            ).stdout
            candidates.append(Path(out.strip()))
    # Debian's layout, newest version first (pg_config may be libpq-dev's, without a server).
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    for bindir in candidates:
        if all(
            (bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "pg_isready", "postgres")
        ):
            return bindir
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on, below the kernel's ephemeral range.

    Below it, because a server stopped for an outage must get its port back when it starts
    again: a port of the ephemeral range may meanwhile be taken by any outgoing connection.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(PORTS_FROM, low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {PORTS_FROM} and {low}")


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default when unknown)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return max(int(text.split()[0]), PORTS_FROM + 1000)
    except (OSError, ValueError, IndexError):
        return 32768


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class PgServer:
    """One throwaway PostgreSQL cluster: its URL, and stop/start for outages."""

    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir = bindir
        self.root = root
        self.port = port
        self.data_dir = root / "data"
        self.socket_dir = root / "socket"
        self.log_file = root / "server.log"
        self._as_other_user = os.geteuid() == 0

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of its database (asyncpg driver, over TCP)."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def dsn(self) -> str:
        """The libpq/asyncpg URL of its database (for asyncpg.connect)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _command(self, *args: str) -> list[str]:
        """The command line running one of the server's binaries as the server's OS user."""
        cmd = [str(self.bindir / args[0]), *args[1:]]
        return ["runuser", "-u", SERVER_USER, "--", *cmd] if self._as_other_user else cmd

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one of the server's binaries, as the server's OS user; raise on failure."""
        done = subprocess.run(
            self._command(*args), capture_output=True, text=True, timeout=PG_CTL_TIMEOUT + 30
        )
        if done.returncode:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}): {done.stdout}{done.stderr}"
                f"\n{self.server_log()}"
            )
        return done

    def server_log(self) -> str:
        """The end of the server's log (for failure messages)."""
        try:
            return self.log_file.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def init(self, settings: Mapping[str, str]) -> None:
        """Create the cluster: trust authentication, this port, the socket in our directory."""
        for folder in (self.root, self.socket_dir):
            folder.mkdir(exist_ok=True)
        if self._as_other_user:
            user = pwd.getpwnam(SERVER_USER)
            for path in (self.root, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        conf = {
            **BASE_SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            **settings,
        }
        lines = "".join(f"{key} = {value}\n" for key, value in conf.items())
        # postgresql.auto.conf is read last, so these win; appending keeps its owner.
        with (self.data_dir / "postgresql.auto.conf").open("a") as conf_file:
            conf_file.write(lines)

    def start(self, wait: bool = True) -> None:
        """Start the server; with `wait`, return once it accepts connections."""
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-t",
            str(PG_CTL_TIMEOUT),
            "-w" if wait else "-W",
        )
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the server accepts connections (pg_ctl -w may return a little early,
        while the server still answers "the database system is starting up")."""
        deadline = time.monotonic() + PG_CTL_TIMEOUT
        cmd = self._command("pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port))
        while subprocess.run(cmd, timeout=30).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not come up:\n{self.server_log()}")
            time.sleep(0.05)

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server: `fast` ends sessions cleanly, `immediate` is a crash.

        Returns once the postmaster has exited (pg_ctl returns when its pid file is gone,
        a moment before), so its port is free again.
        """
        pid = self._postmaster_pid()
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-t", str(PG_CTL_TIMEOUT))
        deadline = time.monotonic() + PG_CTL_TIMEOUT
        while pid and _alive(pid):
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL (pid {pid}) did not exit")
            time.sleep(0.02)

    def _postmaster_pid(self) -> int:
        """The running postmaster's pid, from its pid file (0 if there is none)."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def running(self) -> bool:
        """Whether the server is up (its postmaster runs)."""
        cmd = self._command("pg_ctl", "status", "-D", str(self.data_dir))
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0

    def create_database(self, name: str) -> None:
        """Create a database over the unix socket (the server must be running)."""
        self._run(
            "createdb", "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", name
        )


@contextlib.contextmanager
def pg_server(settings: Mapping[str, str] | None = None) -> Iterator[PgServer]:
    """A running PostgreSQL of the caller's own (see the module docstring); removed at exit.

    `settings` are extra postgresql.conf lines (values as PostgreSQL reads them, strings
    quoted), e.g. {"max_connections": "5"}.
    """
    bindir = find_bindir()
    if bindir is None:
        reason = "PostgreSQL's server binaries are missing (scripts/setup.sh --test installs them)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="cloudiag-pg-"))
    server = PgServer(bindir, root, free_port())
    try:
        server.init(settings or {})
        server.start()
        server.create_database(DATABASE)
        yield server
    finally:
        try:
            if server.data_dir.exists() and server.running():
                server.stop("immediate")
        finally:
            shutil.rmtree(root, ignore_errors=True)
