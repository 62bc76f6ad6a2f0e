"""What a diagnostic costs on a VM: the tool alone, the one-shot script, a warm session.

Runs ``ping -c 1 127.0.0.1`` in turn (so all see the same machine load) as:

- the tool alone (``[ip netns exec NS] ping …``);
- the one-shot zipapp, as a VM ran it before warm sessions (``python3 -I -S <pyz> ping …``);
- one job over a warm session (``<pyz> serve`` started once, as the agent keeps it), timed
  from the request sent to its exit record received;
- with ``--netns``, also the netns executor's whole run (``run_in_netns``: validation, the
  pooled session, the collector), as the agent runs a diagnostic.

and prints the median and p90 wall time of each, its mean CPU time (the session's: the
serve process's own and its tools', from /proc) and its ratio to the tool alone. ``--netns NAME``
runs everything in that namespace (root), as the lab's agent does; ``--script PATH`` adds
another one-shot script to compare with.

    .venv/bin/python bench/sysvm_startup.py [--runs 40] [--netns NS] [--script PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cloudiag.agent.executors import netns
from cloudiag.agent.executors.process_channel import ProcessChannel
from cloudiag.agent.executors.session import WarmSession
from cloudiag.sysvm import build
from cloudiag.sysvm.framing import Record

TARGET = ["ping", "127.0.0.1", "-c", "1"]
Measure = Callable[[], Awaitable[tuple[float, float]]]


def once(argv: list[str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one run of argv, its output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def process_cpu(pid: int) -> float:
    """CPU seconds of a process and of its reaped children (its tools), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


async def nothing(record: Record) -> None:
    """Records are not kept: the bench times them."""


def command(argv: list[str]) -> Measure:
    async def measure() -> tuple[float, float]:
        return once(argv)

    return measure


def over_session(session: WarmSession, pid: int) -> Measure:
    numbers = iter(range(1, 1 << 30))

    async def measure() -> tuple[float, float]:
        cpu = process_cpu(pid)
        started = time.perf_counter()
        code = await session.run(
            f"b{next(numbers)}", ["--no-deny", *TARGET], on_record=nothing, stop=asyncio.Event()
        )
        wall = time.perf_counter() - started
        assert code == 0, code
        return wall, process_cpu(pid) - cpu

    return measure


def executor(namespace: str) -> Measure:
    async def measure() -> tuple[float, float]:
        started = time.perf_counter()
        res = await netns.run_in_netns(namespace, "ping", "127.0.0.1", "-c 1")
        assert res.exitcode == "0", res
        return time.perf_counter() - started, float("nan")

    return measure


async def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--netns", default="")
    parser.add_argument("--script", default="")
    args = parser.parse_args()
    prefix = ["ip", "netns", "exec", args.netns] if args.netns else []
    with tempfile.TemporaryDirectory() as scratch:
        pyz = str(build.build(Path(scratch)))
        python = [sys.executable, "-I", "-S"]
        channel = await ProcessChannel.start([*prefix, *python, pyz, "serve"])
        session = await WarmSession.open(channel, vm_name="bench", version=None)
        variants: dict[str, Measure] = {
            "tool alone": command([*prefix, *TARGET]),
            "one-shot script": command([*prefix, *python, pyz, "--no-deny", *TARGET]),
            "warm session": over_session(session, channel.pid),
        }
        if args.netns:
            # Loopback is the target here: the executor's own default policy allows it.
            variants["netns executor"] = executor(args.netns)
        if args.script:
            variants["--script"] = command([*prefix, *python, args.script, *TARGET])
        for measure in variants.values():
            await measure()  # Warm-up: caches, the executor's session.
        before = (netns.sessions_started(), netns.tools_started())
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, measure in variants.items():
                times[name].append(await measure())
        started = (netns.sessions_started() - before[0], netns.tools_started() - before[1])
        await session.close()
        await netns.close_sessions()
    base = statistics.median(w for w, _ in times["tool alone"])
    print(f"{args.runs} runs of {' '.join(TARGET)}" + (f" in {args.netns}" if args.netns else ""))
    for name, runs in times.items():
        walls = sorted(w for w, _ in runs)
        wall = statistics.median(walls)
        p90 = walls[int(len(walls) * 0.9) - 1] if len(walls) >= 10 else walls[-1]
        # The mean: /proc counts a session's CPU in clock ticks (10 ms), far above one run.
        cpu = statistics.fmean(c for _, c in runs) * 1000
        shown = "     -" if cpu != cpu else f"{cpu:6.1f}"  # NaN: not measured
        print(
            f"{name:16s} wall p50 {wall * 1000:6.1f} ms  p90 {p90 * 1000:6.1f} ms   "
            f"cpu mean {shown} ms   x{wall / base:5.2f} of the tool alone"
        )
    if args.netns:
        print(
            f"the netns executor's {args.runs} diagnostics started {started[1]} tools and "
            f"{started[0]} session processes in the VM"
        )


if __name__ == "__main__":
    asyncio.run(main())
