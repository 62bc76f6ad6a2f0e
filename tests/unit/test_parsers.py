"""Parsers of ping, traceroute and arping output, on output captured from the lab."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from cloudiag import parsers

PING_OK = """PING 198.51.100.10 (198.51.100.10) 56(84) bytes of data.
64 bytes from 198.51.100.10: icmp_seq=1 ttl=63 time=0.104 ms
64 bytes from 198.51.100.10: icmp_seq=2 ttl=63 time=0.078 ms
64 bytes from 198.51.100.10: icmp_seq=3 ttl=63 time=0.086 ms

--- 198.51.100.10 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 643ms
rtt min/avg/max/mdev = 0.078/0.089/0.104/0.010 ms
"""
PING_LOST = """PING 198.51.100.99 (198.51.100.99) 56(84) bytes of data.

--- 198.51.100.99 ping statistics ---
2 packets transmitted, 0 received, 100% packet loss, time 314ms
"""
PING_UNREACHABLE = """PING 198.51.100.99 (198.51.100.99) 56(84) bytes of data.
From 203.0.113.1 icmp_seq=1 Destination Host Unreachable
64 bytes from 198.51.100.99: icmp_seq=2 ttl=63 time=0.2 ms
64 bytes from 198.51.100.99: icmp_seq=2 ttl=63 time=0.3 ms (DUP!)

--- 198.51.100.99 ping statistics ---
2 packets transmitted, 1 received, +1 duplicates, +1 errors, 50% packet loss, time 1001ms
rtt min/avg/max/mdev = 0.200/0.250/0.300/0.050 ms
"""
PING_NAMED = """PING web.lab.test (198.51.100.10) 56(84) bytes of data.
64 bytes from web.lab.test (198.51.100.10): icmp_seq=1 ttl=63 time=0.288 ms
"""
TRACE_NAMED = """traceroute to web.lab.test (198.51.100.10), 4 hops max, 60 byte packets
 1  gw.lab.test (203.0.113.1)  0.019 ms  0.009 ms
 2  web.lab.test (198.51.100.10)  0.016 ms  0.012 ms
"""
TRACE_STARS = """traceroute to 198.51.100.99 (198.51.100.99), 3 hops max, 60 byte packets
 1  203.0.113.1  0.019 ms  0.010 ms  0.009 ms
 2  * * *
 3  * * *
"""
TRACE_MIXED = """traceroute to 198.51.100.10 (198.51.100.10), 30 hops max, 60 byte packets
 1  203.0.113.1  0.5 ms 203.0.113.2  0.6 ms *
 2  198.51.100.10  1.1 ms !H  *  1.3 ms
"""
ARPING = """ARPING 203.0.113.1 from 203.0.113.30 eth2
Unicast reply from 203.0.113.1 [02:29:34:6F:82:C3]  0.580ms
Unicast reply from 203.0.113.1 [02:29:34:6F:82:C3]  0.553ms
Sent 2 probes (1 broadcast(s))
Received 2 response(s)
"""
ARPING_DUP = """ARPING 203.0.113.1 from 203.0.113.30 eth2
Unicast reply from 203.0.113.1 [02:29:34:6F:82:C3]  0.580ms
Unicast reply from 203.0.113.1 [02:AA:BB:CC:DD:EE]  0.601ms
Sent 1 probes (1 broadcast(s))
Received 2 response(s)
"""


def test_ping_summary_and_replies() -> None:
    p = parsers.parse("ping", PING_OK)
    assert p is not None
    assert (p["transmitted"], p["received"], p["loss"]) == (3, 3, 0.0)
    assert p["rtt"] == {"min": 0.078, "avg": 0.089, "max": 0.104, "mdev": 0.01}
    assert [r["time"] for r in p["replies"]] == [0.104, 0.078, 0.086]
    assert p["replies"][0] == {
        "seq": 1,
        "ttl": 63,
        "time": 0.104,
        "from": "198.51.100.10",
        "dup": False,
    }


def test_ping_loss_errors_and_duplicates() -> None:
    lost = parsers.parse("ping", PING_LOST)
    assert lost is not None and lost["loss"] == 100.0 and lost["rtt"] is None
    bad = parsers.parse("ping6", PING_UNREACHABLE)
    assert bad is not None
    assert (bad["duplicates"], bad["errors"], bad["loss"]) == (1, 1, 50.0)
    assert bad["unreachable"] == [
        {"seq": 1, "from": "203.0.113.1", "message": "Destination Host Unreachable"}
    ]
    assert [r["dup"] for r in bad["replies"]] == [False, True]


def test_ping_names_keep_the_address() -> None:
    p = parsers.parse("ping", PING_NAMED)
    assert p is not None and p["destination_name"] == "web.lab.test"
    assert p["replies"][0]["from"] == "198.51.100.10"


def test_traceroute_hops() -> None:
    t = parsers.parse("traceroute", TRACE_NAMED)
    assert t is not None and t["reached"] is True and t["max_hops"] == 4
    assert [h["ttl"] for h in t["hops"]] == [1, 2]
    assert t["hops"][0]["probes"][0] == {
        "address": "203.0.113.1",
        "name": "gw.lab.test",
        "rtt": 0.019,
        "annotation": None,
    }
    stars = parsers.parse("traceroute", TRACE_STARS)
    assert stars is not None and stars["reached"] is False
    assert stars["hops"][1]["probes"] == [{"timeout": True}] * 3


def test_traceroute_several_addresses_and_annotations() -> None:
    t = parsers.parse("traceroute6", TRACE_MIXED)
    assert t is not None
    first, second = t["hops"]
    assert [p.get("address") for p in first["probes"]] == ["203.0.113.1", "203.0.113.2", None]
    assert second["probes"][0]["annotation"] == "!H"
    assert second["probes"][1] == {"timeout": True}
    assert t["reached"] is True


def test_arping_replies_and_duplicate_address() -> None:
    a = parsers.parse("arping", ARPING)
    assert a is not None
    assert (a["sent"], a["received"], a["interface"], a["source"]) == (2, 2, "eth2", "203.0.113.30")
    assert a["macs"] == ["02:29:34:6F:82:C3"] and a["duplicate"] is False
    dup = parsers.parse("arping", ARPING_DUP)
    assert dup is not None and dup["duplicate"] is True and len(dup["macs"]) == 2


def test_markup_in_output_stays_inert_text() -> None:
    hostile = (
        "traceroute to x (198.51.100.10), 5 hops max, 60 byte packets\n"
        " 1  <img/src=x/onerror=alert`1`> (203.0.113.1)  0.5 ms\n"
    )
    t = parsers.parse("traceroute", hostile)
    assert t is not None
    assert t["hops"][0]["probes"][0]["name"] == "<img/src=x/onerror=alert`1`>"


def test_unknown_type_has_no_parser() -> None:
    assert parsers.parse("nmap", "anything") is None


@settings(deadline=None, max_examples=300)
@given(kind=st.sampled_from(sorted(parsers.PARSERS)), text=st.text(max_size=400))
def test_any_text_gives_json_or_none(kind: str, text: str) -> None:
    result = parsers.parse(kind, text)
    if result is not None:
        json.dumps(result)
        assert result["type"] in ("ping", "traceroute", "arping")
