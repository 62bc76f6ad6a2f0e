"""A fleet simulator: N agents (hosts) with V simulated VMs each, in a few processes, against
one real `cloudiag serve` and one real nats-server with JetStream.

Each agent is cloudiag's real Agent with its own NATS connection, request consumer, job
table and heartbeats; only its executor and its addresses are simulated (see
bench/fleet_agents.py: a ping answers in-process in about a millisecond). Prints:
- how long until every host is registered and Up (from the agents' start), and the
  server's CPU and RSS meanwhile;
- over a settle period of steady heartbeats, the server's CPU in cores and its peak RSS;
- with ``--jobs``, one ping on one VM of every host, submitted together (concurrent
  runDiagnostics calls), how long until all are final, and how many failed.

    .venv/bin/python bench/fleet.py [--agents 2000] [--vms 5] [--procs 4] [--heartbeat 5]
        [--settle 30] [--jobs] [--backend sqlite|postgresql]

Anchor (issue 11): 2,000 agents with 5 VMs each, all Up within 15 s; one server under
300 MB RSS and half a core with their 5 s heartbeats; 2,000 jobs final within 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet_agents import host_id, vm_id
from bench.load_concurrent import LIFTED, cpu_seconds, peak_rss_mib
from tests.integration.stack import (
    _create_account,
    database,
    manager_seed_file,
    start_server,
    stop,
)

from cloudiag.bus.authorization import AgentUser, write_authorization
from cloudiag.bus.embedded import AUTHORIZATION_FILE, find_nats_server, free_port, write_config
from cloudiag.bus.nkey_files import load_or_create_seed, new_seed, public_key
from cloudiag.client import ApiCallError, ApiKey, AsyncClient, Client
from cloudiag.db.engine import create_engine, session_factory
from cloudiag.db.models import AsyncJob
from cloudiag.domain import JobStatus

HERE = Path(__file__).resolve().parent


def rss_mib(pid: int) -> float:
    """A process's resident set now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def credentials(folder: Path, agents: int) -> Path:
    """An nkey for the management server and one for each agent, and the bus's
    authorization holding each host's permissions; the agents' seeds file (0600)."""
    manager = public_key(load_or_create_seed(manager_seed_file(folder)))
    seeds = {host_id(n): new_seed() for n in range(agents)}
    users = [AgentUser(host, public_key(seed)) for host, seed in seeds.items()]
    write_authorization(folder / AUTHORIZATION_FILE, [manager], users)
    path = folder / "agent-seeds.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(seeds, fh)
    return path


