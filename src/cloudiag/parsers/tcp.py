"""The summary of the tcp check (sysvm/probes/tcp.py): open, refused or timed out.

RIPE Atlas has no TCP connect result; the names follow its others (``af``, ``dst_addr``)::

    {"type": "tcp", "dst_name": "web.lab.test", "dst_addr": "198.51.100.10",
     "dst_port": 80, "af": 4, "state": "open" | "refused" | "timeout" | "unreachable" |
     "unresolved" | "error", "connect_time": 0.21, "resolve_time": None, "timeout": 5.0,
     "error": "", "reached": True, "complete": True}

Times are milliseconds; ``complete`` is False when the output was cut before the result.
"""

from __future__ import annotations

from typing import Any

from cloudiag.parsers.probe_line import failure, pick, probe_result

_FIELDS: dict[str, tuple[type, ...]] = {
    "dst_name": (str,),
    "dst_addr": (str,),
    "dst_port": (int,),
    "af": (int,),
    "state": (str,),
    "connect_time": (int, float),
    "resolve_time": (int, float),
    "timeout": (int, float),
    "error": (str,),
}


def parse_tcp(stdout: str, stderr: str = "", exitcode: str = "0") -> dict[str, Any]:
    """Summarize a tcp check."""
    found = probe_result(stdout)
    summary: dict[str, Any] = {"type": "tcp", **pick(found, _FIELDS)}
    summary["error"] = summary["error"] or ("" if found else failure(stderr))
    summary["reached"] = summary["state"] == "open"
    summary["complete"] = found is not None
    return summary
