"""A real stack as separate processes: nats-server, `cloudiag serve`, `cloudiag agent`.

Used by the end-to-end tests and the benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats

from cloudiag.bus import subjects
from cloudiag.bus.embedded import AUTHORIZATION_FILE, find_nats_server, free_port, write_config
from cloudiag.bus.messages import StatusReply
from cloudiag.client import ApiKey, Client, signature
from cloudiag.lab.inventory import Executor
from cloudiag.lab.inventory import host_id as lab_host_id
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
def lab_zone(prefix: str, ssh: bool = False) -> Iterator[dict[str, Any]]:
    """`cloudiag lab up` with that prefix (`--ssh`: with sshd in each system VM); `lab down`
    at the end, even on failure."""
    try:
        out = cloudiag("lab", "up", "--prefix", prefix, "--json", *(["--ssh"] if ssh else []))
        if out.returncode != 0:
            raise RuntimeError(f"lab up failed: {out.stderr.strip()}")
        yield json.loads(out.stdout)
    finally:
        cloudiag("lab", "down", "--prefix", prefix)


def ssh_argv(
    ssh: dict[str, Any],
    address: str,
    command: str,
    *,
    known_hosts: str | None = None,
    strict: str = "yes",
    namespace: str | None = None,
) -> list[str]:
    """OpenSSH's client from the lab's hypervisor namespace (or ``namespace``) to a VM's sshd
    at its control ``address``, with the lab's key (``ssh``: `lab status --json`'s "ssh"),
    running ``command`` (one line: OpenSSH hands it to the VM's login shell)."""
    return [
        *("ip", "netns", "exec", namespace or ssh["hypervisor"], "ssh", "-F", "/dev/null"),
        *("-i", ssh["key_file"], "-p", str(ssh["port"]), "-o", "BatchMode=yes"),
        *("-o", "ConnectTimeout=5", "-o", f"StrictHostKeyChecking={strict}"),
        *("-o", f"UserKnownHostsFile={known_hosts or ssh['known_hosts']}"),
        f"{ssh['user']}@{address}",
        command,
    ]


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
    """The signature of a request a test crafts by hand (tampered, expired, without a command).

    The client's signing, which is the server's own code; the real CloudStack clients
    (test_clients, test_cloudmonkey) and test_signing check that code independently.
    """
    return signature(params, secret)


@dataclass
class Account:
    """An API account created through `cloudiag user create`."""

    username: str
    password: str
    apikey: str
    secretkey: str
    role: str

    @property
    def key(self) -> ApiKey:
        """The account's API credentials, for cloudiag.client."""
        return ApiKey(self.apikey, self.secretkey)


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
    #: Added to the agent's environment at every start_agent (e.g. JSON logs).
    agent_env: dict[str, str] = field(default_factory=dict)
    #: The lab agent's config file, from `cloudiag host add` (its own nkey on the bus).
    agent_config: Path = Path()
    #: The first server's data directory (its identity): a restart with it is "the same server".
    server_dir: Path | None = None
    #: Seconds between agent heartbeats: short in tests (fast state changes), 5 in benches.
    heartbeat: float = 1.0
    #: How the agent reaches the system VMs: "netns" (their namespaces) or "ssh" (their sshd).
    executor: Executor = "netns"
    #: cloudiag clients by (server URL, API key), kept: a real client keeps its connections
    #: alive (a new one per call skews timings).
    clients: dict[tuple[str, str], Client] = field(default_factory=dict)
    _clients_lock: threading.Lock = field(default_factory=threading.Lock)

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

    def client(self, account: Account | None = None, url: str = "") -> Client:
        """The cloudiag client signing as `account` (the admin) to `url` (this stack's server)."""
        account, url = account or self.admin, url or self.url
        with self._clients_lock:  # Tests call from several threads at once.
            client = self.clients.get((url, account.apikey))
            if client is None:
                client = self.clients[url, account.apikey] = Client(url, account.key)
        return client

    def close_clients(self) -> None:
        """Close every client's connections."""
        with self._clients_lock:
            for client in self.clients.values():
                client.close()
            self.clients.clear()

    def call(self, command: str, account: Account | None = None, **params: Any) -> httpx.Response:
        """A signed GET as a CloudStack client makes it (JSON response); the answer as it came."""
        return self.client(account).request(command, **params)

    def call_at(
        self, url: str, command: str, account: Account | None = None, **params: Any
    ) -> httpx.Response:
        """The same, to another management server of this stack."""
        return self.client(account, url).request(command, **params)

    def login(
        self, username: str, password: str, client: httpx.Client | None = None
    ) -> httpx.Response:
        """`login` as a raw form POST (JSON answer), in `client` to keep its cookies: for the
        tests of login itself (refusals, lockouts, cookies), which look at the HTTP answer."""
        data = {"command": "login", "username": username, "password": password, "response": "json"}
        return (client or httpx).post(self.api, data=data, timeout=30)

    def ok(self, command: str, account: Account | None = None, **params: Any) -> dict[str, Any]:
        """The body of a successful call, under its envelope key (ApiCallError otherwise)."""
        return self.client(account).call(command, **params)

    def add_host(self, name: str, host_id: str, inventory: Path) -> Path:
        """`cloudiag host add` for one more host of this stack whose agent reads `inventory`
        (once: an added host keeps its config): the agent's config file; the stack's
        nats-server reloads the new authorization."""
        config = self.data_dir / f"agent-{name}.toml"
        if config.exists():  # Added by an earlier test of this stack.
            return config
        out = cloudiag(
            "host",
            "add",
            name,
            "--host-id",
            host_id,
            "--inventory",
            str(inventory),
            "--out",
            str(config),
            "--authorization",
            str(self.data_dir / AUTHORIZATION_FILE),
            "--database-url",
            self.database_url,
            "--data-dir",
            str(self.data_dir),
            env={
                **os.environ,
                "CLOUDIAG_NATS_URL": self.nats_url,
                "CLOUDIAG_NATS_NKEY_SEED_FILE": str(manager_seed_file(self.data_dir)),
            },
        )
        assert out.returncode == 0, out.stderr
        assert self.nats is not None, "the stack's own nats-server reloads it"
        self.nats.send_signal(signal.SIGHUP)
        return config

    def bus_options(self) -> dict[str, Any]:
        """nats.connect's credentials of a management server on this stack's bus."""
        return {"nkeys_seed": str(manager_seed_file(self.data_dir))}

    def agent_status(self) -> StatusReply:
        """The agent's own answer over the bus: its running jobs and the processes it has
        started on VMs (sessions, tools, script execs)."""

        async def ask() -> StatusReply:
            host_id = self.ok("listHosts")["host"][0]["id"]
            nc = await nats.connect(self.nats_url, **self.bus_options())
            try:
                reply = await nc.request(subjects.agent_status(host_id), b"", timeout=10)
            finally:
                await nc.close()
            return StatusReply.model_validate_json(reply.data)

        return asyncio.run(ask())

    def wait_job(self, jobid: str, timeout: float = 120) -> dict[str, Any]:
        """Poll queryAsyncJobResult until the job is final; the job as the API shows it."""
        return self.client().wait_job(jobid, timeout=timeout).model_dump(exclude_unset=True)

    def start_job(self, role: str, type_: str, address: str, params: str, url: str = "") -> str:
        """runDiagnostics on the lab VM of that role, not waited on; the job id."""
        return self.client(url=url).run_diagnostics(self.vm(role)["uuid"], type_, address, params)

    def run(self, role: str, type: str, address: str, params: str = "") -> dict[str, Any]:
        """runDiagnostics on the lab VM of that role, waited on."""
        return self.wait_job(self.start_job(role, type, address, params))

    def start_agent(self, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        """Start `cloudiag agent` for the lab (`env` added to its environment, `args` to its
        command line, e.g. `--inventory FILE`) and wait until its host is Up."""
        log = (self.data_dir / "agent.log").open("a")
        self.agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cloudiag",
                "agent",
                "--config",
                str(self.agent_config),
                "--heartbeat-interval",
                str(self.heartbeat),
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env={
                **os.environ,
                # Its state (results not yet delivered) in this stack's folder: not the
                # user's, and not shared with another stack's agent of the same lab host.
                "CLOUDIAG_DATA_DIR": str(self.data_dir),
                "CLOUDIAG_EXECUTOR": self.executor,
                **self.agent_env,
                **(env or {}),
            },
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
def _database(backend: str, data_dir: Path, url: str | None) -> Iterator[str]:
    """The given database, else a fresh one of `backend`."""
    if url:
        yield url
        return
    with database(backend, data_dir) as fresh:
        yield fresh


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


def manager_seed_file(data_dir: Path) -> Path:
    """The nkey seed every management server of a stack shares (made by the first use)."""
    return data_dir / "manager.nk"


def register_lab_host(db_url: str, data_dir: Path, nats_url: str, prefix: str) -> Path:
    """`cloudiag host add` for the lab's host, as an operator of an external NATS does it:
    the agent's config file, and the bus's authorization beside the stack's nats.conf."""
    config = data_dir / "agent.toml"
    out = cloudiag(
        "host",
        "add",
        f"lab-{prefix}",
        "--host-id",
        lab_host_id(prefix),
        "--lab-prefix",
        prefix,
        "--out",
        str(config),
        "--authorization",
        str(data_dir / AUTHORIZATION_FILE),
        "--database-url",
        db_url,
        "--data-dir",
        str(data_dir),
        env={
            **os.environ,
            "CLOUDIAG_NATS_URL": nats_url,
            "CLOUDIAG_NATS_NKEY_SEED_FILE": str(manager_seed_file(data_dir)),
        },
    )
    assert out.returncode == 0, out.stderr
    return config


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
            "CLOUDIAG_NATS_NKEY_SEED_FILE": str(manager_seed_file(data_dir)),
            # The key `user create --data-dir data_dir` sealed the accounts' secrets with.
            "CLOUDIAG_SECRETS_KEY_FILE": str(data_dir / "secrets.key"),
            **(env or {}),
        },
    )
    return server, port


