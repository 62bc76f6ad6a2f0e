"""The summary of the http check (sysvm/probes/http.py), with RIPE Atlas's HTTP names.

::

    {"type": "http", "url": "https://web.lab.test/", "method": "GET", "af": 4,
     "dst_addr": "198.51.100.10", "res": 200, "reason": "OK", "ver": "1.0",
     "ttr": 0.3, "ttc": 0.2, "tls_time": 3.1, "ttfb": 4.0, "rt": 4.4,
     "hsize": 180, "bsize": 173, "headers": [["Server", "..."], ...],
     "location": None, "redirect": False,
     "tls": {"version": "TLSv1.3", "cipher": "...", "verified": True,
             "subject": "O=cloudiag lab, CN=web.lab.test", "issuer": "...",
             "not_after": "Dec  2 06:00:00 2027 GMT", "days_left": 364, "san": [...],
             "error": ""} | None,
     "body_truncated": False, "err": "", "reached": True, "complete": True}

Times are milliseconds from the start of the fetch (``ttr`` resolving the name, ``ttc``
connecting and ``tls_time`` the handshake are each their own step's time); None where the
step did not happen. ``res`` is the HTTP status, ``hsize``/``bsize`` the header and body
bytes; ``tls`` has ``verified`` False and ``error`` (e.g. "certificate has expired") when
the certificate was refused.
"""

from __future__ import annotations

from typing import Any

from cloudiag.parsers.probe_line import failure, pick, probe_result

_FIELDS: dict[str, tuple[type, ...]] = {
    "url": (str,),
    "method": (str,),
    "af": (int,),
    "dst_addr": (str,),
    "res": (int,),
    "reason": (str,),
    "ver": (str,),
    "ttr": (int, float),
    "ttc": (int, float),
    "tls_time": (int, float),
    "ttfb": (int, float),
    "rt": (int, float),
    "hsize": (int,),
    "bsize": (int,),
    "headers": (list,),
    "location": (str,),
    "tls": (dict,),
    "body_truncated": (bool,),
    "err": (str,),
}
_TLS: dict[str, tuple[type, ...]] = {
    "version": (str,),
    "cipher": (str,),
    "verified": (bool,),
    "subject": (str,),
    "issuer": (str,),
    "not_after": (str,),
    "days_left": (int,),
    "san": (list,),
    "error": (str,),
}


def parse_http(stdout: str, stderr: str = "", exitcode: str = "0") -> dict[str, Any]:
    """Summarize an http check."""
    found = probe_result(stdout)
    summary: dict[str, Any] = {"type": "http", **pick(found, _FIELDS)}
    summary["headers"] = [
        [str(h[0]), str(h[1])]
        for h in summary["headers"] or []
        if isinstance(h, list) and len(h) == 2 and all(isinstance(p, str) for p in h)
    ]
    if summary["tls"] is not None:
        tls = pick(summary["tls"], _TLS)
        tls["verified"] = bool(tls["verified"])
        tls["san"] = [s for s in tls["san"] or [] if isinstance(s, str)]
        tls["error"] = tls["error"] or ""
        summary["tls"] = tls
    status = summary["res"]
    summary["redirect"] = status is not None and 300 <= status < 400
    summary["body_truncated"] = bool(summary["body_truncated"])
    summary["err"] = summary["err"] or ("" if found else failure(stderr))
    summary["reached"] = status is not None
    summary["complete"] = found is not None
    return summary
