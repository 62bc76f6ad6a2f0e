"""Time from the runDiagnostics call to a finished job, stage by stage, beside `ip netns exec`.

Brings up its own lab and stack (nats-server, `cloudiag serve` on SQLite or the local
PostgreSQL, `cloudiag agent`), then alternates the two measurements so both see the same
machine load. Needs root.

    .venv/bin/python bench/rundiagnostics_latency.py [--runs 30] [--backend sqlite|postgresql]
        [--executor netns|ssh]

With ``--executor ssh`` the lab runs sshd in its system VMs and the agent reaches them over
SSH (a warm session per VM on one kept connection); beside the direct command, the bench
then also times what CloudStack's KVM agent does for each diagnostic: a fresh OpenSSH
connection from the hypervisor namespace running the system-VM script once
(``ssh -p 3922 root@<control address> python3 … ping -c 1``).

The stages come from the structured (JSON) logs the server and the agent write anyway:
the lines that carry the job's id, their timestamps, and the durations some of them state
(so the path is not slowed by anything of the bench's own). All processes run on this
machine, so their clocks are one clock. A stage is the time from the call to:

    API accepted       the server starts runDiagnostics' handler (authenticated, signature spent)
    job committed      its job row and event are committed
    request published  the request stream acknowledged the request
    agent received     the agent's consumer handed it the request
    tool started       the executor started the tool (the end minus the tool's own duration)
    tool ended         the executor returned its outcome
    result received    the server's results consumer handed it the result
    result committed   the job's final state is committed
    client saw it      queryAsyncJobResult answered the client with the final job (one call
                       with `wait`, answered as the job's outcome is stored; or polling)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.stack import lab_zone, launch, ssh_argv

from cloudiag.client import AsyncJob, Client
from cloudiag.lab import manager, mountns, topology

STAGES = (
    "API accepted",
    "job committed",
    "request published",
    "agent received",
    "tool started",
    "tool ended",
    "result received",
    "result committed",
    "client saw it",
)
JSON_LOGS = {"CLOUDIAG_LOG_FORMAT": "json"}
#: How the log lines of a job's path mark its stages: (stage, pattern, the stage it gives
#: by subtracting the milliseconds the line states, if any).
MARKS: tuple[tuple[str, re.Pattern[str], str | None], ...] = (
    ("job committed", re.compile(r"^runDiagnostics by .*committed in ([\d.]+) ms"), "API accepted"),
    ("request published", re.compile(r"^request queued for host"), None),
    ("tool ended", re.compile(r"^finished exitcode=.*the tool ran ([\d.]+) ms"), "tool started"),
    ("result committed", re.compile(r"^result stored in ([\d.]+) ms"), "result received"),
)
#: The agent's line at the start of the run: it states how long taking the request took.
TAKEN = re.compile(r"^running .*request taken in ([\d.]+) ms")


def log_entries(path: Path) -> Iterator[dict[str, str]]:
    """The JSON lines of a log that carry a job id."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if "job_id" in entry:
                yield entry


def stamps_from_logs(data_dir: Path) -> dict[str, dict[str, float]]:
    """Per job id, the time of each stage the server's and the agent's logs mark."""
    found: dict[str, dict[str, float]] = {}
    for name in ("server.log", "agent.log"):
        for entry in log_entries(data_dir / name):
            at = datetime.fromisoformat(entry["time"]).timestamp()
            job = found.setdefault(entry["job_id"], {})
            text = entry["message"]
            if m := TAKEN.match(text):
                job["agent received"] = at - float(m.group(1)) / 1000
                continue
            for stage, pattern, before in MARKS:
                if m := pattern.match(text):
                    job[stage] = at
                    if before is not None:
                        job[before] = at - float(m.group(1)) / 1000
    return found


def via_api(client: Client, vm_id: str, web: str, interval: float) -> tuple[str, float, float]:
    """One runDiagnostics, waited on: its job id, the call's time and when the client saw
    the final job (time.time())."""
    called = time.time()
    jobid = client.run_diagnostics(vm_id, "ping", web, "-c 1")
    if interval:
        job = client.wait_job(jobid, interval=interval)
    else:
        job = AsyncJob.model_validate(client.call("queryAsyncJobResult", jobid=jobid, wait=30))
    seen = time.time()
    assert job.diagnostics is not None and job.diagnostics.exitcode == "0", job
    return jobid, called, seen


def direct(namespace: str, web: str) -> float:
    """Seconds for `ip netns exec NS ping -c 1 WEB`."""
    started = time.perf_counter()
    subprocess.run(
        ["ip", "netns", "exec", namespace, "ping", "-c", "1", web], check=True, capture_output=True
    )
    return time.perf_counter() - started


def fresh_ssh_argv(lab: dict[str, Any], vm: dict[str, Any], web: str) -> list[str]:
    """A fresh OpenSSH connection to the VM running the installed zipapp once (one-shot)."""
    ssh = lab["ssh"]
    root = mountns.vm_root(manager.default_state_dir(lab["prefix"]), topology.node(vm["name"]))
    installed = sorted(root.glob("var/lib/cloudiag/cloudiag-sysvm-*.pyz"))
    assert installed, "the SSH executor installed no zipapp on the VM"
    on_vm = "/" + str(installed[-1].relative_to(root))
    command = shlex.join(["python3", "-I", "-S", on_vm, "ping", web, "-c", "1"])
    return ssh_argv(ssh, vm["controladdress"], command)


