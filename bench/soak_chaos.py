"""Soak under chaos: N jobs over M minutes while NATS, the agent and the server are killed.

Brings up its own lab and stack (nats-server, `cloudiag serve`, `cloudiag agent`; SQLite by
default, `--backend postgresql` for a fresh database on the local PostgreSQL), submits
`ping -c 1..15 -i 0.2` jobs (up to 3 s) at an even pace over the system VMs, and meanwhile
a chaos loop (seeded: the seed is printed, `--seed` replays the same schedule) SIGKILLs one
of the nats-server, the agent or the server at random moments (with `--overlap`, two may be
down at once) and starts it again after a bounded outage (same JetStream store, same server
identity and port). Then it waits until every job is final and checks, from the database
and the agent's log:

- every job is final (none pending);
- none is lost: every job whose tool finished on the agent ("finished exitcode=X" in the
  agent's log) is stored with that exit code, unless a server cancelled it on purpose
  (a restarted server stops the tools of the jobs it fails: "cancel requested" in the log)
  or the agent was killed within KEEP_WINDOW of the tool's end (counted apart);
- none ran twice: at most one "running" line per job id in the agent's log;
- every job has exactly one Completed event.

Prints jobs, succeeded and failed (by errortext), outages, time to final p50/p95 (from the
jobs' created/completed times), duplicates; exits 1 when a check fails. Needs root.

    .venv/bin/python bench/soak_chaos.py [--jobs 2000] [--minutes 10] [--seed S]
        [--gap 30] [--max-outage 8] [--overlap] [--backend sqlite|postgresql] [--keep]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import random
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration import chaos
from tests.integration.stack import Stack, database, lab_zone, stop

from cloudiag.client import ApiCallError

#: What the chaos loop kills, one at a time.
TARGETS = ("nats", "agent", "server")
#: Ids and numbers in an errortext, so that failures group by their kind.
VARYING = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+(\.\d+)?")


#: How long after its tool ends a job's result may still be only in the agent's memory (on
#: its way to the disk): a job whose agent is killed within this is not counted as lost.
KEEP_WINDOW = 1.0


@dataclass
class Outage:
    """One kill and restart."""

    target: str
    #: Seconds into the chaos, and the Unix time of the kill.
    at: float
    seconds: float
    wall: float = field(default_factory=time.time)


@dataclass
class Soak:
    """What the run did, for the checks and the figures."""

    #: Job id → when its submission returned (monotonic).
    submitted: dict[str, float] = field(default_factory=dict)
    #: Submissions that failed and were tried again (server down, database unavailable…).
    retries: int = 0
    outages: list[Outage] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def submit(st: Stack, soak: Soak, jobs: int, seconds: float, rng: random.Random) -> None:
    """Submit `jobs` pings at an even pace over `seconds`, each retried until it is taken."""
    web = st.lab["targets"]["web"]
    vms = [st.vm(role)["uuid"] for role in chaos.SYSTEM_VMS]
    started = time.monotonic()
    for i in range(jobs):
        time.sleep(max(0.0, started + i * seconds / jobs - time.monotonic()))
        vm, count = rng.choice(vms), rng.randint(1, 15)
        while True:
            try:
                jobid = st.client().run_diagnostics(vm, "ping", web, f"-c {count} -i 0.2")
            except (httpx.HTTPError, ApiCallError):
                # Down, restarting, or no database for now: a client tries again.
                soak.retries += 1
                time.sleep(0.5)
                continue
            soak.submitted[jobid] = time.monotonic()
            break


def kill_and_restart(st: Stack, target: str, seconds: float, n: int) -> None:
    """SIGKILL the target, wait `seconds`, start it again as it was."""
    if target == "nats":
        chaos.nats_outage(st, seconds)
    elif target == "agent":
        st.stop_agent(signal.SIGKILL)
        time.sleep(seconds)
        st.start_agent()
    else:
        stop(st.server, signal.SIGKILL)
        time.sleep(seconds)
        chaos.restart_server(st, f"server-{n}.log")


def chaos_loop(
    st: Stack,
    soak: Soak,
    until: float,
    rng: random.Random,
    gap: float,
    max_outage: float,
    overlap: bool = False,
) -> None:
    """Kill something at random moments until `until` (monotonic): one outage at a time, or
    with `overlap` each in its own thread, so that two targets may be down at once (never
    the same one twice)."""
    began = time.monotonic()
    down: set[str] = set()
    lock = threading.Lock()
    threads: list[threading.Thread] = []

    def outage(n: int, target: str, seconds: float) -> None:
        try:
            kill_and_restart(st, target, seconds, n)
        except AssertionError as exc:  # e.g. the host slow to be Up again: say so, go on.
            soak.errors.append(f"outage {n} ({target}): {exc}")
            print(f"  outage {n}: {exc}", flush=True)
        finally:
            with lock:
                down.discard(target)

    n = 0
    while True:
        wait = rng.uniform(0.5 * gap, 1.5 * gap)
        if time.monotonic() + wait >= until:
            break
        time.sleep(wait)
        n += 1
        target, seconds = rng.choice(TARGETS), round(rng.uniform(1, max_outage), 1)
        at = time.monotonic() - began
        with lock:
            busy = target in down
            down.add(target)
        if busy:
            print(f"  [{at:6.1f} s] outage {n}: {target} is down already; skipped", flush=True)
            continue
        others = f" (also down: {', '.join(sorted(down - {target}))})" if len(down) > 1 else ""
        print(f"  [{at:6.1f} s] outage {n}: {target} killed for {seconds} s{others}", flush=True)
        soak.outages.append(Outage(target, at, seconds))
        if overlap:
            threads.append(threading.Thread(target=outage, args=(n, target, seconds)))
            threads[-1].start()
        else:
            outage(n, target, seconds)
    for thread in threads:
        thread.join()


def cancelled_on_agent(st: Stack) -> set[str]:
    """The jobs some server asked the agent to cancel (their results are not expected)."""
    return {
        str(r["job_id"])
        for r in chaos.log_records(st.data_dir / "agent.log")
        if r.get("job_id") and str(r.get("message", "")).startswith("cancel requested")
    }


def wait_all_final(st: Stack, timeout: float) -> dict[str, dict[str, Any]]:
    """Every job in the database, once none is pending or the timeout passed."""
    deadline = time.monotonic() + timeout
    jobs: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ApiCallError):
            jobs = chaos.all_jobs(st)
            if all(j["jobstatus"] != 0 for j in jobs.values()):
                return jobs
        time.sleep(1)
    return jobs


def seconds_to_final(job: dict[str, Any]) -> float | None:
    """From the job's creation to its end, as the server recorded them (1 s resolution)."""
    if "completed" not in job:
        return None
    fmt = "%Y-%m-%dT%H:%M:%S%z"
    created = datetime.strptime(job["created"], fmt)
    return (datetime.strptime(job["completed"], fmt) - created).total_seconds()


