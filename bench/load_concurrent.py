"""Fire N concurrent runDiagnostics (ping -c 1) at the lab's system VMs and account for every job.

Brings up its own lab and stack (nats-server, `cloudiag serve`, `cloudiag agent`; SQLite by
default, `--backend postgresql` for the local PostgreSQL), with the per-VM/user limits lifted
so that all N are admitted. Prints throughput, p50/p95/p99 time from the call to a final
job state, how long until all were final, how many jobs were lost or run twice (the
agent's log of each start), the server's peak RSS and the CPU per job (the server's, the
agent's and the bench's own clients'). Needs root.

    .venv/bin/python bench/load_concurrent.py [--jobs 500] [--backend sqlite|postgresql]
        [--executor netns|ssh]

With ``--executor ssh`` the agent reaches the VMs over SSH (a warm session each on one kept
connection), and the jobs go to the VMs that run our zipapp: the lab's CPVM runs
CloudStack's own script there (one exec per diagnostic, as CloudStack does), a different
path with its own bound of 8 execs per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.stack import Stack, lab_zone, launch

from cloudiag.client import ApiCallError, AsyncClient

JSON_LOGS = {"CLOUDIAG_LOG_FORMAT": "json"}
LIFTED = {
    "CLOUDIAG_LIMIT_PER_VM": "0",
    "CLOUDIAG_LIMIT_PER_HOST": "0",
    "CLOUDIAG_LIMIT_PER_USER": "0",
    "CLOUDIAG_RATE_LIMIT": "0",
}
#: How many calls are in flight at once (each lane makes its calls one after another).
LANES = 100


@dataclass
class Fired:
    """What a burst of calls gave: each admitted job's call time, when each was seen final,
    when the last call was answered, and how many calls were refused."""

    submitted: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    started: float = 0.0
    answered: float = 0.0
    refused: int = 0


def target_roles(lab: dict[str, Any], executor: str) -> list[str]:
    """The system VMs the jobs go to: every one, or over SSH those that run our zipapp."""
    roles = ["router", "secondarystoragevm", "consoleproxy"]
    if executor != "ssh":
        return roles
    scripted = lab["ssh"]["cloudstack_script_vm"]
    return [
        ns["role"] for ns in lab["namespaces"] if ns["role"] in roles and ns["name"] != scripted
    ]


async def fire(stack: Stack, jobs: int, roles: list[str]) -> Fired:
    vms = [stack.vm(r)["uuid"] for r in roles]
    web = stack.lab["targets"]["web"]
    fired = Fired()
    # LANES calls in flight, each lane a client of its own making a fresh connection per call
    # (a kept-alive one the server closes while the request waits would fail it, and
    # runDiagnostics must not be retried blindly). One shared pool with every call queued in
    # it would cost the bench more CPU than the server: httpcore matches each queued request
    # against each connection whenever one frees.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=0)
    lanes = [httpx.AsyncClient(timeout=120, limits=limits) for _ in range(min(LANES, jobs))]
    async with (
        contextlib.AsyncExitStack() as opened,
        httpx.AsyncClient(timeout=120) as watch_http,
        AsyncClient(stack.url, stack.admin.key, http=watch_http) as watcher,
    ):
        for http in lanes:
            await opened.enter_async_context(http)
        clients = [AsyncClient(stack.url, stack.admin.key, http=http) for http in lanes]

        async def lane(first: int) -> None:
            for i in range(first, jobs, len(clients)):
                t = time.perf_counter()
                try:
                    jobid = await clients[first].run_diagnostics(
                        vms[i % len(vms)], "ping", web, "-c 1"
                    )
                except ApiCallError:
                    fired.refused += 1
                    continue
                fired.submitted[jobid] = t

        async def watch() -> None:
            # Seen final from the first call on, every 100 ms, by a client of its own.
            deadline = time.perf_counter() + 600
            while time.perf_counter() < deadline:
                listed = await watcher.list_async_jobs(listall=True, pagesize=5000)
                now = time.perf_counter()
                for job in listed:
                    if job.done:
                        fired.finished.setdefault(job.jobid, now)
                if fired.answered and len(fired.finished) >= len(fired.submitted):
                    return
                await asyncio.sleep(0.1)

        fired.started = time.perf_counter()
        watching = asyncio.create_task(watch())
        await asyncio.gather(*(lane(n) for n in range(len(clients))))
        fired.answered = time.perf_counter()
        await watching
    fired.finished = {j: t for j, t in fired.finished.items() if j in fired.submitted}
    return fired


def cpu_seconds(pid: int) -> float:
    """The user + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """The user + system CPU time this bench (the clients) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def runs_per_job(agent_log: Path) -> Counter[str]:
    """How many times the agent started each job (its "running …" log line)."""
    runs: Counter[str] = Counter()
    for line in agent_log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if "job_id" in entry and entry["message"].startswith("running "):
                runs[entry["job_id"]] += 1
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--executor", choices=("netns", "ssh"), default="netns")
    args = parser.parse_args()
    os.environ.update(LIFTED)
    prefix = "cdf" + secrets.token_hex(2)
    with lab_zone(prefix, ssh=args.executor == "ssh") as lab:
        roles = target_roles(lab, args.executor)
        with (
            tempfile.TemporaryDirectory() as tmp,
            launch(
                args.backend,
                lab,
                Path(tmp),
                heartbeat=5.0,
                agent_env=JSON_LOGS,
                executor=args.executor,
            ) as stack,
        ):
            assert stack.server is not None and stack.agent is not None
            before = stack.agent_status().spawned
            cpu = cpu_seconds(stack.server.pid), cpu_seconds(stack.agent.pid)
            own = own_cpu_seconds()
            fired = asyncio.run(fire(stack, args.jobs, roles))
            cpu = cpu_seconds(stack.server.pid) - cpu[0], cpu_seconds(stack.agent.pid) - cpu[1]
            own = own_cpu_seconds() - own
            ran = stack.agent_status().spawned - before
            jobs = stack.ok("listAsyncJobs", listall="true", pagesize=5000)["asyncjobs"]
            rss = peak_rss_mib(stack.server.pid)
            runs = runs_per_job(Path(tmp) / "agent.log")

    submitted, finished = fired.submitted, fired.finished
    mine = [j for j in jobs if j["jobid"] in submitted]
    ok = sum(
        1 for j in mine if j["jobstatus"] == 1 and j["jobresult"]["diagnostics"]["exitcode"] == "0"
    )
    pending = sum(1 for j in mine if j["jobstatus"] == 0)
    times = sorted(finished[i] - submitted[i] for i in finished)
    last = max(finished.values(), default=fired.started) - fired.started
    odd = [
        j
        for j in mine
        if not (j["jobstatus"] == 1 and j["jobresult"]["diagnostics"]["exitcode"] == "0")
    ]

    def pct(p: float) -> float:
        return times[min(len(times) - 1, int(p * len(times)))] * 1000 if times else float("nan")

    answered = fired.answered - fired.started
    print(
        f"{args.jobs} concurrent runDiagnostics ping -c 1 on {len(roles)} VMs "
        f"({', '.join(roles)}), backend {args.backend}, executor {args.executor}"
    )
    print(
        f"  admitted {len(submitted)}, refused {fired.refused}; every call answered in "
        f"{answered:.2f} s ({len(submitted) / answered:.0f} calls/s)"
    )
    print(
        f"  final {len(mine) - pending} (exit 0: {ok}), still pending {pending}, "
        f"lost {len(submitted) - len(mine)}, run twice {sum(1 for n in runs.values() if n > 1)}"
        f", started by the agent {sum(runs.values())} times, tools spawned {ran}"
    )
    print(
        f"  all final {last:.2f} s after the first call: {len(finished) / last:.1f} jobs/s"
        if last
        else "  none final"
    )
    print(
        f"  time to result p50 {pct(0.5):.0f} ms  p95 {pct(0.95):.0f} ms  p99 {pct(0.99):.0f} ms"
        f"  (seen by listAsyncJobs every 100 ms)"
    )
    per_job = [seconds / args.jobs * 1000 for seconds in (*cpu, own)]
    print(
        f"  server peak RSS {rss:.0f} MiB; CPU per job: server {per_job[0]:.1f} ms,"
        f" agent {per_job[1]:.1f} ms, the bench's clients {per_job[2]:.1f} ms"
    )
    for j in odd[:3]:
        print(f"  not exit 0: {json.dumps(j['jobresult'])[:400]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
