"""Fire N concurrent runDiagnostics (ping -c 1) at the lab's system VMs and account for every job.

Brings up its own lab and stack (nats-server, `cloudiag serve`, `cloudiag agent`; SQLite by
default, `--backend postgresql` for the local PostgreSQL), with the per-VM/user limits lifted
so that all N are admitted. Prints throughput, p50/p95/p99 time from the call to a final
job state, how many jobs were lost or run twice, and the server's peak RSS. Needs root.

    .venv/bin/python bench/load_concurrent.py [--jobs 500] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.stack import Stack, lab_zone, launch

from cloudiag.bus import subjects
from cloudiag.bus.messages import StatusReply
from cloudiag.client import ApiCallError, AsyncClient

LIFTED = {
    "CLOUDIAG_LIMIT_PER_VM": "0",
    "CLOUDIAG_LIMIT_PER_HOST": "0",
    "CLOUDIAG_LIMIT_PER_USER": "0",
    "CLOUDIAG_RATE_LIMIT": "0",
}


async def spawned(stack: Stack) -> int:
    import nats

    host_id = stack.ok("listHosts")["host"][0]["id"]
    nc = await nats.connect(stack.nats_url)
    try:
        reply = await nc.request(subjects.agent_status(host_id), b"", timeout=10)
    finally:
        await nc.close()
    return StatusReply.model_validate_json(reply.data).spawned


async def fire(stack: Stack, jobs: int) -> tuple[dict[str, float], dict[str, float], float, int]:
    vms = [stack.vm(r)["uuid"] for r in ("router", "secondarystoragevm", "consoleproxy")]
    web = stack.lab["targets"]["web"]
    submitted: dict[str, float] = {}
    refused = 0
    # A fresh connection per call while firing: a kept-alive one the server closes while the
    # request waits in the pool would fail it (and runDiagnostics must not be retried blindly).
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=0)
    async with (
        httpx.AsyncClient(timeout=120, limits=limits) as http,
        AsyncClient(stack.url, stack.admin.key, http=http) as client,
    ):

        async def one(i: int) -> None:
            nonlocal refused
            t = time.perf_counter()
            try:
                jobid = await client.run_diagnostics(vms[i % 3], "ping", web, "-c 1")
            except ApiCallError:
                refused += 1
                return
            submitted[jobid] = t

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(jobs)))
        finished: dict[str, float] = {}
        deadline = time.perf_counter() + 600
        while len(finished) < len(submitted) and time.perf_counter() < deadline:
            listed = await client.list_async_jobs(listall=True, pagesize=5000)
            now = time.perf_counter()
            for job in listed:
                if job.done and job.jobid in submitted:
                    finished.setdefault(job.jobid, now)
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
    return submitted, finished, elapsed, refused


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    os.environ.update(LIFTED)
    prefix = "cdl" + secrets.token_hex(2)
    with lab_zone(prefix) as lab:
        with (
            tempfile.TemporaryDirectory() as tmp,
            launch(args.backend, lab, Path(tmp), heartbeat=5.0) as stack,
        ):
            before = asyncio.run(spawned(stack))
            submitted, finished, elapsed, refused = asyncio.run(fire(stack, args.jobs))
            ran = asyncio.run(spawned(stack)) - before
            jobs = stack.ok("listAsyncJobs", listall="true", pagesize=5000)["asyncjobs"]
            assert stack.server is not None
            rss = peak_rss_mib(stack.server.pid)

    ids = [j["jobid"] for j in jobs if j["jobid"] in submitted]
    states = [j["jobstatus"] for j in jobs if j["jobid"] in submitted]
    ok = sum(
        1
        for j in jobs
        if j["jobid"] in submitted
        and j["jobstatus"] == 1
        and j["jobresult"]["diagnostics"]["exitcode"] == "0"
    )
    times = sorted(finished[i] - submitted[i] for i in finished)
    odd = [
        j
        for j in jobs
        if j["jobid"] in submitted
        and not (j["jobstatus"] == 1 and j["jobresult"]["diagnostics"]["exitcode"] == "0")
    ]

    def pct(p: float) -> float:
        return times[min(len(times) - 1, int(p * len(times)))] * 1000

    print(f"{args.jobs} concurrent runDiagnostics ping -c 1 on 3 VMs, backend {args.backend}")
    print(f"  admitted {len(submitted)}, refused {refused}")
    print(
        f"  final {sum(1 for s in states if s != 0)} (exit 0: {ok}), still pending "
        f"{sum(1 for s in states if s == 0)}, lost {len(submitted) - len(set(ids))}, "
        f"run by the agent {ran} times"
    )
    print(f"  wall {elapsed:.1f} s, throughput {len(finished) / elapsed:.1f} jobs/s")
    print(
        f"  time to result p50 {pct(0.5):.0f} ms  p95 {pct(0.95):.0f} ms  p99 {pct(0.99):.0f} ms"
        f"  (polled every 100 ms)"
    )
    print(f"  server peak RSS {rss:.0f} MiB")
    for j in odd[:3]:
        print(f"  not exit 0: {json.dumps(j['jobresult'])[:400]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
