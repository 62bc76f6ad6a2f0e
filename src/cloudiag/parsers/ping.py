"""The summary of iputils ``ping`` output (also ping6: the same tool with ``-6``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from cloudiag.parsers.common import (
    ASCII,
    FLOAT,
    INT,
    MAX_LINES,
    NO_RTT,
    TIMEOUT,
    family,
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
    r"PING (?P<host>[^\s(]+) ?\((?P<inner>(?:[^()]|\([^()]*\))*)\)"
    rf"(?: from (?P<src>\S+) \S+:)?(?: (?P<size>{INT})(?:\({INT}\))?)?",
    ASCII,
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
    """Summarize iputils ping (or ``ping -6``) output in RIPE Atlas's ping result format.

    Counts and RTT statistics come from ping's own summary. When the output stops before
    it (a run killed at its time limit), they are worked out from the replies instead and
    ``complete`` is False. ``result`` has an entry per sequence number in order: the reply
    (then its duplicates, ``"dup": 1``) or ``{"x": "*"}``; with ``-q`` ping prints no
    replies and ``result`` stays empty unless nothing came back. ``stderr`` and
    ``exitcode`` are not needed: ping prints everything measurable on stdout.
    """
    result: dict[str, Any] = {
        "type": "ping",
        "af": None,
        "dst_addr": None,
        "dst_name": None,
        "src_addr": None,
        "proto": "ICMP",
        "size": None,
        "ttl": None,
        "sent": 0,
        "rcvd": 0,
        "dup": 0,
        "min": NO_RTT,
        "avg": NO_RTT,
        "max": NO_RTT,
        "result": [],
        # Beyond Atlas's format (Atlas readers ignore these): what the web UI shows.
        "mdev": None,
        "loss": None,
        "corrupted": 0,
        "errors": 0,
        "unreachable": [],
        "complete": False,
    }
    replies: list[dict[str, Any]] = []
    answered: set[int] = set()
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
            seq = int(match["seq"])
            # ping marks "(DUP!)" only for unicast targets: a second reply to a broadcast
            # ping (-b) is unmarked, and a duplicate all the same.
            dup = "(DUP!)" in match["rest"] or seq in answered
            if not dup:
                answered.add(seq)
            replies.append(
                {
                    "seq": seq,
                    "ttl": to_int(match["ttl"]),
                    "rtt": to_float(match["time"]),
                    "from": split_named(match["from"])[1],
                    "dup": dup,
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
        elif (match := _PING_HEADER.match(line)) and result["dst_addr"] is None:
            result["dst_addr"] = split_named(match["inner"])[1]
            # Atlas's dst_name is the target as it was asked for, name or address.
            result["dst_name"] = match["host"]
            result["src_addr"] = match["src"]
            result["size"] = to_int(match["size"])
        elif match := _PING_STATS_TITLE.fullmatch(line):
            stats_host = match["host"]
        elif match := _PING_STATS.match(line):
            stats = match
        elif match := _PING_RTT.match(line):
            rtt = match

    if result["dst_addr"] is None and stats_host is not None:
        # Output without its first line: the summary title still names the target.
        result["dst_name"] = stats_host
        if is_ip(stats_host):
            result["dst_addr"] = stats_host
    result["af"] = family(result["dst_addr"])

    if stats is not None:
        result["complete"] = True
        sent, rcvd = int(stats["tx"]), int(stats["rx"])
        counts = {"duplicates": "dup", "corrupted": "corrupted", "errors": "errors"}
        for extra in _PING_STATS_EXTRA.finditer(stats["extra"]):
            if extra["what"] in counts:
                result[counts[extra["what"]]] = int(extra["n"])
        loss = to_float(stats["loss"])
        if loss is None and sent:
            loss = (sent - rcvd) * 100.0 / sent
    else:
        # No summary: count what was printed. Probes after the last printed sequence
        # number are unknown, so the loss is a lower bound (and None if nothing is known).
        sent = max([r["seq"] for r in replies] + [u["seq"] for u in unreachable], default=0)
        rcvd = len(answered)
        result["dup"] = sum(1 for r in replies if r["dup"])
        result["errors"] = len(unreachable)
        loss = max(sent - rcvd, 0) * 100.0 / sent if sent else None
    result["sent"], result["rcvd"], result["loss"] = sent, rcvd, loss

    times: Mapping[str, float | None] | None = None
    if rtt is not None:
        times = {k: to_float(rtt[k]) for k in ("min", "avg", "max", "mdev")}
    elif stats is None:
        # ping's statistics include duplicates' times, so these do too.
        times = rtt_from([r["rtt"] for r in replies if r["rtt"] is not None])
    if times is not None and all(v is not None for v in times.values()):
        result.update(times)

    # With -q ping prints no replies: which ones came back is unknown, unless none did.
    printed = bool(replies or unreachable) or (stats is not None and rcvd == 0)
    result["result"] = _packets(replies, sent if printed else 0)
    result["ttl"] = next((r["ttl"] for r in replies if r["ttl"] is not None), None)
    return result


def _packets(replies: list[dict[str, Any]], sent: int) -> list[dict[str, Any]]:
    """Atlas's ``result``: per sequence number 1..sent its replies, or ``{"x": "*"}``.

    A reply is ``{"rtt", "ttl", "seq"}`` (``rtt`` left out when ping printed no time, as
    with ``-s`` below 16), ``"dup": 1`` on a duplicate, and ``srcaddr`` when it came from
    another address than the first reply (Atlas's rule). ``seq`` is beyond Atlas's format.
    """
    by_seq: dict[int, list[dict[str, Any]]] = {}
    for reply in replies:
        by_seq.setdefault(reply["seq"], []).append(reply)
    first = replies[0]["from"] if replies else None
    packets: list[dict[str, Any]] = []
    # Sequence numbers past "sent" happen only in odd output; they are kept, in order. The
    # timeouts are bounded as the lines read are: "sent" is whatever the summary claims.
    for seq in sorted(set(range(1, min(sent, MAX_LINES) + 1)) | set(by_seq)):
        answers = by_seq.get(seq)
        if not answers:
            packets.append({"x": TIMEOUT, "seq": seq})
            continue
        for reply in answers:
            packet: dict[str, Any] = {}
            if reply["rtt"] is not None:
                packet["rtt"] = reply["rtt"]
            if reply["ttl"] is not None:
                packet["ttl"] = reply["ttl"]
            if reply["dup"]:
                packet["dup"] = 1
            if reply["from"] != first:
                packet["srcaddr"] = reply["from"]
            packet["seq"] = seq
            packets.append(packet)
    return packets
