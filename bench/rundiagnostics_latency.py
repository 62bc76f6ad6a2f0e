"""Time from the runDiagnostics call to a finished job, beside `ip netns exec` directly.

Brings up its own lab and stack (nats-server, `cloudiag serve` on SQLite, `cloudiag agent`),
then alternates the two measurements so both see the same machine load. Needs root.

    .venv/bin/python bench/rundiagnostics_latency.py [--runs 30]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.stack import Stack, lab_zone, launch


def via_api(stack: Stack, web: str) -> float:
    """Seconds from the runDiagnostics call until queryAsyncJobResult says it is done."""
    client = stack.client()
    started = time.perf_counter()
    jobid = client.run_diagnostics(stack.vm("router")["uuid"], "ping", web, "-c 1")
    job = client.wait_job(jobid, interval=0.002)
    elapsed = time.perf_counter() - started
    assert job.diagnostics is not None and job.diagnostics.exitcode == "0", job
    return elapsed


def direct(namespace: str, web: str) -> float:
    """Seconds for `ip netns exec NS ping -c 1 WEB`."""
    started = time.perf_counter()
    subprocess.run(
        ["ip", "netns", "exec", namespace, "ping", "-c", "1", web], check=True, capture_output=True
    )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    prefix = "cdb" + secrets.token_hex(2)
    with lab_zone(prefix) as lab:
        web = lab["targets"]["web"]
        with (
            tempfile.TemporaryDirectory() as tmp,
            launch("sqlite", lab, Path(tmp), heartbeat=5.0) as stack,
        ):
            ns = stack.vm("router")["namespace"]
            via_api(stack, web)  # warm-up: first connections, first imports
            api_times, direct_times = [], []
            for _ in range(args.runs):
                api_times.append(via_api(stack, web))
                direct_times.append(direct(ns, web))

    def row(name: str, xs: list[float]) -> str:
        xs = sorted(xs)
        p90 = xs[int(0.9 * (len(xs) - 1))]
        return (
            f"{name:38} median {statistics.median(xs) * 1000:7.1f} ms   "
            f"p90 {p90 * 1000:7.1f} ms   min {xs[0] * 1000:7.1f} ms"
        )

    print(f"ping -c 1 {web} from the VR, {args.runs} runs each, interleaved")
    print(row("runDiagnostics -> job done (API)", api_times))
    print(row("ip netns exec ... ping -c 1", direct_times))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