def report(st: Stack, soak: Soak, jobs: dict[str, dict[str, Any]]) -> bool:
    """Print the figures and the checks; whether every check passed."""
    runs, codes, cancelled = chaos.agent_runs(st), chaos.agent_exitcodes(st), cancelled_on_agent(st)
    pending = [i for i, j in jobs.items() if j["jobstatus"] == 0]
    untracked = set(jobs) - set(soak.submitted)
    missing = set(soak.submitted) - set(jobs)
    succeeded = [j for j in jobs.values() if j["jobstatus"] == 1]
    failures = collections.Counter(
        VARYING.sub("N", j["jobresult"].get("errortext", ""))
        for j in jobs.values()
        if j["jobstatus"] == 2
    )
    agent_kills = [o.wall for o in soak.outages if o.target == "agent"]
    lost, in_window = [], []
    for jobid, ends in chaos.agent_finishes(st).items():
        if jobid in cancelled or jobid not in jobs:
            continue
        diagnostics = (jobs[jobid].get("jobresult") or {}).get("diagnostics") or {}
        ended, code = ends[-1]
        if diagnostics.get("exitcode") == code:
            continue
        if any(ended <= kill <= ended + KEEP_WINDOW for kill in agent_kills):
            in_window.append(jobid)  # Killed before the result could be kept.
        else:
            lost.append(jobid)
    twice = {i: n for i, n in runs.items() if n > 1}
    events = chaos.completion_events(st)
    unaudited = [i for i in jobs if len(events.get(i, [])) != 1]
    never = [i for i in jobs if runs[i] == 0]
    times = sorted(t for t in map(seconds_to_final, jobs.values()) if t is not None)
    by_target = collections.Counter(o.target for o in soak.outages)
    down = collections.defaultdict(float)
    for o in soak.outages:
        down[o.target] += o.seconds

    def pct(p: float) -> float:
        return times[min(len(times) - 1, int(p * len(times)))] if times else float("nan")

    print(
        f"jobs: {len(soak.submitted)} submitted ({soak.retries} submissions retried), "
        f"{len(jobs)} in the database ({len(untracked)} from a submission that seemed to fail)"
    )
    print(
        f"  final {len(jobs) - len(pending)}, pending {len(pending)}, "
        f"succeeded {len(succeeded)}, failed {sum(failures.values())}"
    )
    for text, n in failures.most_common():
        print(f"    {n:5d} failed: {text[:160]}")
    print(
        f"  tools run by the agent: {sum(runs.values())} runs of {len(runs)} jobs; "
        f"{len(never)} jobs never ran; cancelled by a server {len(cancelled)}"
    )
    print(
        f"outages: {len(soak.outages)} ("
        + ", ".join(f"{t} {by_target[t]}x {down[t]:.0f} s" for t in TARGETS)
        + ")"
    )
    print(f"time to final: p50 {pct(0.5):.0f} s, p95 {pct(0.95):.0f} s, max {pct(1.0):.0f} s")
    print(
        f"duplicates (run twice): {len(twice)}; lost (finished on the agent, not stored "
        f"with its exit code): {len(lost)}; submitted but not in the database: {len(missing)}"
    )
    print(
        f"ended on the agent within {KEEP_WINDOW:g} s before it was killed (the result not yet "
        f"on disk; not counted as lost): {len(in_window)}"
    )
    print(f"jobs without exactly one Completed event: {len(unaudited)}")
    for jobid in lost[:5]:
        print(f"  lost {jobid}: agent exit {codes[jobid]}, stored {jobs[jobid].get('jobresult')}")
    for jobid in list(twice)[:5]:
        print(f"  run {twice[jobid]} times: {jobid}")
    for error in soak.errors:
        print(f"  chaos: {error}")
    return not (pending or lost or twice or missing or unaudited)


