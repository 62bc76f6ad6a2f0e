"""The summary of iputils ``ping`` output (also ping6: the same tool with ``-6``)."""

from __future__ import annotations

import re
from typing import Any, Final

from cloudiag.parsers.common import (
    ASCII,
    FLOAT,
    INT,
    is_ip,
    lines_of,
    rtt_from,
    split_named,
    to_float,
    to_int,
)

# "PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data." (IPv4),
# "PING ::1(::1) 56 data bytes" and "PING web.lab.test(web.lab.test (2001:db8::10)) 56 data
# bytes" (IPv6), optionally with "from <source> <interface>: " before the sizes. The group
# in parentheses may itself contain one level of parentheses (the IPv6 "name (address)").
_PING_HEADER: Final = re.compile(
    r"PING (?P<host>[^\s(]+) ?\((?P<inner>(?:[^()]|\([^()]*\))*)\)", ASCII
)
# ping -D puts "[seconds.micros] " in front of every line (not an allowed option today,
# but a prefix must never hide a reply).
_PING_TIMESTAMP: Final = re.compile(r"\[[0-9]{1,12}\.[0-9]{1,9}\] ", ASCII)
# "64 bytes from web.lab.test (198.51.100.10): icmp_seq=1 ttl=63 time=0.288 ms (DUP!)".
# ttl and time are optional (no time with -s below 16, "(truncated)" replies, ...). The
# address part is matched lazily up to ": icmp_seq=" because IPv6 addresses contain ":".
_PING_REPLY: Final = re.compile(
    rf"(?P<bytes>{INT}) bytes from (?P<from>.+?): icmp_seq=(?P<seq>{INT})"
    rf"(?: ttl=(?P<ttl>{INT}))?(?: time=(?P<time>{FLOAT}) ms)?(?P<rest>.*)",
    ASCII,
)
# "From 203.0.113.1 icmp_seq=3 Destination Host Unreachable" (local errors) and
# "From gw.lab.test (203.0.113.1): icmp_seq=1 Time to live exceeded" (ICMP errors; the
# colon depends on the iputils release).
_PING_ERROR: Final = re.compile(rf"From (?P<from>.+?):? icmp_seq=(?P<seq>{INT})(?P<msg>.*)", ASCII)
_PING_STATS_TITLE: Final = re.compile(r"--- (?P<host>.+) ping statistics ---", ASCII)
# "2 packets transmitted, 1 received, +1 duplicates, +1 corrupted, +1 errors,
#  50% packet loss, time 1001ms". The loss is printf's %g ("33.3333", "100").
_PING_STATS: Final = re.compile(
    rf"(?P<tx>{INT}) packets transmitted, (?P<rx>{INT}) (?:packets )?received"
    rf"(?P<extra>(?:, \+{INT} [a-z]{{1,20}})*)"
    rf"(?:, (?P<loss>{FLOAT}(?:e[+-]?[0-9]{{1,3}})?)% packet loss)?",
    ASCII,
)
_PING_STATS_EXTRA: Final = re.compile(rf"\+(?P<n>{INT}) (?P<what>[a-z]+)", ASCII)
# "rtt min/avg/max/mdev = 0.030/0.035/0.039/0.004 ms" (possibly ", pipe 2" after it).
_PING_RTT: Final = re.compile(
    rf"(?:rtt|round-trip) min/avg/max/(?:mdev|stddev) = "
    rf"(?P<min>{FLOAT})/(?P<avg>{FLOAT})/(?P<max>{FLOAT})/(?P<mdev>{FLOAT}) ms",
    ASCII,
)


def parse_ping(stdout: str, stderr: str = "", exitcode: str = "0") -> dict[str, Any]:
    """Summarize iputils ping (or ``ping -6``) output.

    Counts, loss and RTT statistics come from ping's own summary. When the output stops
    before it (a run killed at its time limit), they are worked out from the replies
    instead and ``complete`` is False. ``stderr`` and ``exitcode`` are not needed: ping
    prints everything measurable on stdout.
    """
    result: dict[str, Any] = {
        "type": "ping",
        "destination": None,
        "destination_name": None,
        "transmitted": 0,
        "received": 0,
        "duplicates": 0,
        "corrupted": 0,
        "errors": 0,
        "loss": None,
        "rtt": None,
        "replies": [],
        "unreachable": [],
        "complete": False,
    }
    replies: list[dict[str, Any]] = result["replies"]
    unreachable: list[dict[str, Any]] = result["unreachable"]
    stats: re.Match[str] | None = None
    rtt: re.Match[str] | None = None
    stats_host: str | None = None
    for raw in lines_of(stdout):
        line = raw.strip()
        stamp = _PING_TIMESTAMP.match(line)
        if stamp:
            line = line[stamp.end() :]
        if match := _PING_REPLY.match(line):
            replies.append(
                {
                    "seq": int(match["seq"]),
                    "ttl": to_int(match["ttl"]),
                    "time": to_float(match["time"]),
                    "from": split_named(match["from"])[1],
                    "dup": "(DUP!)" in match["rest"],
                }
            )
        elif match := _PING_ERROR.match(line):
            unreachable.append(
                {
                    "seq": int(match["seq"]),
                    "from": split_named(match["from"])[1],
                    "message": match["msg"].strip(),
                }
            )
        elif (match := _PING_HEADER.match(line)) and result["destination"] is None:
            name, address = split_named(match["inner"])
            host = match["host"]
            result["destination"] = address
            # A literal target is printed as its own name: that is not a name.
            result["destination_name"] = host if host != address else name
        elif match := _PING_STATS_TITLE.fullmatch(line):
            stats_host = match["host"]
        elif match := _PING_STATS.match(line):
            stats = match
        elif match := _PING_RTT.match(line):
            rtt = match

    if result["destination"] is None and stats_host is not None:
        # Output without its first line: the summary title still names the target.
        if is_ip(stats_host):
            result["destination"] = stats_host
        else:
            result["destination_name"] = stats_host

    if stats is not None:
        result["complete"] = True
        transmitted, received = int(stats["tx"]), int(stats["rx"])
        result["transmitted"], result["received"] = transmitted, received
        for extra in _PING_STATS_EXTRA.finditer(stats["extra"]):
            if extra["what"] in ("duplicates", "corrupted", "errors"):
                result[extra["what"]] = int(extra["n"])
        loss = to_float(stats["loss"])
        if loss is None and transmitted:
            loss = (transmitted - received) * 100.0 / transmitted
        result["loss"] = loss
    else:
        # No summary: count what was printed. Probes after the last printed sequence
        # number are unknown, so the loss is a lower bound (and None if nothing is known).
        seqs = [r["seq"] for r in replies] + [u["seq"] for u in unreachable]
        transmitted = max(seqs, default=0)
        received = len({r["seq"] for r in replies if not r["dup"]})
        result["transmitted"], result["received"] = transmitted, received
        result["duplicates"] = sum(1 for r in replies if r["dup"])
        result["errors"] = len(unreachable)
        if transmitted:
            result["loss"] = max(transmitted - received, 0) * 100.0 / transmitted

    if rtt is not None:
        values = [to_float(rtt[k]) for k in ("min", "avg", "max", "mdev")]
        if all(v is not None for v in values):
            result["rtt"] = dict(zip(("min", "avg", "max", "mdev"), values, strict=True))
    elif stats is None:
        # ping's statistics include duplicates' times, so these do too.
        result["rtt"] = rtt_from([r["time"] for r in replies if r["time"] is not None])
    return result
