"""Parsers of diagnostic output (cloudiag.parsers).

The REAL_* constants were captured on Debian (iputils-ping 20221126, traceroute 2.1.2,
LC_ALL=C) against loopback only, plus two outputs from the project's lab (network
namespaces). The HAND_* constants are written from the tools' printf formats (iputils
ping_common.c/arping.c, traceroute.c print_probe()) for cases loopback cannot produce.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudiag import parsers
from cloudiag.parsers import parse, parse_arping, parse_ping, parse_traceroute
from cloudiag.sysvm import registry

# --------------------------------------------------------------------------- real: ping

# ping -c 3 127.0.0.1
REAL_PING = """\
PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.030 ms
64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.038 ms
64 bytes from 127.0.0.1: icmp_seq=3 ttl=64 time=0.039 ms

--- 127.0.0.1 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 2041ms
rtt min/avg/max/mdev = 0.030/0.035/0.039/0.004 ms
"""
# ping -c 2 -W 1 -n 127.0.0.1
REAL_PING_NUMERIC = """\
PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.011 ms
64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.030 ms

--- 127.0.0.1 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1022ms
rtt min/avg/max/mdev = 0.011/0.020/0.030/0.009 ms
"""
# ping -q -c 2 127.0.0.1
REAL_PING_QUIET = """\
PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.

--- 127.0.0.1 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1022ms
rtt min/avg/max/mdev = 0.011/0.036/0.061/0.025 ms
"""
# ping -c 1 -I lo 127.0.0.1
REAL_PING_SOURCE = """\
PING 127.0.0.1 (127.0.0.1) from 127.0.0.1 lo: 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.012 ms

--- 127.0.0.1 ping statistics ---
1 packets transmitted, 1 received, 0% packet loss, time 0ms
rtt min/avg/max/mdev = 0.012/0.012/0.012/0.000 ms
"""
# ping -s 0 -c 2 -i 0.2 127.0.0.1 (too little data for a timestamp: no time, no rtt line)
REAL_PING_NO_TIME = """\
PING 127.0.0.1 (127.0.0.1) 0(28) bytes of data.
8 bytes from 127.0.0.1: icmp_seq=1 ttl=64
8 bytes from 127.0.0.1: icmp_seq=2 ttl=64

--- 127.0.0.1 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 204ms

"""
# ping -c 2 localhost
REAL_PING_NAMED = """\
PING localhost (127.0.0.1) 56(84) bytes of data.
64 bytes from localhost (127.0.0.1): icmp_seq=1 ttl=64 time=0.024 ms
64 bytes from localhost (127.0.0.1): icmp_seq=2 ttl=64 time=0.035 ms

--- localhost ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1022ms
rtt min/avg/max/mdev = 0.024/0.029/0.035/0.005 ms
"""
# ping -6 -c 2 ::1 (IPv6 header: no blank before the parenthesis, "data bytes")
REAL_PING6 = """\
PING ::1(::1) 56 data bytes
64 bytes from ::1: icmp_seq=1 ttl=64 time=0.016 ms
64 bytes from ::1: icmp_seq=2 ttl=64 time=0.037 ms

--- ::1 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 1006ms
rtt min/avg/max/mdev = 0.016/0.026/0.037/0.010 ms
"""
# ping -c 1 -W 1 127.0.0.1 in a network namespace whose lo is down: exit 2, stderr only.
REAL_PING_DOWN_STDERR = "ping: connect: Network is unreachable\n"

# --------------------------------------------------------------------------- real: traceroute

# traceroute -n 127.0.0.1
REAL_TRACE_NUMERIC = """\
traceroute to 127.0.0.1 (127.0.0.1), 30 hops max, 60 byte packets
 1  127.0.0.1  0.012 ms  0.005 ms  0.004 ms
"""
# traceroute 127.0.0.1
REAL_TRACE = """\
traceroute to 127.0.0.1 (127.0.0.1), 30 hops max, 60 byte packets
 1  localhost (127.0.0.1)  0.008 ms  0.004 ms  0.004 ms
"""
# traceroute -q 3 -w 1 -m 3 127.0.0.1
REAL_TRACE_LIMITED = """\
traceroute to 127.0.0.1 (127.0.0.1), 3 hops max, 60 byte packets
 1  localhost (127.0.0.1)  0.009 ms  0.004 ms  0.004 ms
"""
# traceroute -I -n -q 1 127.0.0.1
REAL_TRACE_ICMP = """\
traceroute to 127.0.0.1 (127.0.0.1), 30 hops max, 60 byte packets
 1  127.0.0.1  0.010 ms
