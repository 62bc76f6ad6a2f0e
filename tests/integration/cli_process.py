"""`cloudiag serve` / `cloudiag demo` as child processes whose output a test reads as it comes."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


class CliProcess:
    """One `cloudiag` child: its standard output read line by line in a thread."""

    def __init__(self, *args: str, log: Path, env: dict[str, str] | None = None, **kw: Any):
        self.log = log
        self._stderr = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cloudiag", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, **(env or {})},
            **kw,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The first line (from now on) that matches `pattern`; AssertionError at the end."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)  # The end stays known to the next reader.
                break
            self.lines.append(line)
            if found := re.search(pattern, line):
                return found
        raise AssertionError(f"no line matching {pattern!r}; output:\n{self.output()}")

    def output(self) -> str:
        """What it printed so far, standard output then standard error."""
        return "\n".join(self.lines) + "\n--- stderr ---\n" + self.log.read_text()

    def stop(self, sig: int = signal.SIGINT, grace: float = 60) -> int:
        """Signal it and wait for its exit status (SIGKILL after `grace` seconds); `lines`
        then holds everything it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self._stderr.close()
            while (line := self._queue.get(timeout=10)) is not None:
                self.lines.append(line)
