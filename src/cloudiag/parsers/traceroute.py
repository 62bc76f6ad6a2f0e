"""The summary of ``traceroute`` 2.1.x output: hops, probes, annotations."""

from __future__ import annotations

import re
from typing import Any, Final

from cloudiag.parsers.common import (
    ASCII,
    FLOAT,
    canonical,
    lines_of,
    to_float,
)

# "traceroute to web.lab.test (198.51.100.10), 5 hops max, 60 byte packets". traceroute
# prints it without a newline (each hop starts with one), so it may be the whole output.
_TRACE_HEADER: Final = re.compile(
    r"traceroute6? to (?P<name>\S+) \((?P<addr>[^()\s]+)\), (?P<max>[0-9]{1,4}) hops max", ASCII
)
# " 1  gw.lab.test (203.0.113.1)  0.512 ms  0.401 ms *": "%2u " then the probes.
_TRACE_HOP: Final = re.compile(r"\s*(?P<ttl>[0-9]{1,3}) (?P<rest>.*)", ASCII)
# One item of a hop line, after optional blanks. traceroute prints a probe as
# [" name (address)" | " address"] [" <extension>"] ["  0.512 ms"] [" !H"], or " *"; the
# address is only printed when it differs from the previous answer in the same hop.
_TRACE_ITEM: Final = re.compile(
    r"\s*(?:"
    r"(?P<star>\*)(?=\s|\Z)"
    rf"|(?P<rtt>{FLOAT}) ms(?=\s|\Z)"
    # The name is whatever getnameinfo() returned: keep any non-blank text as it is.
    r"|(?P<name>\S+) \((?P<paddr>[^()\s]+)\)(?=\s|\Z)"
    # !H, !N, !X, !P, !S, !V, !C, !F-1400, !<5>, !<11-1>: the ICMP error of the reply.
    r"|(?P<note>!\S*)"
    # -e extensions "<MPLS:...>", --back "'-5'", -A "[AS64500]": not part of the summary.
    r"|(?P<skip><[^<>\s]*>|'-?[0-9]{1,3}'|\[[^\[\]\s]*\])"
    r"|(?P<addr>\S+)"
    r")",
    ASCII,
)


# Items read per hop line. A real one has at most 10 probes (-q 10) of a few items each;
# the bound keeps a line of thousands of one-character "items" from costing a Python-level
# loop turn each.
_TRACE_MAX_ITEMS: Final = 128


def _trace_probes(rest: str) -> list[dict[str, Any]]:
    """The probes of one hop line (the part after the TTL)."""
    probes: list[dict[str, Any]] = []
    current: tuple[str, str | None] | None = None
    pos = 0
    for _ in range(_TRACE_MAX_ITEMS):
        if pos >= len(rest):
            break
        item = _TRACE_ITEM.match(rest, pos)
        if item is None or item.end() == pos:
            break
        pos = item.end()
        if item["star"]:
            probes.append({"timeout": True})
        elif item["rtt"]:
            if current is not None:
                probes.append(
                    {
                        "address": current[0],
                        "name": current[1],
                        "rtt": to_float(item["rtt"]),
                        "annotation": None,
                    }
                )
        elif item["paddr"]:
            name, address = item["name"], item["paddr"]
            current = (address, name if name != address else None)
        elif item["note"]:
            if probes and "rtt" in probes[-1] and probes[-1]["annotation"] is None:
                probes[-1]["annotation"] = item["note"]
        elif item["addr"]:
            current = (item["addr"], None)
    return probes


def parse_traceroute(stdout: str, stderr: str = "", exitcode: str = "0") -> dict[str, Any]:
    """Summarize traceroute (2.1.x, also ``-6``, ``-I``, ``-T``, ``-U``) output.

    Each hop lists its probes in order: an answer (address, reverse name or None, RTT,
    annotation such as ``!H``) or ``{"timeout": True}`` for a ``*``. ``reached`` is True
    when the last hop includes the destination address. ``stderr`` and ``exitcode`` are
    not needed: traceroute prints the route on stdout.
    """
    result: dict[str, Any] = {
        "type": "traceroute",
        "destination": None,
        "destination_name": None,
        "max_hops": None,
        "hops": [],
        "reached": False,
    }
    hops: list[dict[str, Any]] = result["hops"]
    for line in lines_of(stdout):
        header = _TRACE_HEADER.search(line) if result["destination"] is None else None
        if header is not None:
            result["destination"] = header["addr"]
            name = header["name"]
            result["destination_name"] = name if name != header["addr"] else None
            result["max_hops"] = int(header["max"])
            continue
        hop = _TRACE_HOP.match(line)
        if hop is None:
            continue
        probes = _trace_probes(hop["rest"].rstrip())
        # A line that yields no probe is not a hop line (or was cut before its first
        # probe finished): leave it out rather than show an empty hop.
        if probes:
            hops.append({"ttl": int(hop["ttl"]), "probes": probes})
    if hops and result["destination"] is not None:
        target = canonical(result["destination"])
        result["reached"] = any(
            canonical(p["address"]) == target for p in hops[-1]["probes"] if "address" in p
        )
    return result