"""
# traceroute -6 -n ::1
REAL_TRACE6 = """\
traceroute to ::1 (::1), 30 hops max, 80 byte packets
 1  ::1  0.020 ms  0.005 ms  0.004 ms
"""
# traceroute -6 ::1 (no reverse name: the address stands in for it)
REAL_TRACE6_UNNAMED = """\
traceroute to ::1 (::1), 30 hops max, 80 byte packets
 1  ::1 (::1)  0.010 ms  0.005 ms  0.004 ms
"""
# traceroute -n -m 2 127.0.0.1 with lo down: exit 1; the header has no newline (each hop
# line starts with one) and the error is on stderr.
REAL_TRACE_DOWN = "traceroute to 127.0.0.1 (127.0.0.1), 2 hops max, 60 byte packets"
REAL_TRACE_DOWN_STDERR = "\nconnect: Network is unreachable\n"
# Lab: through the virtual router to the web server.
REAL_LAB_TRACE = """\
traceroute to web.lab.test (198.51.100.10), 5 hops max, 60 byte packets
 1  203.0.113.1  0.021 ms
 2  198.51.100.10  0.114 ms
"""

# --------------------------------------------------------------------------- real: arping

# Lab: arping from the router's guest side to the gateway (arping cannot answer on lo).
REAL_LAB_ARPING = """\
ARPING 203.0.113.1 from 203.0.113.30 eth2
Unicast reply from 203.0.113.1 [02:C0:C1:16:F1:77]  0.550ms
Unicast reply from 203.0.113.1 [02:C0:C1:16:F1:77]  0.545ms
Sent 2 probes (1 broadcast(s))
Received 2 response(s)
"""

# --------------------------------------------------------------------------- by hand: ping

HAND_PING_LOST = """\
PING 198.51.100.99 (198.51.100.99) 56(84) bytes of data.

--- 198.51.100.99 ping statistics ---
4 packets transmitted, 0 received, 100% packet loss, time 3069ms

"""
HAND_PING_UNREACHABLE = """\
PING 198.51.100.99 (198.51.100.99) 56(84) bytes of data.
From 203.0.113.1 icmp_seq=1 Destination Host Unreachable
From 203.0.113.1 icmp_seq=2 Destination Host Unreachable
From 203.0.113.1 icmp_seq=3 Destination Host Unreachable

--- 198.51.100.99 ping statistics ---
4 packets transmitted, 0 received, +3 errors, 100% packet loss, time 3055ms
pipe 3
"""
HAND_PING_DUP = """\
PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data.
64 bytes from 198.51.100.10: icmp_seq=1 ttl=63 time=0.607 ms
64 bytes from 198.51.100.10: icmp_seq=1 ttl=63 time=0.652 ms (DUP!)
64 bytes from 198.51.100.10: icmp_seq=2 ttl=63 time=0.512 ms
64 bytes from 198.51.100.10: icmp_seq=2 ttl=63 time=0.540 ms (DUP!)
64 bytes from 198.51.100.10: icmp_seq=3 ttl=63 time=0.498 ms

--- 198.51.100.10 ping statistics ---
3 packets transmitted, 3 received, +2 duplicates, 0% packet loss, time 2003ms
rtt min/avg/max/mdev = 0.498/0.561/0.652/0.057 ms
"""
# Names, a router's error between replies, %g loss, ", pipe 2" after the rtt line.
HAND_PING_MIXED = """\
PING web.lab.test (198.51.100.10) 56(84) bytes of data.
64 bytes from web.lab.test (198.51.100.10): icmp_seq=1 ttl=63 time=1.12 ms
From gw.lab.test (203.0.113.1) icmp_seq=2 Destination Host Unreachable
64 bytes from web.lab.test (198.51.100.10): icmp_seq=3 ttl=63 time=12.4 ms

--- web.lab.test ping statistics ---
3 packets transmitted, 2 received, +1 errors, 33.3333% packet loss, time 2004ms
rtt min/avg/max/mdev = 1.120/6.760/12.400/5.640 ms, pipe 2
"""
# ping -t 1: the first router reports the expired TTL (with the ICMP-error colon).
HAND_PING_TTL = """\
PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data.
From 203.0.113.1: icmp_seq=1 Time to live exceeded
From 203.0.113.1: icmp_seq=2 Time to live exceeded

--- 198.51.100.10 ping statistics ---
2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1001ms

