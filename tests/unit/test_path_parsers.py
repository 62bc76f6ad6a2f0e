"""The tracepath and mtr parsers, and ping6/traceroute6 summaries, on output captured from
the lab (tests/unit/tool_output/: the router r-1-VM of a lab, Debian 12's iputils-tracepath
20221126, mtr-tiny 0.95, iputils-ping, traceroute 2.1.2) and on cases it cannot produce."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudiag import parsers
from cloudiag.parsers.mtr import parse_mtr
from cloudiag.parsers.tracepath import parse_tracepath

OUTPUT = Path(__file__).parent / "tool_output"


def real(name: str) -> str:
    return (OUTPUT / name).read_text()


def strict_json(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary survives JSON without NaN or infinities, unchanged."""
    loaded: dict[str, Any] = json.loads(json.dumps(summary, allow_nan=False))
    assert loaded == summary
    return summary


GW = {"from": "203.0.113.1", "name": None}
WEB = {"from": "198.51.100.10", "name": None}
GW_NAMED = {"from": "203.0.113.1", "name": "gw.lab.test"}
WEB_NAMED = {"from": "198.51.100.10", "name": "web.lab.test"}

# ---------------------------------------------------------------------------- tracepath


def test_tracepath_ipv4_hops_replies_and_path_mtu() -> None:
    # tracepath -n -m 20 -- 198.51.100.10: the inet segment's MTU is 1400, so the
    # upstream router answers hop 2's first probe with "fragmentation needed".
    assert strict_json(parse_tracepath(real("tracepath_ipv4.txt"))) == {
        "type": "tracepath",
        "af": 4,
        "dst_addr": "198.51.100.10",
        "dst_name": None,
        "pmtu": 1400,
        "forward_hops": 2,
        "return_hops": 2,
        "reached": True,
        "result": [
            {"hop": 1, "pmtu": 1500, "result": [{**GW, "rtt": 0.067}, {**GW, "rtt": 0.005}]},
            {
                "hop": 2,
                "pmtu": 1400,
                "result": [{**GW, "rtt": 0.006, "mtu": 1400}, {**WEB, "rtt": 0.022}],
            },
        ],
    }


def test_tracepath_ipv6_with_names_first() -> None:
    # tracepath -b -m 20 -- 2001:db8:0:100::10: "name (address)".
    summary = parse_tracepath(real("tracepath_ipv6_names.txt"))
    assert (summary["af"], summary["dst_addr"], summary["dst_name"]) == (
        6,
        "2001:db8:0:100::10",
        "web.lab.test",
    )
    assert summary["reached"] and summary["pmtu"] == 1400
    assert [(h["hop"], h["pmtu"]) for h in summary["result"]] == [(1, 1500), (2, 1400)]
    first = summary["result"][0]["result"][0]
    assert first == {"from": "2001:db8:0:113::1", "name": "gw.lab.test", "rtt": 0.051}


def test_tracepath_unreachable_keeps_the_icmp_error() -> None:
    summary = parse_tracepath(real("tracepath_unreachable.txt"))
    assert not summary["reached"] and summary["dst_addr"] is None
    assert (summary["pmtu"], summary["forward_hops"], summary["return_hops"]) == (1400, None, None)
    assert summary["result"][1]["result"] == [
        {**GW, "rtt": 0.008, "mtu": 1400},
        {"x": "*"},
        {**GW, "rtt": 3074.956, "err": "H"},
    ]


def test_tracepath_a_silent_hop_is_a_star() -> None:
    # tracepath -m 5 -b: the upstream router's ICMP time-exceeded dropped by nftables
    # inside the lab (its "fragmentation needed" still goes out).
    summary = parse_tracepath(real("tracepath_silent_hop.txt"))
    assert summary["result"][0] == {"hop": 1, "pmtu": 1500, "result": [{"x": "*"}]}
    assert summary["reached"] and summary["result"][1]["result"] == [
        {**GW_NAMED, "rtt": 0.105, "mtu": 1400},
        {**WEB_NAMED, "rtt": 0.027},
    ]
    assert (summary["dst_addr"], summary["dst_name"]) == ("198.51.100.10", "web.lab.test")


def test_tracepath_cut_short_keeps_its_hops_where_jc_keeps_none() -> None:
    # A run stopped by its time limit has no "Resume:" line. jc's tracepath parser then
    # returns nothing at all (and it never says "!H"): the reason this parser is ours.
    cut = "".join(real("tracepath_unreachable.txt").splitlines(keepends=True)[:5])
    assert jc.parse("tracepath", cut, quiet=True) == {}
    assert "'H'" not in repr(jc.parse("tracepath", real("tracepath_unreachable.txt"), quiet=True))
    summary = parse_tracepath(cut)
    assert [h["hop"] for h in summary["result"]] == [1, 2]
    assert summary["result"][1]["result"][-1] == {"x": "*"}
    assert summary["pmtu"] == 1400 and not summary["reached"]


@pytest.mark.parametrize(
    "text", ["", "\n\n", "tracepath: 198.51.100.10: Name or service not known"]
)
def test_tracepath_nothing_to_read(text: str) -> None:
    summary = parse_tracepath(text, text, "2")
    assert summary["result"] == [] and summary["pmtu"] is None and not summary["reached"]


def test_tracepath_hand_made_lines() -> None:
    # From tracepath.c's printf formats: a two-digit TTL, asymmetry, a network error.
    text = (
        " 1?: [LOCALHOST]                        0.019ms pmtu 1500\n"
        " 9:  192.0.2.1 (r.lab.test)                             1.500ms asymm 10\n"
        "10:  192.0.2.2                                           2.000ms !N\n"
        "11:  <script> (x)                                         1.0ms\n"
    )
    hops = parse_tracepath(text)["result"]
    assert hops[0]["result"] == [
        {"from": "192.0.2.1", "name": "r.lab.test", "rtt": 1.5, "asymm": 10}
    ]
    assert hops[1]["result"] == [{"from": "192.0.2.2", "name": None, "rtt": 2.0, "err": "N"}]
    # Text that is no address is a name, kept as text (the UI escapes it), never an address.
    assert hops[2]["result"][0]["from"] is None


