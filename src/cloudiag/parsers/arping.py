"""The summary of iputils ``arping`` output: replies, MACs seen, duplicate addresses."""

from __future__ import annotations

import re
from typing import Any, Final

from cloudiag.parsers.common import (
    ASCII,
    FLOAT,
    INT,
    canonical,
    exit_code,
    lines_of,
    to_float,
)

# "ARPING 203.0.113.1 from 203.0.113.30 eth2" ("from 0.0.0.0" in DAD mode; the interface
# name is empty when arping picked none).
_ARPING_HEADER: Final = re.compile(
    r"ARPING (?P<dest>\S+) from (?P<src>\S+)(?: (?P<iface>\S+))?\s*\Z", ASCII
)
# "Unicast reply from 203.0.113.1 [02:C0:C1:16:F1:77]  0.550ms", optionally with
# "for <ip> " and/or "[<mac>]" after the sender's MAC, or " UNSOLICITED?" for a reply that
# came before any request was sent.
_ARPING_REPLY: Final = re.compile(
    r"(?P<kind>Unicast|Broadcast) (?P<op>reply|request) from (?P<addr>\S+) "
    r"\[(?P<mac>[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2}){0,31})\]"
    r"(?: for [0-9.]{7,15})?(?: (?:for )?\[[0-9A-Fa-f:]{1,95}\])?"
    rf"(?:\s+(?:(?P<time>{FLOAT})ms|UNSOLICITED\?))?",
    ASCII,
)
_ARPING_SENT: Final = re.compile(rf"Sent (?P<n>{INT}) probes?", ASCII)
_ARPING_RECEIVED: Final = re.compile(rf"Received (?P<n>{INT}) response", ASCII)
_DAD_SOURCE: Final = "0.0.0.0"  # what arping -D prints as its source


def parse_arping(stdout: str, stderr: str = "", exitcode: str = "0") -> dict[str, Any]:
    """Summarize iputils arping output, flagging addresses claimed by several MACs.

    ``duplicate`` is True when one IP address answered from two or more different MACs
    (two hosts claim it). In duplicate address detection mode (``-D``, recognised by the
    source 0.0.0.0) ``dad`` is True and any answer means the address is taken, so
    ``duplicate`` is True as soon as anyone answered; arping's exit code 1 says the same
    when its output was cut before the replies.
    """
    result: dict[str, Any] = {
        "type": "arping",
        "destination": None,
        "source": None,
        "interface": None,
        "sent": None,
        "received": None,
        "replies": [],
        "macs": [],
        "duplicate": False,
        "dad": False,
        "complete": False,
    }
    replies: list[dict[str, Any]] = result["replies"]
    for raw in lines_of(stdout):
        line = raw.strip()
        if match := _ARPING_REPLY.match(line):
            replies.append(
                {
                    "address": match["addr"],
                    # print_hex() writes upper case; normalize anyway so that the same
                    # MAC can never count as two.
                    "mac": match["mac"].upper(),
                    "time": to_float(match["time"]),
                    "kind": match["kind"],
                }
            )
        elif (match := _ARPING_HEADER.match(line)) and result["destination"] is None:
            result["destination"], result["source"] = match["dest"], match["src"]
            result["interface"] = match["iface"]
        elif match := _ARPING_SENT.match(line):
            result["sent"] = int(match["n"])
        elif match := _ARPING_RECEIVED.match(line):
            result["received"] = int(match["n"])
            result["complete"] = True

    if result["received"] is None:
        result["received"] = len(replies)
    macs_by_address: dict[str, list[str]] = {}
    for reply in replies:
        seen = macs_by_address.setdefault(canonical(reply["address"]), [])
        if reply["mac"] not in seen:
            seen.append(reply["mac"])
        if reply["mac"] not in result["macs"]:
            result["macs"].append(reply["mac"])
    duplicate = any(len(macs) > 1 for macs in macs_by_address.values())
    dad = result["source"] == _DAD_SOURCE
    if dad:
        answered = bool(replies) or result["received"] > 0
        if not result["complete"] and exit_code(exitcode) == 1:
            answered = True  # -D exits 1 exactly when someone answered
        duplicate = duplicate or answered
    result["duplicate"], result["dad"] = duplicate, dad
    return result