def timed(argv: list[str]) -> float:
    """Seconds one command takes (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """The user + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], p: float) -> float:
    """The p-quantile (nearest rank) of xs."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p * len(xs) + 0.5) - 1))]


def row(name: str, xs: list[float], scale: float = 1000) -> str:
    """One line: median, p90, p99 (ms)."""
    return (
        f"{name:34} {statistics.median(xs) * scale:8.2f} {pct(xs, 0.9) * scale:8.2f} "
        f"{pct(xs, 0.99) * scale:8.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--interval",
        type=float,
        default=0.0,
        help="poll queryAsyncJobResult this often (s); 0, the default: one call with wait",
    )
    parser.add_argument("--executor", choices=("netns", "ssh"), default="netns")
    args = parser.parse_args()
    prefix = "cdf" + secrets.token_hex(2)
    runs: list[tuple[str, float, float]] = []
    direct_times: list[float] = []
    fresh_ssh_times: list[float] = []
    with lab_zone(prefix, ssh=args.executor == "ssh") as lab:
        web = lab["targets"]["web"]
        with (
            tempfile.TemporaryDirectory() as tmp,
            launch(
                args.backend,
                lab,
                Path(tmp),
                heartbeat=5.0,
                server_env=JSON_LOGS,
                agent_env=JSON_LOGS,
                executor=args.executor,
            ) as stack,
        ):
            ns = stack.vm("router")["namespace"]
            client, vm_id = stack.client(), stack.vm("router")["uuid"]
            via_api(client, vm_id, web, args.interval)  # warm-up: connections, imports
            fresh = None
            if args.executor == "ssh":
                router = next(v for v in lab["namespaces"] if v["role"] == "router")
                fresh = fresh_ssh_argv(lab, router, web)
            assert stack.server is not None and stack.agent is not None
            pids = {"server": stack.server.pid, "agent": stack.agent.pid}
            cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
            for _ in range(args.runs):
                runs.append(via_api(client, vm_id, web, args.interval))
                direct_times.append(direct(ns, web))
                if fresh is not None:
                    fresh_ssh_times.append(timed(fresh))
            cpu = {name: cpu_seconds(pid) - cpu[name] for name, pid in pids.items()}
            stack.close_clients()
            time.sleep(0.5)  # The last lines reach the logs.
            stamps = stamps_from_logs(Path(tmp))
    report(args, web, runs, stamps, direct_times, fresh_ssh_times)
    print(
        "CPU per job: "
        + ", ".join(f"{name} {used / args.runs * 1000:.1f} ms" for name, used in cpu.items())
    )
    return 0


def report(
    args: argparse.Namespace,
    web: str,
    runs: list[tuple[str, float, float]],
    stamps: dict[str, dict[str, float]],
    direct_times: list[float],
    fresh_ssh_times: list[float],
) -> None:
    """Print the stage table, the total and the direct command, and their ratio."""
    at: dict[str, list[float]] = {s: [] for s in STAGES}
    step: dict[str, list[float]] = {s: [] for s in STAGES}
    missing = 0
    for jobid, called, seen in runs:
        job = {**stamps.get(jobid, {}), "client saw it": seen}
        if any(s not in job for s in STAGES):
            missing += 1
            continue
        previous = called
        for stage in STAGES:
            at[stage].append(job[stage] - called)
            step[stage].append(job[stage] - previous)
            previous = job[stage]
    totals = [seen - called for _, called, seen in runs]
    how = (
        f"polls every {args.interval * 1000:g} ms"
        if args.interval
        else "waits with queryAsyncJobResult wait=30"
    )
    print(
        f"ping -c 1 {web} from the VR, backend {args.backend}, executor {args.executor}, "
        f"{args.runs} runs each, "
        f"interleaved; the client {how}"
    )
    print(f"{'':34} {'median':>8} {'p90':>8} {'p99':>8}   (ms)")
    if missing:
        print(f"  ({missing} runs without every stage in the logs left out of the stages)")
    if at["client saw it"]:
        print("stage, from the call:")
        for stage in STAGES:
            print("  " + row(stage, at[stage]))
        print("stage, from the stage before:")
        for stage in STAGES:
            print("  " + row(stage, step[stage]))
    print(row("runDiagnostics -> job done (API)", totals))
    print(row("ip netns exec ... ping -c 1", direct_times))
    if fresh_ssh_times:
        print(row("fresh ssh ... python3 zipapp ping", fresh_ssh_times))

    def ratio(p: float) -> float:
        return pct(totals, p) / pct(direct_times, p)

    median = statistics.median(totals) / statistics.median(direct_times)
    print(
        f"ratio API / direct: median {median:.1f}x  p90 {ratio(0.9):.1f}x  p99 {ratio(0.99):.1f}x"
    )
    if fresh_ssh_times:
        faster = statistics.median(fresh_ssh_times) / statistics.median(totals)
        print(f"ratio fresh ssh / API: median {faster:.1f}x (the API over warm SSH is faster)")


if __name__ == "__main__":
    raise SystemExit(main())
