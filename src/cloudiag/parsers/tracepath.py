"""The summary of iputils ``tracepath -b`` output: hops, their replies and path MTU.

Our own reader rather than jc's: jc's tracepath parser returns nothing at all unless the
"Resume:" line is there (a run stopped by its time limit keeps its hops only here), and it
drops the ICMP error of a reply ("!H"). tests/unit/test_path_parsers.py shows both cases
on output captured from the lab.
"""

from __future__ import annotations

import re
from typing import Any, Final

from cloudiag.parsers.common import ASCII, FLOAT, INT, canonical, is_ip, lines_of, to_float

# " 1?: [LOCALHOST]   pmtu 1500", " 2:  198.51.100.10 (web.lab.test)   0.120ms reached",
# " 2:  no reply": "%2d?: " or "%2d:  ", the host column, then what the probe found.
_HOP: Final = re.compile(rf"\s*(?P<ttl>{INT})\??:\s+(?P<rest>.*)", ASCII)
_HOST: Final = re.compile(r"(?P<a>[^\s()]+)(?: \((?P<b>[^\s()]+)\))?", ASCII)
_RTT: Final = re.compile(rf"(?<!\S)(?P<rtt>{FLOAT})ms(?=\s|\Z)", ASCII)
_PMTU: Final = re.compile(rf"(?<!\S)pmtu (?P<pmtu>{INT})(?=\s|\Z)", ASCII)
_ASYMM: Final = re.compile(rf"(?<!\S)asymm\s+(?P<asymm>{INT})(?=\s|\Z)", ASCII)
# "!H", "!N", "!P", "!A": the ICMP error the reply carried (Atlas's "err" without the "!").
_ERR: Final = re.compile(r"(?<!\S)!(?P<err>[A-Za-z])(?=\s|\Z)", ASCII)
# "     Resume: pmtu 1400 hops 2 back 2 " (reached) or "     Resume: pmtu 1400 " (not).
_RESUME: Final = re.compile(
    rf"\s+Resume: pmtu (?P<pmtu>{INT})(?: hops (?P<hops>{INT}))?(?: back (?P<back>{INT}))?",
    ASCII,
)


def _who(host: str) -> tuple[str | None, str | None]:
    """(address, name) of "203.0.113.1 (gw.lab.test)" or "gw.lab.test (2001:db8::1)".

    With -b tracepath prints the name and the address in an order that depends on -n and
    the family: whichever side is an IP address is the address.
    """
    match = _HOST.fullmatch(host)
    if match is None:
        return None, None
    parts = [p for p in (match["a"], match["b"]) if p]
    address = next((canonical(p) for p in parts if is_ip(p)), None)
    name = next((p for p in parts if not is_ip(p)), None)
    return address, name


def _reply(rest: str) -> dict[str, Any] | None:
    """One reply of a hop line (after its host column), None for "no reply"."""
    if rest.startswith("no reply"):
        return None
    host = rest.split("  ", 1)[0].strip()
    address, name = _who(host)
    reply: dict[str, Any] = {"from": address, "name": name}
    if (rtt := _RTT.search(rest)) is not None:
        reply["rtt"] = to_float(rtt["rtt"])
    if (pmtu := _PMTU.search(rest)) is not None:
        reply["mtu"] = int(pmtu["pmtu"])
    if (err := _ERR.search(rest)) is not None:
        reply["err"] = err["err"]
    if (asymm := _ASYMM.search(rest)) is not None:
        reply["asymm"] = int(asymm["asymm"])
    if re.search(r"(?<!\S)reached(?=\s|\Z)", rest, ASCII):
        reply["reached"] = True
    return reply


def parse_tracepath(stdout: str, stderr: str = "", exitcode: str = "0") -> dict[str, Any]:
    """Summarize tracepath output as RIPE Atlas traceroute hops plus the path MTU.

    ``result`` holds one entry per TTL: ``{"hop": 1, "pmtu": 1500, "result": [...]}``,
    each reply ``{"from": address, "name": name | None, "rtt": ms}`` (with ``"mtu"`` when
    the reply lowered the path MTU, ``"err"`` for an ICMP error such as "H") or
    ``{"x": "*"}`` for "no reply". ``pmtu`` of a hop is the path MTU after its probes;
    the top-level ``pmtu`` is tracepath's own result ("Resume"), else the last one seen.
    """
    result: dict[str, Any] = {
        "type": "tracepath",
        "af": None,
        "dst_addr": None,
        "dst_name": None,
        "pmtu": None,
        "forward_hops": None,
        "return_hops": None,
        "reached": False,
        "result": [],
    }
    hops: list[dict[str, Any]] = result["result"]
    pmtu: int | None = None
    for line in lines_of(stdout):
        resume = _RESUME.match(line)
        if resume is not None:
            pmtu = int(resume["pmtu"])
            result["forward_hops"] = int(resume["hops"]) if resume["hops"] else None
            result["return_hops"] = int(resume["back"]) if resume["back"] else None
            break
        hop = _HOP.match(line)
        if hop is None:
            continue
        ttl, rest = int(hop["ttl"]), hop["rest"].rstrip()
        if rest.startswith("[LOCALHOST]"):
            # The path MTU of the first link, before any probe left.
            if (local := _PMTU.search(rest)) is not None:
                pmtu = int(local["pmtu"])
            continue
        reply = _reply(rest)
        if reply is not None and "mtu" in reply:
            pmtu = reply["mtu"]
        if not hops or hops[-1]["hop"] != ttl:
            hops.append({"hop": ttl, "pmtu": pmtu, "result": []})
        hops[-1]["pmtu"] = pmtu
        hops[-1]["result"].append({"x": "*"} if reply is None else reply)
        if reply is not None and reply.pop("reached", False):
            result["reached"] = True
            result["dst_addr"], result["dst_name"] = reply["from"], reply["name"]
    result["pmtu"] = pmtu
    first = next((r["from"] for h in hops for r in h["result"] if r.get("from")), None)
    if first is not None:
        result["af"] = 6 if ":" in first else 4
    return result
