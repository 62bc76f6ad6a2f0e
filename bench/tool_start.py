"""What starting a tool costs inside a warm session, by how it is started.

A session starts each diagnostic's tool with ``subprocess.Popen`` from a process that has
threads. This times ``ping -c 1 127.0.0.1`` (loopback only) started plainly, in its own
session, with the parent-death signal set by a ``preexec_fn`` (what the session does so that
a SIGKILLed session takes its tools along), and through ``setpriv --pdeathsig``, each beside
the plain start in the same run, with the ratio.

    .venv/bin/python bench/tool_start.py [--runs 40]
"""

from __future__ import annotations

import argparse
import ctypes
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

PING = ["ping", "-c", "1", "127.0.0.1"]
_PR_SET_PDEATHSIG = 1
_SIGKILL = 9


def _pdeathsig() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, _SIGKILL)


def once(argv: list[str], **options: Any) -> float:
    """Seconds from Popen to the tool's end, output read."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **options,
    )
    proc.communicate()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    # The session has threads (one per job): so does this process.
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
    ways: dict[str, Callable[[], float]] = {
        "plain Popen": lambda: once(PING),
        "own session (start_new_session)": lambda: once(PING, start_new_session=True),
        "own session + preexec_fn pdeathsig": lambda: once(
            PING, start_new_session=True, preexec_fn=_pdeathsig
        ),
    }
    setpriv = shutil.which("setpriv")
    if setpriv:
        ways["setpriv --pdeathsig KILL (exec)"] = lambda: once(
            [setpriv, "--pdeathsig", "KILL", "--", *PING], start_new_session=True
        )
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.runs):  # Interleaved: every way sees the same machine load.
        for name, way in ways.items():
            times[name].append(way())
    plain = statistics.median(times["plain Popen"])
    print(f"ping -c 1 127.0.0.1 from a threaded process, {args.runs} runs each, interleaved")
    for name, xs in times.items():
        median = statistics.median(xs)
        print(f"  {name:38} median {median * 1000:6.2f} ms   x{median / plain:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