"""
# ping -6 to a name, killed at the time limit before the summary.
HAND_PING6_CUT = """\
PING web.lab.test(web.lab.test (2001:db8:100::10)) 56 data bytes
From 2001:db8:113::1 icmp_seq=1 Destination unreachable: Address unreachable
64 bytes from web.lab.test (2001:db8:100::10): icmp_seq=2 ttl=63 time=0.300 ms
64 bytes from web.lab.test (2001:db8:100::10): icmp_seq=3 ttl=63 time=0.500 ms
64 bytes from web.lab.test (2001:db8:100::10): icmp_seq=3 ttl=63 time=0.700 ms (DUP!)
"""

# --------------------------------------------------------------------------- by hand: traceroute

HAND_TRACE_NAMED = """\
traceroute to web.lab.test (198.51.100.10), 20 hops max, 60 byte packets
 1  gw.lab.test (203.0.113.1)  0.512 ms  0.401 ms  0.399 ms
 2  web.lab.test (198.51.100.10)  0.733 ms  0.690 ms  0.702 ms
"""
HAND_TRACE_STARS = """\
traceroute to 198.51.100.99 (198.51.100.99), 4 hops max, 60 byte packets
 1  203.0.113.1  0.433 ms  0.380 ms  0.371 ms
 2  * * *
 3  * * *
 4  * * *
"""
# Load-balanced first hop, then the router saying the host is unreachable.
HAND_TRACE_HOST_UNREACHABLE = """\
traceroute to 198.51.100.99 (198.51.100.99), 20 hops max, 60 byte packets
 1  203.0.113.1  0.5 ms 203.0.113.2  0.6 ms *
 2  gw.lab.test (203.0.113.1)  3004.120 ms !H  3004.201 ms !H  3004.188 ms !H
"""
HAND_TRACE_NET_UNREACHABLE = """\
traceroute to 192.0.2.77 (192.0.2.77), 20 hops max, 60 byte packets
 1  gw.lab.test (203.0.113.1)  0.420 ms !N  0.390 ms !N *
"""
# traceroute -T to a filtered port: the destination answers "administratively prohibited".
HAND_TRACE_PROHIBITED = """\
traceroute to 198.51.100.10 (198.51.100.10), 20 hops max, 60 byte packets
 1  203.0.113.1  0.380 ms  0.301 ms  0.299 ms
 2  198.51.100.10  0.702 ms !X  0.688 ms !X  0.671 ms !X
"""
# -f 9: two-digit TTLs, a star before the answer, "frag needed" and unknown-code notes.
HAND_TRACE_FIRST_HOP = """\
traceroute to 198.51.100.10 (198.51.100.10), 12 hops max, 1500 byte packets
 9  * 203.0.113.9  1.512 ms  1.498 ms
10  203.0.113.10  2.001 ms !F-1400 203.0.113.11  2.102 ms !<10>  *
11  198.51.100.10  2.640 ms  2.601 ms  2.599 ms
"""
HAND_TRACE6 = """\
traceroute to 2001:db8:100::10 (2001:db8:100::10), 20 hops max, 80 byte packets
 1  2001:db8:113::1  0.480 ms  0.402 ms  0.398 ms
 2  2001:db8:100::10  0.801 ms  0.760 ms  0.759 ms
