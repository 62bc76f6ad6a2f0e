"""The summary of ``traceroute`` 2.1.x output in RIPE Atlas's traceroute result format."""

from __future__ import annotations

import re
from typing import Any, Final

from cloudiag.parsers.common import (
    ASCII,
    FLOAT,
    TIMEOUT,
    canonical,
    family,
    lines_of,
    to_float,
)

# "traceroute to web.lab.test (198.51.100.10), 5 hops max, 60 byte packets". traceroute
# prints it without a newline (each hop starts with one), so it may be the whole output.
_TRACE_HEADER: Final = re.compile(
    r"traceroute6? to (?P<name>\S+) \((?P<addr>[^()\s]+)\), (?P<max>[0-9]{1,4}) hops max"
    r"(?:, (?P<size>[0-9]{1,6}) byte packets)?",
    ASCII,
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

# traceroute's annotation of an ICMP error -> Atlas's "err": a letter where Atlas has one
# (!X, "communication administratively prohibited", is Atlas's "A"), else the ICMP code.
_ATLAS_ERR: Final = {"!H": "H", "!N": "N", "!P": "P", "!X": "A", "!S": 5, "!V": 14, "!C": 15}
_CODE_NOTE: Final = re.compile(r"!<(?P<code>[0-9]{1,3})>", ASCII)
_FRAG_NOTE: Final = re.compile(r"!F(?:-(?P<mtu>[0-9]{1,6}))?", ASCII)
_FRAG_NEEDED: Final = 4  # ICMP "fragmentation needed" (traceroute's !F-<mtu>)


def _annotate(reply: dict[str, Any], note: str) -> None:
    """Record traceroute's annotation on a reply: as printed, and as Atlas's err/mtu."""
    reply["annotation"] = note
    if note in _ATLAS_ERR:
        reply["err"] = _ATLAS_ERR[note]
    elif code := _CODE_NOTE.fullmatch(note):
        reply["err"] = int(code["code"])
    elif frag := _FRAG_NOTE.fullmatch(note):
        reply["err"] = _FRAG_NEEDED
        if frag["mtu"]:
            reply["mtu"] = int(frag["mtu"])


def _trace_replies(rest: str) -> list[dict[str, Any]]:
    """The replies of one hop line (the part after the TTL), in Atlas's form."""
    replies: list[dict[str, Any]] = []
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
            replies.append({"x": TIMEOUT})
        elif item["rtt"]:
            if current is not None:
                reply: dict[str, Any] = {"from": current[0], "rtt": to_float(item["rtt"])}
                if current[1] is not None:
                    reply["name"] = current[1]
                replies.append(reply)
        elif item["paddr"]:
            name, address = item["name"], item["paddr"]
            current = (address, name if name != address else None)
        elif item["note"]:
            if replies and "rtt" in replies[-1] and "annotation" not in replies[-1]:
                _annotate(replies[-1], item["note"])
        elif item["addr"]:
            current = (item["addr"], None)
    return replies


def parse_traceroute(stdout: str, stderr: str = "", exitcode: str = "0") -> dict[str, Any]:
    """Summarize traceroute (2.1.x, also ``-6``, ``-I``, ``-T``, ``-U``) output in RIPE
    Atlas's traceroute result format.

    ``result`` lists the hops (``{"hop": ttl, "result": [...]}``), each with its probes in
    order: an answer ``{"from", "rtt"}`` (with the reverse ``name`` when traceroute printed
    one, and ``err``/``mtu`` plus the printed ``annotation`` such as ``!H`` for an ICMP
    error) or ``{"x": "*"}``. traceroute does not print the size or TTL of a reply, so
    those Atlas fields are absent. ``reached`` is True when the last hop includes the
    destination address. ``stderr`` and ``exitcode`` are not needed: traceroute prints the
    route on stdout.
    """
    result: dict[str, Any] = {
        "type": "traceroute",
        "af": None,
        "dst_addr": None,
        "dst_name": None,
        "size": None,
        "result": [],
        # Beyond Atlas's format (Atlas readers ignore these): what the web UI shows.
        "max_hops": None,
        "reached": False,
    }
    hops: list[dict[str, Any]] = result["result"]
    for line in lines_of(stdout):
        header = _TRACE_HEADER.search(line) if result["dst_addr"] is None else None
        if header is not None:
            result["dst_addr"] = header["addr"]
            # Atlas's dst_name is the target as it was asked for, name or address.
            result["dst_name"] = header["name"]
            result["af"] = family(header["addr"])
            result["size"] = int(header["size"]) if header["size"] else None
            result["max_hops"] = int(header["max"])
            continue
        hop = _TRACE_HOP.match(line)
        if hop is None:
            continue
        replies = _trace_replies(hop["rest"].rstrip())
        # A line that yields no probe is not a hop line (or was cut before its first
        # probe finished): leave it out rather than show an empty hop.
        if replies:
            hops.append({"hop": int(hop["ttl"]), "result": replies})
    if hops and result["dst_addr"] is not None:
        target = canonical(result["dst_addr"])
        result["reached"] = any(
            canonical(r["from"]) == target for r in hops[-1]["result"] if "from" in r
        )
    return result