@contextlib.contextmanager
def nats(folder: Path) -> Iterator[str]:
    """A nats-server of the bench's own with JetStream and the authorization beside its
    config; its URL."""
    port = free_port()
    config = write_config(folder / "nats.conf", "127.0.0.1", port, folder / "js")
    proc = subprocess.Popen(
        [find_nats_server(), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        stop(proc)


def up_hosts(url: str, key: ApiKey) -> int:
    """How many hosts the API shows Up."""
    client = Client(url, key)
    try:
        return int(client.call("listHosts", state="Up", pagesize=1).get("count", 0))
    finally:
        client.close()


async def fire_jobs(url: str, key: ApiKey, agents: int, db_url: str) -> tuple[float, int, int]:
    """One ping on the first VM of every host, all submitted at once; (seconds until all
    were final, how many failed, how many calls were refused)."""
    started = time.monotonic()
    refused = 0
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(limits=limits, timeout=120) as http,
        AsyncClient(url, key, http=http, timeout=120) as client,
    ):

        async def one(n: int) -> str | None:
            nonlocal refused
            try:
                return await client.run_diagnostics(vm_id(n, 0), "ping", "192.0.2.1", "-c 1")
            except ApiCallError:
                refused += 1
                return None

        ids = [j for j in await asyncio.gather(*(one(n) for n in range(agents))) if j]
    engine = create_engine(db_url)
    db = session_factory(engine)
    try:
        while True:
            async with db() as s:
                pending = await s.scalar(
                    select(func.count())
                    .select_from(AsyncJob)
                    .where(AsyncJob.id.in_(ids), AsyncJob.status == JobStatus.PENDING)
                )
            if not pending or time.monotonic() - started > 300:
                break
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        async with db() as s:
            failed = await s.scalar(
                select(func.count())
                .select_from(AsyncJob)
                .where(AsyncJob.id.in_(ids), AsyncJob.status == JobStatus.FAILED)
            )
    finally:
        await engine.dispose()
    return elapsed, int(failed or 0) + int(pending or 0), refused


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--vms", type=int, default=5)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--heartbeat", type=float, default=5.0)
    parser.add_argument("--settle", type=float, default=30.0)
    parser.add_argument("--jobs", action="store_true")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    # One socket per agent in the agents' processes and in nats-server.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    folder = Path(tempfile.mkdtemp(prefix="cloudiag-fleet-"))
    seeds = credentials(folder, args.agents)
    procs: list[subprocess.Popen[bytes]] = []
    with nats(folder) as nats_url, database(args.backend, folder) as db_url:
        admin = _create_account(db_url, folder, "fleet", "admin")
        env = {"CLOUDIAG_HEARTBEAT_INTERVAL": str(args.heartbeat), **LIFTED}
        server, port = start_server(db_url, nats_url, folder, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/client/api", timeout=2).status_code == 401:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            cpu0 = cpu_seconds(server.pid)
            started = time.monotonic()
            share = -(-args.agents // args.procs)
            agent_env = {
                **os.environ,
                "CLOUDIAG_NATS_URL": nats_url,
                "CLOUDIAG_LOG_LEVEL": "WARNING",
            }
            for first in range(0, args.agents, share):
                count = min(share, args.agents - first)
                argv = [sys.executable, str(HERE / "fleet_agents.py"), "--seeds", str(seeds)]
                argv += ["--first", str(first)]
                argv += ["--count", str(count), "--vms", str(args.vms)]
                argv += ["--heartbeat", str(args.heartbeat)]
                log = (folder / f"agents-{first}.log").open("w")
                procs.append(
                    subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=agent_env)
                )
            up = 0
            while up < args.agents and time.monotonic() - started < 120:
                time.sleep(0.5)
                with contextlib.suppress(httpx.HTTPError, ApiCallError):
                    up = up_hosts(url, admin.key)
            registered = time.monotonic() - started
            print(
                f"{args.agents} agents x {args.vms} VMs ({args.procs} processes, "
                f"{args.backend}): {up} Up after {registered:.1f} s; server CPU "
                f"{cpu_seconds(server.pid) - cpu0:.1f} s meanwhile, "
                f"RSS {rss_mib(server.pid):.0f} MiB"
            )
            cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
            peak = 0.0
            while time.monotonic() - t1 < args.settle:
                time.sleep(1)
                peak = max(peak, rss_mib(server.pid))
            cores = (cpu_seconds(server.pid) - cpu1) / (time.monotonic() - t1)
            still_up = up_hosts(url, admin.key)
            print(
                f"steady heartbeats every {args.heartbeat:g} s for {args.settle:g} s: server "
                f"{cores:.2f} cores, RSS peak {peak:.0f} MiB "
                f"(VmHWM {peak_rss_mib(server.pid):.0f}); "
                f"{still_up} hosts Up"
            )
            if args.jobs:
                elapsed, failed, refused = asyncio.run(
                    fire_jobs(url, admin.key, args.agents, db_url)
                )
                print(
                    f"{args.agents} ping jobs, one per host, submitted together: all final "
                    f"after {elapsed:.1f} s, {failed} failed or pending, {refused} refused "
                    f"({args.agents / elapsed:.0f} jobs/s)"
                )
        finally:
            for proc in procs:
                stop(proc, grace=20)
            stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