@contextlib.contextmanager
def launch(
    backend: str,
    lab: dict[str, Any],
    data_dir: Path,
    heartbeat: float = 1.0,
    *,
    database_url: str | None = None,
    server_env: dict[str, str] | None = None,
    agent_env: dict[str, str] | None = None,
    executor: Executor = "netns",
    nats_url: str | None = None,
    start_nats: Callable[[Path], None] | None = None,
) -> Iterator[Stack]:
    """nats-server + `cloudiag serve` + `cloudiag agent` on the lab, on one database backend.

    `database_url`: that database (e.g. a PostgreSQL of the test's own) rather than a fresh
    one of `backend`; `server_env`, `agent_env`: added to the first server's and every
    agent's environment; `executor`: how the agent reaches the system VMs ("ssh" needs a
    lab up with `--ssh`); `nats_url`: an external NATS (a cluster's URLs) rather than a
    nats-server of the stack's own, and `start_nats` starts it once the bus's authorization
    file (its argument, which its config includes) is written.
    """
    own_nats = nats_url is None
    nats_port = free_port()
    nats_url = nats_url or f"nats://127.0.0.1:{nats_port}"
    nats: subprocess.Popen[bytes] | None = None
    nats_argv: list[str] = []
    server: subprocess.Popen[str] | None = None
    st: Stack | None = None
    try:
        with _database(backend, data_dir, database_url) as db_url:
            # Authorization first: the nats-server admits the managers' and the lab agent's
            # nkeys only (the file `host add` writes, included by the config beside it).
            agent_config = register_lab_host(db_url, data_dir, nats_url, str(lab["prefix"]))
            if own_nats:
                config = write_config(
                    data_dir / "nats.conf", "127.0.0.1", nats_port, data_dir / "nats"
                )
                nats_argv = [find_nats_server(), "-c", str(config)]
                nats = subprocess.Popen(
                    nats_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            elif start_nats is not None:
                start_nats(data_dir / AUTHORIZATION_FILE)
            admin = _create_account(db_url, data_dir, "tester", "admin")
            user = _create_account(db_url, data_dir, "plainuser", "user")
            server_dir = data_dir / "server"
            server, port = start_server(
                db_url,
                nats_url,
                data_dir,
                env={"CLOUDIAG_HEARTBEAT_INTERVAL": str(heartbeat), **(server_env or {})},
                server_dir=server_dir,
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
                executor=executor,
                agent_env=dict(agent_env or {}),
                server_dir=server_dir,
                agent_config=agent_config,
            )
            st.nats, st.nats_argv = nats, nats_argv
            st.wait_for(lambda: httpx.get(st.api, timeout=2).status_code == 401, "the API")
            st.start_agent()
            st.wait_for(lambda: st.ok("listRouters").get("count") == 1, "the router")
            yield st
    finally:
        if st is not None:
            st.stop_agent()
            st.close_clients()
        stop(server)
        if st is not None:  # A test or bench may have started it again.
            stop(st.server)
        stop(st.nats if st is not None else nats)
