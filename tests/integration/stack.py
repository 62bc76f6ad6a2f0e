"""A real stack as separate processes: nats-server, `cloudiag serve`, `cloudiag agent`.

Used by the end-to-end tests and the benchmarks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from cloudiag.bus.embedded import find_nats_server, free_port, write_config
from tests.databases import create_pg_database, drop_pg_database, sqlite_url


def lab_ready() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces)"
    missing = [t for t in ("ip", "ping", "traceroute", "arping") if shutil.which(t) is None]
    return f"missing tools: {', '.join(missing)}" if missing else None


def cloudiag(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run the cloudiag CLI as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "cloudiag", *args], capture_output=True, text=True, check=False, **kw
    )


def stop(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, grace: float = 10) -> None:
    """Stop a child process and reap it, whatever state it is in."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def lab_zone(prefix: str) -> Iterator[dict[str, Any]]:
    """`cloudiag lab up` with that prefix; `lab down` at the end, even on failure."""
    try:
        out = cloudiag("lab", "up", "--prefix", prefix, "--json")
        if out.returncode != 0:
            raise RuntimeError(f"lab up failed: {out.stderr.strip()}")
        yield json.loads(out.stdout)
    finally:
        cloudiag("lab", "down", "--prefix", prefix)


def tool_pids(namespace: str, tool: str) -> list[str]:
    """Processes named `tool` running in a network namespace."""
    out = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    found = []
    for pid in out.stdout.split():
        try:
            with open(f"/proc/{pid}/comm") as fh:
                if fh.read().strip() == tool:
                    found.append(pid)
        except OSError:
            continue
    return found


def cs_signature(params: dict[str, str], secret: str) -> str:
    """CloudStack's request signature, written out here independently of the server's code."""
    query = "&".join(
        f"{k}={quote(str(v), safe='*-._')}" for k, v in sorted(params.items(), key=lambda kv: kv[0])
    )
    digest = hmac.new(secret.encode(), query.lower().encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass
class Account:
    """An API account created through `cloudiag user create`."""

    username: str
    password: str
    apikey: str
    secretkey: str
    role: str


@dataclass
class Stack:
    """A running stack and the ways to talk to it."""

    backend: str
    url: str
    database_url: str
    nats_url: str
    data_dir: Path
    lab: dict[str, Any]
    admin: Account
    user: Account
    server: subprocess.Popen[str] | None = None
    agent: subprocess.Popen[str] | None = None
    nats: subprocess.Popen[bytes] | None = None
    nats_argv: list[str] = field(default_factory=list)
    #: Seconds between agent heartbeats: short in tests (fast state changes), 5 in benches.
    heartbeat: float = 1.0
    #: Kept-alive connections, as a real client has (a new one per call skews timings).
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def api(self) -> str:
        """The API endpoint."""
        return f"{self.url}/client/api"

    @property
    def prefix(self) -> str:
        """The lab's namespace prefix."""
        return str(self.lab["prefix"])

    def vm(self, role: str) -> dict[str, Any]:
        """A lab namespace entry by role (router, secondarystoragevm, consoleproxy, uservm…)."""
        return next(ns for ns in self.lab["namespaces"] if ns["role"] == role)

    def call(self, command: str, account: Account | None = None, **params: Any) -> httpx.Response:
        """A signed GET as a CloudStack client makes it (JSON response)."""
        return self.call_at(self.url, command, account, **params)

    def call_at(
        self, url: str, command: str, account: Account | None = None, **params: Any
    ) -> httpx.Response:
        """The same, to another management server of this stack."""
        account = account or self.admin
        query = {"command": command, "response": "json", "apiKey": account.apikey}
        query.update({k: str(v) for k, v in params.items()})
        query["signature"] = cs_signature(query, account.secretkey)
        return self.http.get(f"{url}/client/api", params=query)

    def login(
        self, username: str, password: str, client: httpx.Client | None = None
    ) -> httpx.Response:
        """`login` as a form POST (JSON answer), in `client` to keep its cookies.

        Not through self.http: a session cookie there would ride along on signed calls.
        """
        data = {"command": "login", "username": username, "password": password, "response": "json"}
        return (client or httpx).post(self.api, data=data, timeout=30)

    def ok(self, command: str, account: Account | None = None, **params: Any) -> dict[str, Any]:
        """The body of a successful call, under its envelope key."""
        r = self.call(command, account, **params)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()[f"{command.lower()}response"]
        return body

    def wait_job(self, jobid: str, timeout: float = 120) -> dict[str, Any]:
        """Poll queryAsyncJobResult until the job is final."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.ok("queryAsyncJobResult", jobid=jobid)
            if job["jobstatus"] != 0:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {jobid} still pending after {timeout} s")

    def start_job(self, role: str, type_: str, address: str, params: str, url: str = "") -> str:
        """runDiagnostics on the lab VM of that role, not waited on; the job id."""
        r = self.call_at(
            url or self.url,
            "runDiagnostics",
            targetid=self.vm(role)["uuid"],
            type=type_,
            ipaddress=address,
            params=params,
        )
        assert r.status_code == 200, r.text
        jobid: str = r.json()["rundiagnosticsresponse"]["jobid"]
        return jobid

    def run(self, role: str, type: str, address: str, params: str = "") -> dict[str, Any]:
        """runDiagnostics on the lab VM of that role, waited on."""
        extra = {"params": params} if params else {}
        r = self.call(
            "runDiagnostics", targetid=self.vm(role)["uuid"], type=type, ipaddress=address, **extra
        )
        assert r.status_code == 200, r.text
        return self.wait_job(r.json()["rundiagnosticsresponse"]["jobid"])

    def start_agent(self, env: dict[str, str] | None = None) -> None:
        """Start `cloudiag agent` for the lab (`env` added to its environment) and wait until
        its host is Up."""
        log = (self.data_dir / "agent.log").open("a")
        self.agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cloudiag",
                "agent",
                "--lab-prefix",
                self.prefix,
                "--heartbeat-interval",
                str(self.heartbeat),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            # The URL holds the bus token: environment, not argv, as the demo does.
            env={**os.environ, "CLOUDIAG_NATS_URL": self.nats_url, **(env or {})},
        )
        self.wait_for(lambda: self._host_state() == "Up", "the agent's host to be Up")

    def stop_agent(self, sig: int = signal.SIGTERM) -> None:
        """Stop the agent process."""
        stop(self.agent, sig)
        self.agent = None

    def _host_state(self) -> str | None:
        hosts = self.ok("listHosts").get("host", [])
        return hosts[0]["state"] if hosts else None

    def host_state(self) -> str | None:
        """The state listHosts shows for the lab host."""
        return self._host_state()

    def stop_nats(self) -> None:
        """Stop the nats-server (the fault tests restart it)."""
        stop(self.nats)

    def start_nats(self) -> None:
        """Start the nats-server again, on the same port and store."""
        self.nats = subprocess.Popen(
            self.nats_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def show_logs(self, lines: int = 60) -> None:
        """Print the tail of the server's and the agent's logs (after a failure)."""
        for name in ("server.log", "agent.log"):
            path = self.data_dir / name
            if path.exists():
                sys.stderr.write(f"\n--- {self.backend} {name} (tail) ---\n")
                sys.stderr.write("".join(path.read_text().splitlines(True)[-lines:]))

    @staticmethod
    def wait_for(predicate: Any, what: str, timeout: float = 20) -> None:
        """Wait until predicate() is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if predicate():
                    return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")


def _create_account(db_url: str, data_dir: Path, name: str, role: str) -> Account:
    out = cloudiag(
        "user",
        "create",
        name,
        "--role",
        role,
        "--json",
        "--database-url",
        db_url,
        "--data-dir",
        str(data_dir),
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    return Account(data["username"], data["password"], data["apikey"], data["secretkey"], role)


@contextlib.contextmanager
def database(backend: str, data_dir: Path) -> Iterator[str]:
    """A fresh database for one stack: a SQLite file, or a new PostgreSQL database."""
    if backend == "sqlite":
        yield sqlite_url(data_dir)
        return
    url = asyncio.run(create_pg_database())
    try:
        yield url
    finally:
        asyncio.run(drop_pg_database(url))


def start_server(
    db_url: str,
    nats_url: str,
    data_dir: Path,
    log_name: str = "server.log",
    env: dict[str, str] | None = None,
    port: int | None = None,
    server_dir: Path | None = None,
) -> tuple[subprocess.Popen[str], int]:
    """`cloudiag serve` on a free port (or `port`); the caller waits for it and stops it.

    The server keeps its identity (server-id) in `server_dir`: a fresh directory under
    `data_dir` unless given, so that every server is a server of its own; pass the same one
    to start "the same server" again. Its log goes to `data_dir/log_name`.
    """
    port = port or free_port()
    server_dir = server_dir or Path(tempfile.mkdtemp(prefix="server-", dir=data_dir))
    log = (data_dir / log_name).open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloudiag",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(server_dir),
            "--database-url",
            db_url,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            **os.environ,
            "CLOUDIAG_HEARTBEAT_INTERVAL": "1",
            "CLOUDIAG_NATS_URL": nats_url,
            **(env or {}),
        },
    )
    return server, port