@contextlib.contextmanager
def soak_stack(lab: dict[str, Any], data_dir: Path, backend: str) -> Iterator[Stack]:
    """The chaos stack on SQLite, or on a fresh database of the local PostgreSQL."""
    if backend == "sqlite":
        with chaos.chaos_stack(lab, data_dir, heartbeat=2.0) as st:
            yield st
        return
    with (
        database("postgresql", data_dir) as url,
        chaos.chaos_stack(lab, data_dir, database_url=url, heartbeat=2.0) as st,
    ):
        yield st


@contextlib.contextmanager
def data_dir(keep: bool) -> Iterator[Path]:
    """A temporary directory for the stack, removed at the end unless kept (for its logs)."""
    path = Path(tempfile.mkdtemp(prefix="soak-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--gap", type=float, default=30, help="mean seconds between outages")
    parser.add_argument("--max-outage", type=float, default=8, help="longest outage, seconds")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--overlap", action="store_true", help="outages may overlap (two targets down at once)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directory (logs)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbits(32)
    print(
        f"soak: {args.jobs} jobs over {args.minutes} min, backend {args.backend}, seed {seed}, "
        f"an outage every ~{args.gap} s of up to {args.max_outage} s"
        + (", overlapping" if args.overlap else "")
    )
    rng = random.Random(seed)
    seconds = args.minutes * 60
    soak = Soak()
    with (
        lab_zone("cds" + secrets.token_hex(2)) as lab,
        data_dir(args.keep) as tmp,
        soak_stack(lab, tmp, args.backend) as st,
    ):
        if args.keep:
            print(f"  data directory: {tmp}")
        # Two generators from the seed: the schedule of outages does not depend on the jobs.
        jobs_rng, chaos_rng = random.Random(rng.random()), random.Random(rng.random())
        until = time.monotonic() + seconds
        loop = threading.Thread(
            target=chaos_loop,
            args=(st, soak, until, chaos_rng, args.gap, args.max_outage, args.overlap),
            daemon=True,
        )
        loop.start()
        submit(st, soak, args.jobs, seconds, jobs_rng)
        loop.join()
        print("  chaos over; waiting for every job to be final", flush=True)
        jobs = wait_all_final(st, timeout=300)
        passed = report(st, soak, jobs)
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
