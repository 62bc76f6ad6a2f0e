"""What the long-running commands tell the operator on standard output.

Whoever reads that output may be gone: `cloudiag demo | tee log` and Ctrl-C kill tee too.
A message that cannot be written must never stop a shutdown half way (the lab left up).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TextIO


def say(text: str, *, err: bool = False) -> None:
    """Print a line and flush it; if the reader has gone, drop this and all later output."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(text, file=stream, flush=True)
    except (BrokenPipeError, ValueError, OSError):
        _silence(stream)


def _silence(stream: TextIO) -> None:
    # Python's own flush at exit would raise again: the stream now writes to /dev/null.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
