"""The parsers of the package's own checks (tcp, dns, http, route) on real output captured
from the lab (tests/unit/probe_output/, made by running each probe in the lab's virtual
router) and on output cut short, forged or garbled."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from cloudiag import parsers
from cloudiag.sysvm.probes.report import MARK

CAPTURED = Path(__file__).parent / "probe_output"


def parsed(name: str) -> dict[str, Any]:
    """The summary of a captured run, by its file stem (``<type>_<case>``)."""
    stdout = (CAPTURED / f"{name}.stdout").read_text()
    stderr = (CAPTURED / f"{name}.stderr").read_text()
    exitcode = (CAPTURED / f"{name}.exit").read_text().strip()
    summary = parsers.parse(name.split("_", 1)[0], stdout, stderr, exitcode)
    assert summary is not None
    json.dumps(summary, allow_nan=False)  # JSON-ready
    return summary


def test_tcp_open_refused_and_timed_out() -> None:
    open_ = parsed("tcp_open")
    assert (open_["state"], open_["reached"], open_["dst_port"]) == ("open", True, 80)
    assert open_["connect_time"] > 0 and open_["complete"]
    refused = parsed("tcp_refused")
    assert (refused["state"], refused["reached"]) == ("refused", False)
    assert refused["error"] == "connection refused"
    timeout = parsed("tcp_timeout")
    assert timeout["state"] == "timeout" and timeout["connect_time"] >= 1000 * timeout["timeout"]


def test_dns_answers_in_atlas_shape() -> None:
    mx = parsed("dns_mx")
    assert (mx["af"], mx["dst_addr"], mx["proto"], mx["rcode"]) == (
        4,
        "198.51.100.53",
        "UDP",
        "NOERROR",
    )
    assert mx["result"]["ANCOUNT"] == 1 and mx["result"]["rt"] > 0 and mx["result"]["size"] > 12
    (answer,) = mx["answers"]
    assert (answer["TYPE"], answer["PREF"], answer["EXCHANGE"]) == ("MX", 10, "web.lab.test.")
    soa = parsed("dns_soa")["answers"][0]
    assert (soa["MNAME"], soa["RNAME"]) == ("dns.lab.test.", "hostmaster.lab.test.")
    ptr = parsed("dns_ptr")
    assert ptr["qname"] == "10.100.51.198.in-addr.arpa." and ptr["qtype"] == "PTR"
    assert ptr["answers"][0]["RDATA"] == "web.lab.test."


def test_dns_nxdomain_truncation_and_no_answer() -> None:
    nx = parsed("dns_nxdomain")
    assert (nx["rcode"], nx["answers"], nx["reached"]) == ("NXDOMAIN", [], True)
    assert nx["result"]["authority"][0]["TYPE"] == "SOA"
    big = parsed("dns_txt_truncated")
    assert (big["proto"], big["truncated_udp"]) == ("TCP", True)
    assert big["answers"][0]["STRINGS"] == ["x" * 200] * 3
    silent = parsed("dns_no_server")
    assert (silent["result"], silent["rcode"], silent["reached"]) == (None, None, False)
    assert "no answer from 198.51.100.99" in silent["error"]


def test_http_over_tls_with_the_lab_ca() -> None:
    ok = parsed("http_https")
    assert (ok["res"], ok["method"], ok["dst_addr"]) == (200, "GET", "198.51.100.10")
    assert ok["bsize"] > 0 and ok["hsize"] > 0
    assert 0 < ok["ttc"] <= ok["ttfb"] <= ok["rt"] and ok["tls_time"] > 0 and ok["ttr"] > 0
    tls = ok["tls"]
    assert tls["verified"] and tls["subject"] == "O=cloudiag lab, CN=web.lab.test"
    assert tls["issuer"] == "O=cloudiag lab, CN=cloudiag lab CA" and tls["days_left"] > 300


@pytest.mark.parametrize(
    ("name", "why"),
    [("http_expired", "certificate has expired"), ("http_untrusted", "self-signed certificate")],
)
def test_http_tls_failures(name: str, why: str) -> None:
    failed = parsed(name)
    assert (failed["res"], failed["reached"], failed["complete"]) == (None, False, True)
    assert failed["tls"]["verified"] is False and failed["tls"]["error"] == why
    assert why in failed["err"]


def test_http_redirect_and_client_error() -> None:
    moved = parsed("http_redirect")
    assert (moved["res"], moved["redirect"], moved["location"]) == (302, True, "/")
    missing = parsed("http_404")
    assert (missing["res"], missing["method"], missing["bsize"]) == (404, "HEAD", 0)
    assert missing["err"].startswith("HTTP 404")


def test_route_to_the_web_server_and_the_guest_network() -> None:
    web = parsed("route_web")
    assert (web["dev"], web["src_addr"], web["gateway"]) == ("eth2", "203.0.113.10", "203.0.113.1")
    names = {i["name"]: i for i in web["interfaces"]}
    assert names["eth0"]["addresses"] == ["192.0.2.1/24"] and names["eth2"]["state"] == "UP"
    assert any(r.get("dst") == "default" for r in web["routes"])
    assert {r.get("table") for r in web["rules"]} >= {"local", "main"}
    guest = parsed("route_guest")
    assert (guest["dev"], guest["gateway"]) == ("eth0", None)


@pytest.mark.parametrize("type_", ["tcp", "dns", "http", "route"])
def test_output_cut_before_the_result(type_: str) -> None:
    summary = parsers.parse(type_, "some report line\n", "probe: it broke\n", "-1")
    assert summary is not None and summary["complete"] is False and summary["reached"] is False


@pytest.mark.parametrize("type_", ["tcp", "dns", "http", "route"])
@pytest.mark.parametrize(
    "line",
    [
        '{"connect_time": NaN, "rt": Infinity, "res": 200}',
        '["not", "an", "object"]',
        '{"state": 7, "res": true, "answers": "x", "route": [], "headers": {"a": 1}',
        "{" * 100_000,
    ],
)
def test_forged_or_broken_result_lines(type_: str, line: str) -> None:
    summary = parsers.parse(type_, f"report\n{MARK}{line}\n")
    assert summary is not None and summary["type"] == type_
    text = json.dumps(summary, allow_nan=False)
    assert "NaN" not in text and "Infinity" not in text


def test_the_last_result_line_counts_and_wrong_kinds_are_dropped() -> None:
    first = MARK + json.dumps({"state": "refused", "dst_port": 1})
    last = MARK + json.dumps({"state": "open", "dst_port": True, "connect_time": 1.5})
    summary = parsers.parse("tcp", f"{first}\n  {MARK}{{}}\n{last}\n")
    assert summary is not None
    assert (summary["state"], summary["dst_port"], summary["connect_time"]) == ("open", None, 1.5)
    assert math.isfinite(summary["connect_time"])
