"""traceroute output: one entry per hop, each probe an answer (address, name, RTT) or `*`."""

from __future__ import annotations

import re
from typing import Any

_HEADER = re.compile(r"^traceroute6? to (?P<name>\S+) \((?P<addr>[^)]+)\), (?P<max>\d+) hops max")
_HOP = re.compile(r"^\s*(?P<ttl>\d+)\s+(?P<rest>.*)$")
# One token at a time: "name (address)", a bare address, an RTT, "*", or an annotation.
_TOKEN = re.compile(
    r"(?P<named>(?P<name>[^\s()]+) \((?P<paddr>[^)\s]+)\))"
    r"|(?P<rtt>[\d.]+) ms"
    r"|(?P<star>\*)"
    r"|(?P<note>![A-Za-z]?\d*)"
    r"|(?P<addr>[0-9A-Fa-f:.]+[0-9A-Fa-f])"
)


def _hop(ttl: int, rest: str) -> dict[str, Any]:
    probes: list[dict[str, Any]] = []
    current: tuple[str, str | None] | None = None
    for m in _TOKEN.finditer(rest):
        if m["named"]:
            current = (m["paddr"], m["name"] if m["name"] != m["paddr"] else None)
        elif m["addr"]:
            current = (m["addr"], None)
        elif m["rtt"] and current is not None:
            probes.append(
                {
                    "address": current[0],
                    "name": current[1],
                    "rtt": float(m["rtt"]),
                    "annotation": None,
                }
            )
        elif m["star"]:
            probes.append({"timeout": True})
        elif m["note"] and probes and "rtt" in probes[-1]:
            probes[-1]["annotation"] = m["note"]
    return {"ttl": ttl, "probes": probes}


def parse(stdout: str) -> dict[str, Any]:
    """Summary of traceroute output: destination, hops in order, whether it was reached."""
    out: dict[str, Any] = {
        "type": "traceroute",
        "destination": None,
        "destination_name": None,
        "max_hops": None,
        "hops": [],
        "reached": False,
    }
    for line in stdout.splitlines():
        if m := _HEADER.match(line):
            out["destination"], out["destination_name"] = m["addr"], m["name"]
            out["max_hops"] = int(m["max"])
        elif m := _HOP.match(line):
            out["hops"].append(_hop(int(m["ttl"]), m["rest"]))
    if out["hops"] and out["destination"]:
        last = out["hops"][-1]["probes"]
        out["reached"] = any(p.get("address") == out["destination"] for p in last)
    return out