@contextlib.contextmanager
def launch(
    backend: str, lab: dict[str, Any], data_dir: Path, heartbeat: float = 1.0
) -> Iterator[Stack]:
    """nats-server + `cloudiag serve` + `cloudiag agent` on the lab, on one database backend."""
    nats_port = free_port()
    token = secrets.token_urlsafe(16)
    config = write_config(data_dir / "nats.conf", "127.0.0.1", nats_port, data_dir / "nats", token)
    nats_argv = [find_nats_server(), "-c", str(config)]
    nats_url = f"nats://{token}@127.0.0.1:{nats_port}"
    nats = subprocess.Popen(nats_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server: subprocess.Popen[str] | None = None
    st: Stack | None = None
    try:
        with database(backend, data_dir) as db_url:
            admin = _create_account(db_url, data_dir, "tester", "admin")
            user = _create_account(db_url, data_dir, "plainuser", "user")
            server, port = start_server(
                db_url, nats_url, data_dir, env={"CLOUDIAG_HEARTBEAT_INTERVAL": str(heartbeat)}
            )
            st = Stack(
                backend,
                f"http://127.0.0.1:{port}",
                db_url,
                nats_url,
                data_dir,
                lab,
                admin,
                user,
                server,
                heartbeat=heartbeat,
            )
            st.nats, st.nats_argv = nats, nats_argv
            st.wait_for(lambda: httpx.get(st.api, timeout=2).status_code == 401, "the API")
            st.start_agent()
            st.wait_for(lambda: st.ok("listRouters").get("count") == 1, "the router")
            yield st
    finally:
        if st is not None:
            st.stop_agent()
        stop(server)
        stop(st.nats if st is not None else nats)
