"""Start-up cost of the system-VM zipapp, as a VM runs it: ``python3 -I -S <pyz> ping …``.

Runs ``ping -c 1 127.0.0.1`` through the zipapp (bytecode inside) and the tool alone, in
turn so both see the same machine load, and prints the median wall time and the CPU time of
each (CPU time is steadier on a busy machine). ``--script PATH`` adds another script to
compare with (e.g. an older single-file build). ``--netns NAME`` runs everything under
``ip netns exec NAME`` (root), as the lab's agent does.

    .venv/bin/python bench/sysvm_startup.py [--runs 40] [--netns NS] [--script PATH]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cloudiag.sysvm import build


def once(argv: list[str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one run of argv, its output discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--netns", default="")
    parser.add_argument("--script", default="")
    args = parser.parse_args()
    prefix = ["ip", "netns", "exec", args.netns] if args.netns else []
    target = ["ping", "127.0.0.1", "-c", "1"]
    with tempfile.TemporaryDirectory() as scratch:
        pyz = str(build.build(Path(scratch)))
        variants = {
            "tool alone": [*prefix, *target],
            "zipapp": [*prefix, sys.executable, "-I", "-S", pyz, "--no-deny", *target],
        }
        if args.script:
            variants["--script"] = [*prefix, sys.executable, "-I", "-S", args.script, *target]
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, argv in variants.items():
                times[name].append(once(argv))
    for name, runs in times.items():
        wall = statistics.median(w for w, _ in runs) * 1000
        cpu = statistics.median(c for _, c in runs) * 1000
        print(f"{name:12s} wall p50 {wall:6.1f} ms   cpu p50 {cpu:6.1f} ms")


if __name__ == "__main__":
    main()
