"""The summary of ``mtr --report --json --show-ips``: per-hop loss, latency and jitter.

mtr writes the report as JSON itself (jc has no mtr parser), so this only reshapes it into
RIPE Atlas traceroute hops with mtr's statistics beside each one.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from cloudiag.parsers.common import MAX_CHARS, canonical, is_ip, split_named

#: mtr's report keys -> the summary's: loss in percent, times in milliseconds.
_STATS: Final = {
    "Loss%": "loss",
    "Snt": "sent",
    "Last": "last",
    "Avg": "avg",
    "Best": "best",
    "Wrst": "worst",
    "StDev": "stdev",
}
#: What mtr prints for a hop that never answered.
_NO_ANSWER: Final = "???"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _who(host: str) -> tuple[str | None, str | None]:
    """(address, name) of "gw.lab.test (203.0.113.1)" or of a bare address or name."""
    name, address = split_named(host)
    if is_ip(address):
        return canonical(address), name
    # No address printed: a name only (cannot happen with --show-ips, but be safe).
    return None, name or address or None


def _hop(hub: dict[str, Any]) -> dict[str, Any] | None:
    ttl = hub.get("count")
    host = hub.get("host")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not isinstance(host, str):
        return None
    hop: dict[str, Any] = {"hop": ttl}
    if host == _NO_ANSWER:
        hop["result"] = [{"x": "*"}]
    else:
        address, name = _who(host)
        hop["result"] = [{"from": address, "name": name}]
    for key, field in _STATS.items():
        value = _number(hub.get(key))
        hop[field] = int(value) if field == "sent" and value is not None else value
    if host == _NO_ANSWER:
        # mtr reports 0.0 for the times of a hop that never answered: there are none.
        for field in ("last", "avg", "best", "worst", "stdev"):
            hop[field] = None
    return hop


def parse_mtr(stdout: str, stderr: str = "", exitcode: str = "0") -> dict[str, Any]:
    """Summarize mtr's JSON report as RIPE Atlas traceroute hops plus mtr's statistics.

    ``result`` holds ``{"hop": ttl, "result": [{"from": address, "name": name | None}]
    | [{"x": "*"}], "loss": %, "sent": n, "last"/"avg"/"best"/"worst"/"stdev": ms}`` per
    hop (times None for a hop that never answered). ``reached`` is True when the last hop
    is the destination. Output that is not mtr's JSON (an error, a run cut short) gives
    no hops.
    """
    result: dict[str, Any] = {
        "type": "mtr",
        "af": None,
        "dst_addr": None,
        "dst_name": None,
        "cycles": None,
        "size": None,
        "reached": False,
        "result": [],
    }
    try:
        data = json.loads(stdout[:MAX_CHARS])
    except ValueError:
        return result
    report = data.get("report") if isinstance(data, dict) else None
    if not isinstance(report, dict):
        return result
    head = report.get("mtr")
    if not isinstance(head, dict):
        head = {}
    dst = head.get("dst")
    if isinstance(dst, str) and dst:
        if is_ip(dst):
            result["dst_addr"] = canonical(dst)
        else:
            result["dst_name"] = dst
    tests = _number(head.get("tests"))
    result["cycles"] = int(tests) if tests is not None else None
    size = head.get("psize")
    result["size"] = int(size) if isinstance(size, str) and size.isdigit() else None
    hubs = report.get("hubs")
    entries = [x for x in hubs if isinstance(x, dict)] if isinstance(hubs, list) else []
    hops = [h for h in map(_hop, entries) if h is not None]
    result["result"] = hops
    last = hops[-1]["result"][0].get("from") if hops else None
    if last is not None:
        result["reached"] = last == result["dst_addr"]
    family = result["dst_addr"] or next(
        (h["result"][0]["from"] for h in hops if h["result"][0].get("from")), None
    )
    if family is not None:
        result["af"] = 6 if ":" in family else 4
    return result
