"""The summary of the dns check (sysvm/probes/dns.py), in RIPE Atlas's DNS result shape.

::

    {"type": "dns", "af": 4, "dst_addr": "198.51.100.53", "dst_port": 53, "proto": "UDP",
     "qname": "web.lab.test.", "qtype": "A", "rcode": "NOERROR",
     "result": {"rt": 0.4, "size": 80, "ID": 4711, "QDCOUNT": 1, "ANCOUNT": 1,
                "NSCOUNT": 1, "ARCOUNT": 0,
                "flags": {"aa": True, "tc": False, "rd": True, "ra": False},
                "answers": [{"NAME": "web.lab.test.", "TYPE": "A", "TTL": 600,
                             "RDATA": "198.51.100.10"}],
                "authority": [{"NAME": "lab.test.", "TYPE": "NS", ...}]} | None,
     "answers": [...the same answers...], "truncated_udp": False, "error": "",
     "reached": True, "complete": True}

``result`` is None when no answer came (``error`` says why); MX answers add ``PREF`` and
``EXCHANGE``, TXT ``STRINGS``, SOA ``MNAME``, ``RNAME``, ``SERIAL``… as Atlas names them.
"""

from __future__ import annotations

from typing import Any

from cloudiag.parsers.probe_line import failure, pick, probe_result

_FIELDS: dict[str, tuple[type, ...]] = {
    "af": (int,),
    "dst_addr": (str,),
    "dst_port": (int,),
    "proto": (str,),
    "qname": (str,),
    "qtype": (str,),
    "rcode": (str,),
    "result": (dict,),
    "truncated_udp": (bool,),
    "error": (str,),
}
_RESULT: dict[str, tuple[type, ...]] = {
    "rt": (int, float),
    "size": (int,),
    "ID": (int,),
    "QDCOUNT": (int,),
    "ANCOUNT": (int,),
    "NSCOUNT": (int,),
    "ARCOUNT": (int,),
    "flags": (dict,),
    "answers": (list,),
    "authority": (list,),
}
_RECORD_KINDS = (str, int, list)


def _records(value: Any) -> list[dict[str, Any]]:
    """Records as dicts of plain values (a malformed one is left out)."""
    records = []
    for record in value if isinstance(value, list) else []:
        if isinstance(record, dict) and isinstance(record.get("TYPE"), str):
            records.append({k: v for k, v in record.items() if isinstance(v, _RECORD_KINDS)})
    return records


def parse_dns(stdout: str, stderr: str = "", exitcode: str = "0") -> dict[str, Any]:
    """Summarize a dns check."""
    found = probe_result(stdout)
    summary: dict[str, Any] = {"type": "dns", **pick(found, _FIELDS)}
    if summary["result"] is not None:
        result = pick(summary["result"], _RESULT)
        result["answers"] = _records(result["answers"])
        result["authority"] = _records(result["authority"])
        summary["result"] = result
    summary["answers"] = summary["result"]["answers"] if summary["result"] else []
    summary["truncated_udp"] = bool(summary["truncated_udp"])
    summary["error"] = summary["error"] or ("" if found else failure(stderr))
    summary["reached"] = summary["result"] is not None
    summary["complete"] = found is not None
    return summary
