"""ping (iputils) output: replies with their RTT, the summary, unreachable reports."""

from __future__ import annotations

import re
from typing import Any

_HEADER = re.compile(r"^PING (?P<name>\S+) \((?P<addr>[^)]+)\)")
_REPLY = re.compile(
    r"^\d+ bytes from (?P<from>.+?): icmp_seq=(?P<seq>\d+)(?: ttl=(?P<ttl>\d+))?"
    r"(?: time=(?P<time>[\d.]+) ms)?(?P<dup> \(DUP!\))?"
)
_ERROR = re.compile(r"^From (?P<from>\S+)(?: \([^)]*\))? icmp_seq=(?P<seq>\d+) (?P<msg>.+)$")
_STATS = re.compile(
    r"^(?P<tx>\d+) packets transmitted, (?P<rx>\d+) (?:packets )?received"
    r"(?:, \+(?P<dup>\d+) duplicates)?(?:, \+(?P<err>\d+) errors)?, (?P<loss>[\d.]+)% packet loss"
)
_RTT = re.compile(
    r"^(?:rtt|round-trip) min/avg/max/(?:mdev|stddev) = ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+)"
)


def _from(text: str) -> str:
    # "web.lab.test (198.51.100.10)" or "198.51.100.10"
    m = re.search(r"\(([^)]+)\)$", text)
    return m.group(1) if m else text


def parse(stdout: str) -> dict[str, Any]:
    """Summary of ping output: transmitted, received, loss %, RTT stats, each reply."""
    out: dict[str, Any] = {
        "type": "ping",
        "destination": None,
        "destination_name": None,
        "transmitted": 0,
        "received": 0,
        "duplicates": 0,
        "errors": 0,
        "loss": None,
        "rtt": None,
        "replies": [],
        "unreachable": [],
    }
    for line in stdout.splitlines():
        line = line.strip()
        if m := _HEADER.match(line):
            out["destination"], out["destination_name"] = m["addr"], m["name"]
        elif m := _REPLY.match(line):
            out["replies"].append(
                {
                    "seq": int(m["seq"]),
                    "ttl": int(m["ttl"]) if m["ttl"] else None,
                    "time": float(m["time"]) if m["time"] else None,
                    "from": _from(m["from"]),
                    "dup": bool(m["dup"]),
                }
            )
        elif m := _ERROR.match(line):
            out["unreachable"].append(
                {"seq": int(m["seq"]), "from": m["from"], "message": m["msg"].strip()}
            )
        elif m := _STATS.match(line):
            out["transmitted"], out["received"] = int(m["tx"]), int(m["rx"])
            out["duplicates"], out["errors"] = int(m["dup"] or 0), int(m["err"] or 0)
            out["loss"] = float(m["loss"])
        elif m := _RTT.match(line):
            mn, avg, mx, mdev = (float(x) for x in m.groups())
            out["rtt"] = {"min": mn, "avg": avg, "max": mx, "mdev": mdev}
    return out