# ---------------------------------------------------------------------------------- mtr


def stats(loss: float | None, sent: int, *times: float | None) -> dict[str, Any]:
    keys = ("loss", "sent", "last", "avg", "best", "worst", "stdev")
    return dict(zip(keys, (loss, sent, *times), strict=True))


def test_mtr_ipv4_report() -> None:
    # mtr --report --json --show-ips -n -c 5 -i 0.2 -- 198.51.100.10
    assert strict_json(parse_mtr(real("mtr_ipv4.json"))) == {
        "type": "mtr",
        "af": 4,
        "dst_addr": "198.51.100.10",
        "dst_name": None,
        "cycles": 5,
        "size": 64,
        "reached": True,
        "result": [
            {
                "hop": 1,
                "result": [{"from": "203.0.113.1", "name": None}],
                **stats(0.0, 5, 0.068, 0.077, 0.068, 0.086, 0.006),
            },
            {
                "hop": 2,
                "result": [{"from": "198.51.100.10", "name": None}],
                **stats(0.0, 5, 0.075, 0.083, 0.075, 0.1, 0.009),
            },
        ],
    }


def test_mtr_ipv6_with_names() -> None:
    summary = parse_mtr(real("mtr_ipv6_names.json"))
    assert (summary["af"], summary["dst_addr"], summary["reached"]) == (
        6,
        "2001:db8:0:100::10",
        True,
    )
    assert [h["result"] for h in summary["result"]] == [
        [{"from": "2001:db8:0:113::1", "name": "gw.lab.test"}],
        [{"from": "2001:db8:0:100::10", "name": "web.lab.test"}],
    ]


def test_mtr_a_silent_hop_has_full_loss_and_no_times() -> None:
    summary = parse_mtr(real("mtr_silent_hop.json"))
    assert summary["result"][0] == {
        "hop": 1,
        "result": [{"x": "*"}],
        **stats(100.0, 3, *[None] * 5),
    }
    assert summary["reached"]


def test_mtr_unreachable_is_not_reached() -> None:
    for name in ("mtr_unreachable.json", "mtr_unreachable6_silent.json"):
        summary = parse_mtr(real(name))
        assert not summary["reached"], name
        # The last hop that answered is the gateway, with its "host unreachable" delays.
        assert summary["result"][-1]["result"][0]["from"] in ("203.0.113.1", "2001:db8:0:113::1")
        assert summary["result"][-1]["avg"] > 1000


@pytest.mark.parametrize(
    "text",
    [
        "",
        "mtr: Failure to start mtr-packet: Invalid argument",
        real("mtr_ipv4.json")[:200],  # cut short
        "[]",
        '{"report": []}',
        '{"report": {"mtr": 1, "hubs": {"a": 1}}}',
    ],
)
def test_mtr_no_report_gives_no_hops(text: str) -> None:
    summary = parse_mtr(text, "", "1")
    assert summary["result"] == [] and not summary["reached"]


def test_mtr_odd_values_are_dropped_not_trusted() -> None:
    text = json.dumps(
        {
            "report": {
                "mtr": {"dst": "198.51.100.10", "tests": "x", "psize": "-5"},
                "hubs": [
                    {"count": 1, "host": "203.0.113.1", "Loss%": "0", "Avg": True, "Snt": 2},
                    {"count": "2", "host": "198.51.100.10"},
                    {"count": 3, "host": ["x"]},
                ],
            }
        }
    ).replace('"0"', "NaN")
    summary = strict_json(parse_mtr(text))
    assert (summary["cycles"], summary["size"]) == (None, None)
    assert summary["result"] == [
        {"hop": 1, "result": [{"from": "203.0.113.1", "name": None}], **stats(None, 2, *[None] * 5)}
    ]


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=1500))
def test_never_raises_and_stays_json(text: str) -> None:
    for parse in (parse_tracepath, parse_mtr):
        strict_json(parse(text, text, "0"))


def test_offered_by_type_name() -> None:
    assert parsers.PARSERS["tracepath"] is parse_tracepath
    assert parsers.PARSERS["mtr"] is parse_mtr
    parsed = parsers.parse("MTR", real("mtr_ipv4.json"))
    assert parsed is not None and parsed["type"] == "mtr"


# ------------------------------------------------------------------- ping6, traceroute6


def test_ping6_summary_of_real_ipv6_output() -> None:
    summary = parsers.parse("ping6", real("ping6_web6.txt"))
    assert summary is not None
    text = json.dumps(summary)
    assert "2001:db8:0:100::10" in text
    assert summary["type"] == "ping"
    # Three replies with their times, whatever the fields are called.
    for value in ("0.058", "0.097", "0.082"):
        assert value in text
    lost = parsers.parse("ping6", real("ping6_unreachable6.txt"))
    assert lost is not None and "100.0" in json.dumps(lost)


def test_traceroute6_summary_of_real_ipv6_output() -> None:
    summary = parsers.parse("traceroute6", real("traceroute6_web6.txt"))
    assert summary is not None and summary["reached"] is True
    text = json.dumps(summary)
    for address in ("2001:db8:0:113::1", "2001:db8:0:100::10"):
        assert address in text
    lost = parsers.parse("traceroute6", real("traceroute6_unreachable6.txt"))
    assert lost is not None and lost["reached"] is False
