"""The summary of the route check (sysvm/probes/route.py): the route a packet takes and
the VM's network state, from ``ip -j`` (already JSON: jc has no parser of ``ip`` to add).

::

    {"type": "route", "dst_name": "web.lab.test", "dst_addr": "198.51.100.10", "af": 4,
     "dev": "eth2", "src_addr": "203.0.113.10", "gateway": "203.0.113.1",
     "route": {...ip -j route get's object...},
     "interfaces": [{"name": "eth2", "state": "UP", "mac": "02:…",
                     "addresses": ["203.0.113.10/24"]}], "links": [...ip -j addr...],
     "routes": [{"dst": "default", "gateway": "203.0.113.1", "dev": "eth2", ...}],
     "routes6": [...], "rules": [...], "neighbours": [...],
     "errors": [], "reached": True, "complete": True}

``reached`` says a route was found (``ip route get`` answered); the lists are ``ip -j``'s
objects as they came (the text form, ``{"text": …}``, from an ip without ``-j``).
"""

from __future__ import annotations

from typing import Any

from cloudiag.parsers.probe_line import failure, pick, probe_result

_FIELDS: dict[str, tuple[type, ...]] = {
    "dst_name": (str,),
    "dst_addr": (str,),
    "af": (int,),
    "route": (dict,),
    "links": (list, dict),
    "routes": (list, dict),
    "routes6": (list, dict),
    "rules": (list, dict),
    "neighbours": (list, dict),
    "errors": (list,),
}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _interfaces(links: Any) -> list[dict[str, Any]]:
    """Each interface's name, state, MAC and addresses (address/prefix)."""
    found = []
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict):
            continue
        infos = link.get("addr_info")
        infos = infos if isinstance(infos, list) else []
        addresses = [
            f"{a['local']}/{a['prefixlen']}"
            for a in infos
            if isinstance(a, dict)
            and isinstance(a.get("local"), str)
            and isinstance(a.get("prefixlen"), int)
        ]
        found.append(
            {
                "name": _text(link.get("ifname")),
                "state": _text(link.get("operstate")),
                "mac": _text(link.get("address")),
                "addresses": addresses,
            }
        )
    return found


def parse_route(stdout: str, stderr: str = "", exitcode: str = "0") -> dict[str, Any]:
    """Summarize a route check."""
    found = probe_result(stdout)
    summary: dict[str, Any] = {
        "type": "route",
        **pick({**(found or {}), "links": (found or {}).get("interfaces")}, _FIELDS),
    }
    route = summary["route"] or {}
    summary["dev"] = _text(route.get("dev"))
    summary["src_addr"] = _text(route.get("prefsrc"))
    summary["gateway"] = _text(route.get("gateway"))
    summary["interfaces"] = _interfaces(summary["links"])
    for field in ("routes", "routes6", "rules", "neighbours"):
        value = summary[field]
        if isinstance(value, list):
            summary[field] = [item for item in value if isinstance(item, dict)]
    summary["errors"] = [e for e in summary["errors"] or [] if isinstance(e, str)]
    if not found and failure(stderr):
        summary["errors"].append(failure(stderr))
    summary["reached"] = summary["route"] is not None
    summary["complete"] = found is not None
    return summary