"""
# Killed in the middle of hop 2.
HAND_TRACE_CUT = """\
traceroute to 198.51.100.10 (198.51.100.10), 20 hops max, 60 byte packets
 1  203.0.113.1  0.380 ms  0.301 ms  0.299 ms
 2  198.51.100.10  0.702 ms  0.6"""

# --------------------------------------------------------------------------- by hand: arping

# Two hosts claim 203.0.113.1: both answer the broadcast, then arping unicasts to the last.
HAND_ARPING_TWO_MACS = """\
ARPING 203.0.113.1 from 203.0.113.30 eth2
Unicast reply from 203.0.113.1 [02:C0:C1:16:F1:77]  0.550ms
Unicast reply from 203.0.113.1 [02:AA:BB:CC:DD:EE]  0.601ms
Unicast reply from 203.0.113.1 [02:AA:BB:CC:DD:EE]  0.512ms
Sent 2 probes (1 broadcast(s))
Received 3 response(s)
"""
HAND_ARPING_NONE = """\
ARPING 203.0.113.99 from 203.0.113.30 eth2
Sent 4 probes (4 broadcast(s))
Received 0 response(s)
"""
# arping -D: nobody has the address (exit 0) / somebody has it (exit 1, -D quits at once).
HAND_ARPING_DAD_FREE = """\
ARPING 203.0.113.50 from 0.0.0.0 eth2
Sent 4 probes (4 broadcast(s))
Received 0 response(s)
"""
HAND_ARPING_DAD_TAKEN = """\
ARPING 203.0.113.1 from 0.0.0.0 eth2
Unicast reply from 203.0.113.1 [02:C0:C1:16:F1:77]  0.604ms
Sent 1 probes (1 broadcast(s))
Received 1 response(s)
"""
# The optional "for <ip> [<mac>]" part, an unsolicited reply, broadcast/request counts.
HAND_ARPING_ODD = """\
ARPING 203.0.113.1 from 203.0.113.30 eth2
Broadcast reply from 203.0.113.1 [02:c0:c1:16:f1:77] for 203.0.113.31 [02:00:00:00:00:01] 0.700ms
Unicast request from 203.0.113.1 [02:C0:C1:16:F1:77] for [02:00:00:00:00:01] 0.812ms
Unicast reply from 203.0.113.1 [02:C0:C1:16:F1:77]  UNSOLICITED?
Sent 1 probes (1 broadcast(s))
Received 3 response(s) (1 request(s), 1 broadcast(s))
"""

SAMPLES: dict[str, list[str]] = {
    "ping": [
        REAL_PING,
        REAL_PING_NUMERIC,
        REAL_PING_QUIET,
        REAL_PING_SOURCE,
        REAL_PING_NO_TIME,
        REAL_PING_NAMED,
        REAL_PING6,
        HAND_PING_LOST,
        HAND_PING_UNREACHABLE,
        HAND_PING_DUP,
        HAND_PING_MIXED,
        HAND_PING_TTL,
        HAND_PING6_CUT,
    ],
    "traceroute": [
        REAL_TRACE_NUMERIC,
        REAL_TRACE,
        REAL_TRACE_LIMITED,
        REAL_TRACE_ICMP,
        REAL_TRACE6,
        REAL_TRACE6_UNNAMED,
        REAL_TRACE_DOWN,
        REAL_LAB_TRACE,
        HAND_TRACE_NAMED,
        HAND_TRACE_STARS,
        HAND_TRACE_HOST_UNREACHABLE,
        HAND_TRACE_NET_UNREACHABLE,
        HAND_TRACE_PROHIBITED,
        HAND_TRACE_FIRST_HOP,
        HAND_TRACE6,
        HAND_TRACE_CUT,
    ],
    "arping": [
        REAL_LAB_ARPING,
        HAND_ARPING_TWO_MACS,
        HAND_ARPING_NONE,
        HAND_ARPING_DAD_FREE,
        HAND_ARPING_DAD_TAKEN,
        HAND_ARPING_ODD,
    ],
}
ALL_SAMPLES = [text for texts in SAMPLES.values() for text in texts]


def assert_json_ready(value: Any) -> None:
    """Only JSON's own types, finite floats, str keys: what the API renderer accepts."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str)
            assert_json_ready(item)
    elif isinstance(value, list):
        for item in value:
            assert_json_ready(item)
    elif isinstance(value, float):
        assert value == value and value not in (float("inf"), float("-inf"))
    else:
        assert value is None or isinstance(value, str | int | bool)
    # Exactly what render.py does: NaN/Infinity would be refused there.
    json.dumps(value, allow_nan=False)


