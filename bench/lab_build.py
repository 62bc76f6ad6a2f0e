"""How long the lab takes to build and to tear down, by size (needs root).

Each size is built with `cloudiag lab up` and taken down with `cloudiag lab down` as
processes (what an operator runs), under a prefix of its own, a few times; prints the
median build and teardown times, the number of system VMs and namespaces, and checks that
nothing of the prefix is left. A size the lab cannot hold is reported as such.

    .venv/bin/python bench/lab_build.py [--runs 3] [--size Z,H,R ...] [--ssh]

``--ssh``: also with `lab up --ssh` (an sshd, its keys and a mount namespace per system VM).

Default sizes: the default lab (1,1,1), ``--hosts 4 --routers 25`` (1,4,25: 100 routers,
102 system VMs) and ``--hosts 20 --routers 25`` (1,20,25: the 500 the fan-out issue wants).
Anchor (issue 11): 100+ system VMs in under a minute on this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloudiag.lab.layout import LabSize, layout
from cloudiag.lab.system import list_namespaces

CLOUDIAG = [sys.executable, "-m", "cloudiag", "lab"]


def _size(text: str) -> LabSize:
    zones, hosts, routers = (int(x) for x in text.split(","))
    return LabSize(zones, hosts, routers)


def _timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return took, done.stdout


def measure(size: LabSize, runs: int, ssh: bool = False) -> str:
    """One line of results for a size."""
    label = f"--zones {size.zones} --hosts {size.hosts} --routers {size.routers}"
    label += " --ssh" if ssh else ""
    try:
        lay = layout(size)
    except ValueError as exc:
        return f"{label:38}  does not fit: {exc}"
    prefix = f"lb{secrets.token_hex(3)}"
    flags = ["--zones", str(size.zones), "--hosts", str(size.hosts), "--routers", str(size.routers)]
    ups: list[float] = []
    downs: list[float] = []
    try:
        for _ in range(runs):
            extra = ["--ssh"] if ssh else []
            took, out = _timed([*CLOUDIAG, "up", "--prefix", prefix, *flags, *extra, "--json"])
            status = json.loads(out)
            if not status["up"]:
                raise SystemExit(f"lab {prefix} of {label} is not up after `lab up`")
            ups.append(took)
            took, _ = _timed([*CLOUDIAG, "down", "--prefix", prefix])
            downs.append(took)
            left = [ns for ns in list_namespaces() if ns.startswith(f"{prefix}-")]
            if left:
                raise SystemExit(f"lab down left {len(left)} namespaces of {prefix}")
    finally:
        subprocess.run([*CLOUDIAG, "down", "--prefix", prefix], capture_output=True, check=False)
    return (
        f"{label:38}  {len(lay.system_vms()):4} system VMs {len(lay.nodes) + 1:4} namespaces  "
        f"up {statistics.median(ups):6.2f} s  down {statistics.median(downs):6.2f} s  "
        f"(median of {runs})"
    )


def main() -> None:
    """Measure each size and print a line for each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=_size, action="append", metavar="Z,H,R")
    parser.add_argument("--ssh", action="store_true", help="each size also with --ssh")
    args = parser.parse_args()
    sizes = args.size or [LabSize(), LabSize(1, 4, 25), LabSize(1, 20, 25)]
    print("cloudiag lab up / lab down, each a process (includes the status `up` prints)")
    for size in sizes:
        print(measure(size, args.runs), flush=True)
        if args.ssh:
            print(measure(size, args.runs, ssh=True), flush=True)


if __name__ == "__main__":
    main()
