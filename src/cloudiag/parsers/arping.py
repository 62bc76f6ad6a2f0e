"""arping (iputils) output: replies with the MAC that sent them; two MACs for one IP flagged."""

from __future__ import annotations

import re
from typing import Any

_HEADER = re.compile(r"^ARPING (?P<dest>\S+)(?: from (?P<src>\S+))?(?: (?P<iface>\S+))?$")
_REPLY = re.compile(
    r"^(?P<kind>Unicast|Broadcast) (?:reply|request) from (?P<addr>\S+) "
    r"\[(?P<mac>[0-9A-Fa-f:]{17})\](?:\s+(?P<time>[\d.]+)ms)?"
)
_SENT = re.compile(r"^Sent (?P<n>\d+) probes?")
_RECEIVED = re.compile(r"^Received (?P<n>\d+) response")


def parse(stdout: str) -> dict[str, Any]:
    """Summary of arping output: probes sent, replies, the MACs seen, duplicate address."""
    out: dict[str, Any] = {
        "type": "arping",
        "destination": None,
        "source": None,
        "interface": None,
        "sent": None,
        "received": None,
        "replies": [],
        "macs": [],
        "duplicate": False,
    }
    for line in stdout.splitlines():
        line = line.strip()
        if m := _HEADER.match(line):
            out["destination"], out["source"], out["interface"] = m["dest"], m["src"], m["iface"]
        elif m := _REPLY.match(line):
            mac = m["mac"].upper()
            out["replies"].append(
                {
                    "address": m["addr"],
                    "mac": mac,
                    "kind": m["kind"],
                    "time": float(m["time"]) if m["time"] else None,
                }
            )
            if mac not in out["macs"]:
                out["macs"].append(mac)
        elif m := _SENT.match(line):
            out["sent"] = int(m["n"])
        elif m := _RECEIVED.match(line):
            out["received"] = int(m["n"])
    # One IP answering from two MACs: two hosts claim the address.
    by_ip: dict[str, set[str]] = {}
    for reply in out["replies"]:
        by_ip.setdefault(reply["address"], set()).add(reply["mac"])
    out["duplicate"] = any(len(macs) > 1 for macs in by_ip.values())
    return out