def strings_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings_in(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return [value] if isinstance(value, str) else []


# --------------------------------------------------------------------------- ping


def test_real_ping() -> None:
    p = parse("ping", REAL_PING)
    assert p is not None
    assert p["type"] == "ping"
    assert (p["destination"], p["destination_name"]) == ("127.0.0.1", None)
    assert (p["transmitted"], p["received"], p["duplicates"], p["errors"]) == (3, 3, 0, 0)
    assert p["loss"] == 0.0 and isinstance(p["loss"], float)
    assert p["rtt"] == {"min": 0.03, "avg": 0.035, "max": 0.039, "mdev": 0.004}
    assert p["replies"][0] == {
        "seq": 1,
        "ttl": 64,
        "time": 0.03,
        "from": "127.0.0.1",
        "dup": False,
    }
    assert [r["seq"] for r in p["replies"]] == [1, 2, 3]
    assert p["unreachable"] == [] and p["complete"] is True


def test_real_ping_variants() -> None:
    numeric = parse_ping(REAL_PING_NUMERIC)
    assert [r["time"] for r in numeric["replies"]] == [0.011, 0.03]

    quiet = parse_ping(REAL_PING_QUIET)
    assert quiet["replies"] == [] and quiet["received"] == 2
    assert quiet["rtt"] == {"min": 0.011, "avg": 0.036, "max": 0.061, "mdev": 0.025}

    source = parse_ping(REAL_PING_SOURCE)
    assert source["destination"] == "127.0.0.1" and source["rtt"]["mdev"] == 0.0

    no_time = parse_ping(REAL_PING_NO_TIME)
    assert [(r["seq"], r["ttl"], r["time"]) for r in no_time["replies"]] == [
        (1, 64, None),
        (2, 64, None),
    ]
    assert no_time["rtt"] is None and no_time["loss"] == 0.0

    named = parse_ping(REAL_PING_NAMED)
    assert (named["destination"], named["destination_name"]) == ("127.0.0.1", "localhost")
    assert {r["from"] for r in named["replies"]} == {"127.0.0.1"}


def test_real_ping6_goes_through_the_ping_parser() -> None:
    p = parse("ping6", REAL_PING6)
    assert p is not None and p["type"] == "ping"
    assert p["destination"] == "::1" and p["destination_name"] is None
    assert [r["from"] for r in p["replies"]] == ["::1", "::1"]
    assert p["rtt"] == {"min": 0.016, "avg": 0.026, "max": 0.037, "mdev": 0.01}


def test_ping_that_could_not_start() -> None:
    p = parse("ping", "", REAL_PING_DOWN_STDERR, "2")
    assert p is not None
    assert p["destination"] is None and p["transmitted"] == 0
    assert p["loss"] is None and p["rtt"] is None and p["complete"] is False


def test_ping_total_loss() -> None:
    p = parse_ping(HAND_PING_LOST, "", "1")
    assert (p["transmitted"], p["received"], p["loss"]) == (4, 0, 100.0)
    assert p["rtt"] is None and p["replies"] == [] and p["complete"] is True


def test_ping_unreachable_from_a_router() -> None:
    p = parse_ping(HAND_PING_UNREACHABLE, "", "1")
    assert (p["transmitted"], p["received"], p["errors"], p["loss"]) == (4, 0, 3, 100.0)
    assert p["unreachable"] == [
        {"seq": n, "from": "203.0.113.1", "message": "Destination Host Unreachable"}
        for n in (1, 2, 3)
    ]
    assert p["rtt"] is None  # "pipe 3" is no rtt line


def test_ping_duplicates() -> None:
    p = parse_ping(HAND_PING_DUP)
    assert (p["transmitted"], p["received"], p["duplicates"], p["loss"]) == (3, 3, 2, 0.0)
    assert [(r["seq"], r["dup"]) for r in p["replies"]] == [
        (1, False),
        (1, True),
        (2, False),
        (2, True),
        (3, False),
    ]


def test_ping_mixed_replies_errors_and_names() -> None:
    p = parse_ping(HAND_PING_MIXED)
    assert (p["destination"], p["destination_name"]) == ("198.51.100.10", "web.lab.test")
    assert (p["received"], p["errors"]) == (2, 1)
    assert p["loss"] == pytest.approx(33.3333)
    assert [r["time"] for r in p["replies"]] == [1.12, 12.4]
    assert p["unreachable"] == [
        {"seq": 2, "from": "203.0.113.1", "message": "Destination Host Unreachable"}
    ]
    assert p["rtt"] == {"min": 1.12, "avg": 6.76, "max": 12.4, "mdev": 5.64}


def test_ping_ttl_exceeded() -> None:
    p = parse_ping(HAND_PING_TTL)
    assert [u["message"] for u in p["unreachable"]] == ["Time to live exceeded"] * 2
    assert {u["from"] for u in p["unreachable"]} == {"203.0.113.1"}


def test_ping_cut_before_its_summary() -> None:
    p = parse("PING6", HAND_PING6_CUT, "", "-9")
    assert p is not None
    assert (p["destination"], p["destination_name"]) == ("2001:db8:100::10", "web.lab.test")
    assert p["complete"] is False
    # Worked out from what was printed: seqs 1-3 sent, 2 and 3 answered, 3 twice.
    assert (p["transmitted"], p["received"], p["duplicates"], p["errors"]) == (3, 2, 1, 1)
    assert p["loss"] == pytest.approx(100 / 3)
    assert p["unreachable"][0] == {
        "seq": 1,
        "from": "2001:db8:113::1",
        "message": "Destination unreachable: Address unreachable",
    }
    assert p["rtt"] == {"min": 0.3, "avg": 0.5, "max": 0.7, "mdev": 0.163}


# --------------------------------------------------------------------------- traceroute


def test_real_traceroute_numeric_and_named() -> None:
    numeric = parse("traceroute", REAL_TRACE_NUMERIC)
    assert numeric is not None
    assert numeric == {
        "type": "traceroute",
        "destination": "127.0.0.1",
        "destination_name": None,
        "max_hops": 30,
        "hops": [
            {
                "ttl": 1,
                "probes": [
                    {"address": "127.0.0.1", "name": None, "rtt": rtt, "annotation": None}
                    for rtt in (0.012, 0.005, 0.004)
                ],
            }
        ],
        "reached": True,
    }
    named = parse_traceroute(REAL_TRACE)
    assert [p["name"] for p in named["hops"][0]["probes"]] == ["localhost"] * 3
    assert named["reached"] is True
    limited = parse_traceroute(REAL_TRACE_LIMITED)
    assert limited["max_hops"] == 3 and len(limited["hops"]) == 1
    icmp = parse_traceroute(REAL_TRACE_ICMP)
    assert icmp["hops"][0]["probes"] == [
        {"address": "127.0.0.1", "name": None, "rtt": 0.01, "annotation": None}
    ]


def test_real_traceroute6() -> None:
    for text in (REAL_TRACE6, REAL_TRACE6_UNNAMED):
        t = parse("traceroute6", text)
        assert t is not None and t["type"] == "traceroute"
        assert t["destination"] == "::1" and t["reached"] is True
        # "::1 (::1)": the address printed in place of a missing name is not a name.
        assert {(p["address"], p["name"]) for p in t["hops"][0]["probes"]} == {("::1", None)}


def test_real_traceroute_that_could_not_send() -> None:
    t = parse("traceroute", REAL_TRACE_DOWN, REAL_TRACE_DOWN_STDERR, "1")
    assert t is not None
    assert (t["destination"], t["max_hops"], t["hops"], t["reached"]) == (
        "127.0.0.1",
        2,
        [],
        False,
    )


def test_real_lab_traceroute() -> None:
    t = parse_traceroute(REAL_LAB_TRACE)
    assert (t["destination"], t["destination_name"], t["max_hops"]) == (
        "198.51.100.10",
        "web.lab.test",
        5,
    )
    assert [[p["address"] for p in h["probes"]] for h in t["hops"]] == [
        ["203.0.113.1"],
        ["198.51.100.10"],
    ]
    assert t["reached"] is True


def test_traceroute_names_with_addresses() -> None:
    t = parse_traceroute(HAND_TRACE_NAMED)
    assert t["hops"][0]["probes"][0] == {
        "address": "203.0.113.1",
        "name": "gw.lab.test",
        "rtt": 0.512,
        "annotation": None,
    }
    assert [p["rtt"] for p in t["hops"][1]["probes"]] == [0.733, 0.69, 0.702]
    assert t["reached"] is True


def test_traceroute_stars() -> None:
    t = parse_traceroute(HAND_TRACE_STARS)
    assert [h["ttl"] for h in t["hops"]] == [1, 2, 3, 4]
    assert all(h["probes"] == [{"timeout": True}] * 3 for h in t["hops"][1:])
    assert t["reached"] is False


def test_traceroute_several_addresses_and_host_unreachable() -> None:
    t = parse_traceroute(HAND_TRACE_HOST_UNREACHABLE)
    first, second = t["hops"]
    assert first["probes"] == [
        {"address": "203.0.113.1", "name": None, "rtt": 0.5, "annotation": None},
        {"address": "203.0.113.2", "name": None, "rtt": 0.6, "annotation": None},
        {"timeout": True},
    ]
    assert [p["annotation"] for p in second["probes"]] == ["!H"] * 3
    assert [p["rtt"] for p in second["probes"]] == [3004.12, 3004.201, 3004.188]
    assert t["reached"] is False


def test_traceroute_net_unreachable_and_prohibited() -> None:
    net = parse_traceroute(HAND_TRACE_NET_UNREACHABLE)
    assert [p.get("annotation") for p in net["hops"][0]["probes"]] == ["!N", "!N", None]
    assert net["hops"][0]["probes"][2] == {"timeout": True}
    prohibited = parse_traceroute(HAND_TRACE_PROHIBITED)
    assert [p["annotation"] for p in prohibited["hops"][1]["probes"]] == ["!X"] * 3
    assert prohibited["reached"] is True


def test_traceroute_first_hop_and_other_annotations() -> None:
    t = parse_traceroute(HAND_TRACE_FIRST_HOP)
    assert [h["ttl"] for h in t["hops"]] == [9, 10, 11]
    assert t["hops"][0]["probes"][0] == {"timeout": True}
    assert t["hops"][0]["probes"][1]["address"] == "203.0.113.9"
    assert [(p.get("address"), p.get("annotation")) for p in t["hops"][1]["probes"]] == [
        ("203.0.113.10", "!F-1400"),
        ("203.0.113.11", "!<10>"),
        (None, None),
    ]
    assert t["reached"] is True


def test_traceroute6_by_hand_and_cut_output() -> None:
    t = parse("TRACEROUTE6", HAND_TRACE6)
    assert t is not None and t["reached"] is True and len(t["hops"]) == 2
    cut = parse_traceroute(HAND_TRACE_CUT, "", "-9")
    # The probe cut in the middle of its RTT is not counted.
    assert [len(h["probes"]) for h in cut["hops"]] == [3, 1]
    assert cut["reached"] is True


# --------------------------------------------------------------------------- arping


def test_real_lab_arping() -> None:
    a = parse("arping", REAL_LAB_ARPING)
    assert a is not None
    assert {k: a[k] for k in ("destination", "source", "interface", "sent", "received")} == {
        "destination": "203.0.113.1",
        "source": "203.0.113.30",
        "interface": "eth2",
        "sent": 2,
        "received": 2,
    }
    assert a["replies"] == [
        {"address": "203.0.113.1", "mac": "02:C0:C1:16:F1:77", "time": 0.55, "kind": "Unicast"},
        {"address": "203.0.113.1", "mac": "02:C0:C1:16:F1:77", "time": 0.545, "kind": "Unicast"},
    ]
    assert a["macs"] == ["02:C0:C1:16:F1:77"]
    assert (a["duplicate"], a["dad"], a["complete"]) == (False, False, True)


def test_arping_flags_two_macs_for_one_address() -> None:
    a = parse_arping(HAND_ARPING_TWO_MACS)
    assert a["macs"] == ["02:C0:C1:16:F1:77", "02:AA:BB:CC:DD:EE"]
    assert a["duplicate"] is True and a["received"] == 3


def test_arping_without_answer() -> None:
    a = parse_arping(HAND_ARPING_NONE, "", "1")
    assert (a["sent"], a["received"], a["replies"], a["macs"]) == (4, 0, [], [])
    assert a["duplicate"] is False


def test_arping_duplicate_address_detection() -> None:
    free = parse_arping(HAND_ARPING_DAD_FREE, "", "0")
    assert (free["dad"], free["duplicate"], free["received"]) == (True, False, 0)
    taken = parse_arping(HAND_ARPING_DAD_TAKEN, "", "1")
    assert (taken["dad"], taken["duplicate"]) == (True, True)
    assert taken["macs"] == ["02:C0:C1:16:F1:77"]
    # Cut after the header: -D's exit code 1 still says somebody answered.
    cut = parse_arping("ARPING 203.0.113.1 from 0.0.0.0 eth2\n", "", "1")
    assert (cut["dad"], cut["duplicate"], cut["complete"]) == (True, True, False)


def test_arping_optional_parts() -> None:
    a = parse_arping(HAND_ARPING_ODD)
    assert [(r["kind"], r["mac"], r["time"]) for r in a["replies"]] == [
        ("Broadcast", "02:C0:C1:16:F1:77", 0.7),
        ("Unicast", "02:C0:C1:16:F1:77", 0.812),
        ("Unicast", "02:C0:C1:16:F1:77", None),
    ]
    # Lower-case and upper-case spellings are the same MAC: no duplicate.
    assert a["macs"] == ["02:C0:C1:16:F1:77"] and a["duplicate"] is False
    assert a["received"] == 3


# --------------------------------------------------------------------------- dispatch


def test_every_diagnostic_type_has_a_parser() -> None:
    assert set(registry.TYPES) <= set(parsers.PARSERS)
    assert parsers.PARSERS["ping6"] is parse_ping
    assert parsers.PARSERS["traceroute6"] is parse_traceroute


def test_unknown_types_have_no_summary() -> None:
    assert parse("nmap", REAL_PING) is None
    assert parse("", REAL_PING) is None
    assert parse(None, REAL_PING) is None  # type: ignore[arg-type]


def test_odd_arguments_do_not_raise() -> None:
    assert parse("ping", None) is not None  # type: ignore[arg-type]
    from_bytes = parse("ping", REAL_PING.encode(), b"", 0)  # type: ignore[arg-type]
    assert from_bytes is not None and from_bytes["received"] == 3
    for code in ("", "x", " 1 ", "99999999999999999999", "-1"):
        assert parse("arping", HAND_ARPING_DAD_FREE, "", code) is not None


@pytest.mark.parametrize("text", ALL_SAMPLES)
def test_samples_are_json_ready_for_every_type(text: str) -> None:
    for kind in parsers.PARSERS:
        result = parse(kind, text)
        assert result is not None
        assert_json_ready(result)


# --------------------------------------------------------------------------- markup


def test_markup_stays_inert_text() -> None:
    script = "<script>alert(1)</script>"
    img = "<img src=x onerror=alert(1)>"
    trace = parse(
        "traceroute",
        f"traceroute to {script} (198.51.100.10), 5 hops max, 60 byte packets\n"
        f" 1  {script} (203.0.113.1)  0.5 ms  0.4 ms\n"
        " 2  198.51.100.10  0.7 ms\n",
    )
    assert trace is not None
    assert trace["destination_name"] == script
    assert [p["name"] for p in trace["hops"][0]["probes"]] == [script, script]
    assert trace["reached"] is True

    ping = parse(
        "ping",
        f"PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data.\n"
        f"From 203.0.113.1 icmp_seq=1 {img}\n"
        f"64 bytes from {script}: icmp_seq=2 ttl=63 time=0.5 ms\n",
    )
    assert ping is not None
    assert ping["unreachable"][0]["message"] == img
    assert ping["replies"][0]["from"] == script

    arping = parse("arping", f"ARPING 203.0.113.1 from 203.0.113.30 {script}\n")
    assert arping is not None and arping["interface"] == script

    # Kept whole, as plain strings, nothing else made of them.
    for result in (trace, ping, arping):
        assert_json_ready(result)
        for value in strings_in(result):
            assert ("<" not in value) or value in (script, img)


# --------------------------------------------------------------------------- bounds


def test_huge_output_is_cut_at_max_lines() -> None:
    reply = "64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.030 ms\n"
    started = time.monotonic()
    p = parse("ping", reply * (parsers.MAX_LINES * 5))
    assert p is not None and len(p["replies"]) == parsers.MAX_LINES
    # Each over-long line is cut (MAX_LINE_CHARS), the whole text too (MAX_CHARS).
    hop = " 1  " + "203.0.113.1  0.5 ms  " * 5000 + "\n"
    t = parse("traceroute", hop * 10)
    assert t is not None and len(t["hops"]) == 10
    assert all(0 < len(h["probes"]) < parsers.MAX_LINE_CHARS // 10 for h in t["hops"])
    many = parse("traceroute", hop * 1000)
    assert many is not None and len(many["hops"]) < 1000
    one_line = parse("arping", "x" * 20_000_000)
    assert one_line is not None and one_line["replies"] == []
    assert time.monotonic() - started < 30


# --------------------------------------------------------------------------- properties

TYPE_NAMES = [*sorted(parsers.PARSERS), "PING", "Traceroute6", "nmap"]
DIRECT_PARSERS = [parse_ping, parse_traceroute, parse_arping]
# Pieces of real output, so that random text often gets deep into the patterns.
WORDS = sorted(
    {word for text in ALL_SAMPLES for word in text.replace("\n", " ").split(" ") if word}
    | {"*", "!H", "ms", "(DUP!)", "\n", " ", "  ", "(", ")", "[", "]", ":", "9" * 40, "1e999"}
)
tool_like = st.lists(st.sampled_from(WORDS), max_size=80).map(" ".join)


@st.composite
def mutated_sample(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(ALL_SAMPLES))
    cut = draw(st.integers(0, len(text)))
    insert = draw(st.text(max_size=30))
    keep = draw(st.integers(0, len(text)))
    return text[:cut] + insert + text[min(cut + keep, len(text)) :]


@settings(deadline=None, max_examples=300)
@given(kind=st.sampled_from(TYPE_NAMES), text=st.text(max_size=2000))
def test_any_text_gives_json_or_none(kind: str, text: str) -> None:
    result = parse(kind, text)
    if kind.lower() == "nmap":
        assert result is None
    else:
        # Each summary names its parser (ping6 is summarised as ping).
        assert result is not None and result["type"] == registry.get_type(kind).parser_name
        assert_json_ready(result)


@settings(deadline=None, max_examples=300)
@given(
    index=st.integers(0, len(DIRECT_PARSERS) - 1),
    text=st.one_of(tool_like, mutated_sample(), st.text(max_size=500)),
    stderr=st.text(max_size=50),
    exitcode=st.text(max_size=5),
)
def test_parsers_themselves_never_raise(index: int, text: str, stderr: str, exitcode: str) -> None:
    # Called directly, without parse()'s backstop: a parser bug would show up here.
    result = DIRECT_PARSERS[index](text, stderr, exitcode)
    assert_json_ready(result)
    if result["type"] == "ping":
        assert min(result["transmitted"], result["received"], result["errors"]) >= 0
        assert result["loss"] is None or isinstance(result["loss"], float)
    if result["type"] == "traceroute":
        assert all(isinstance(h["ttl"], int) and h["probes"] for h in result["hops"])
    if result["type"] == "arping":
        assert isinstance(result["duplicate"], bool)
