"""The route probe: ``ip route get`` for the destination, then the VM's network state.

Several ``ip -j`` commands (argv lists) from this one process rather than one tool per
job: a single job then answers the whole question (where does the packet go, and what
does the VM hold: interfaces, IPv4 and IPv6 routes, rules, neighbours), with one summary.
An ``ip`` without ``-j`` (old iproute2) gives its text form instead, kept as it is.
"""

from __future__ import annotations

import json
import subprocess

from ..process import tool_env
from ..tokens import parse_ip
from .report import finish, say, shown
from .tcp import resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from ..validate import Request

#: Seconds one ip command may take (types/route.py's estimate counts seven).
ROUTE_COMMAND_TIMEOUT = 5.0
#: The VM's state: (summary field, ip's words).
STATE = (
    ("interfaces", ("addr", "show")),
    ("routes", ("-4", "route", "show", "table", "all")),
    ("routes6", ("-6", "route", "show", "table", "all")),
    ("rules", ("rule", "show")),
    ("neighbours", ("neigh", "show")),
)


def ip(words: Sequence[str]) -> tuple[Any, str]:
    """(ip -j's JSON, "") or (None, why): the text form when -j is not there."""
    for argv in (["ip", "-j", *words], ["ip", *words]):
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=ROUTE_COMMAND_TIMEOUT,
                env=tool_env(),
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"{' '.join(argv)}: {exc}"
        text = done.stdout.decode("utf-8", errors="replace")
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", errors="replace").strip()
            if argv[1] == "-j" and "-j" in why:
                continue  # An ip without JSON output: ask for the text.
            return None, f"{' '.join(argv)}: {why or f'exit {done.returncode}'}"
        if argv[1] != "-j":
            return {"text": text}, ""
        try:
            return json.loads(text or "[]"), ""
        except ValueError:
            continue
    return None, f"ip {' '.join(words)}: no readable output"


def _route_line(route: Mapping[str, Any]) -> str:
    parts = [str(route.get("dst", "?"))]
    for key, word in (("gateway", "via"), ("dev", "dev"), ("prefsrc", "src"), ("table", "table")):
        if route.get(key) not in (None, ""):
            parts.append(f"{word} {route[key]}")
    return " ".join(parts)


def _report(result: dict[str, Any]) -> None:
    """The report for people, from the JSON."""
    for link in result["interfaces"] if isinstance(result["interfaces"], list) else []:
        addresses = [f"{a.get('local')}/{a.get('prefixlen')}" for a in link.get("addr_info", [])]
        say(f"  {shown(str(link.get('ifname')))} {link.get('operstate', '')} {' '.join(addresses)}")
    for field in ("routes", "routes6"):
        for route in result[field] if isinstance(result[field], list) else []:
            say(f"  route {shown(_route_line(route))}")
    for rule in result["rules"] if isinstance(result["rules"], list) else []:
        source = rule.get("src", "all")
        say(f"  rule {rule.get('priority')}: from {source} lookup {rule.get('table')}")
    for n in result["neighbours"] if isinstance(result["neighbours"], list) else []:
        state = ",".join(n.get("state", [])) if isinstance(n.get("state"), list) else n.get("state")
        say(f"  neighbour {n.get('dst')} dev {n.get('dev')} lladdr {n.get('lladdr', '-')} {state}")


def probe(req: Request, options: Mapping[str, str], pinned: str | None) -> int:
    """Look the route up (for ``pinned``, the address a name was pinned to, if it was),
    gather the state, print both and the machine line; the exit code."""
    host = req.address
    result: dict[str, Any] = {"dst_name": host, "dst_addr": None, "af": None, "route": None}
    result.update({field: None for field, _ in STATE})
    result["errors"] = []
    if pinned is not None:
        address = pinned
    elif parse_ip(host) is None:
        try:
            addresses, _ = resolve(host, 0, 0)
        except (OSError, UnicodeError) as exc:
            why = f"{host} cannot be resolved ({getattr(exc, 'strerror', None) or exc})"
            say(f"error: {why}")
            return finish(result, False, why)
        address = addresses[0][1][0]
    else:
        address = host
    result["dst_addr"], result["af"] = address, 6 if ":" in address else 4
    words = ["route", "get", address]
    if "-s" in options:
        words += ["from", options["-s"]]
    if "-i" in options:
        words += ["oif", options["-i"]]
    found, why = ip(words)
    if isinstance(found, list) and found and isinstance(found[0], dict):
        result["route"] = found[0]
        say(f"route to {address}: {shown(_route_line(found[0]))}")
    elif isinstance(found, dict):
        result["route"] = found
        say(f"route to {address}: {shown(found['text'].strip())}")
    else:
        result["errors"].append(why or "no route")
        say(f"route to {address}: {shown(why or 'none')}")
    for field, ip_words in STATE:
        value, problem = ip(ip_words)
        result[field] = value
        if problem:
            result["errors"].append(problem)
    _report(result)
    ok = result["route"] is not None
    return finish(result, ok, "" if ok else f"no route to {address}: {why}")
