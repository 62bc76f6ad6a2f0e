"""Looking at processes from a test: alive or not, and whose children."""

from __future__ import annotations

import os
from pathlib import Path


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first); [] when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def alive(pid: int) -> bool:
    """The process runs (a zombie, dead but not yet reaped, does not count)."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def children(pid: int) -> dict[int, str]:
    """The live child processes of `pid`: their command lines by pid."""
    found = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        child = int(entry)
        fields = _stat_fields(child)
        if len(fields) < 2 or int(fields[1]) != pid or not alive(child):
            continue
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        found[child] = cmdline.replace(b"\0", b" ").decode()
    return found
