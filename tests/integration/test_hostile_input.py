"""A corpus of hostile runDiagnostics inputs: each is refused with 431 and a clear text, and
leaves nothing behind: no job, no event, and no process started by the agent."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.stack import Stack

WEB = "198.51.100.10"
META = [*";|&$`()<>\\\"'*?[]{}~!#%^=,+@", " ", "\t", "\n", "\r", "\x00", "\x1b", "\x7f"]


def _address_cases() -> list[str]:
    cases = [f"{WEB}{m}id" for m in META] + [f"{m}{WEB}" for m in META if m.strip()]
    cases += [
        "-c",
        "--help",
        "-oProxyCommand=id",
        "-1.2.3.4",
        "-web.lab.test",
        "--",
        "-",
        "http://198.51.100.10/",
        "file:///etc/passwd",
        "../../etc/passwd",
        "/etc/passwd",
        "198.51.100.10/24",
        "root@198.51.100.10",
        "198.51.100.10:80",
        "a" * 254,
        ("a" * 64) + ".lab.test",
        "web..lab.test",
        ".web.lab.test",
        "web-.lab.test",
        "-web.lab.test",
        "web.lab.test-",
        "\uff11\uff19\uff18.51.100.10",
        "web.lab.t\u0435st",
        "web\u200b.lab.test",
        "0x7f000001",
        "127.1",
        "017.0.0.1",
        "2130706433",
        "fe80::1%eth0",
        "[::1]",
        "::ffff:198.51.100.10]",
        "$(reboot)",
        "`reboot`",
        "web.lab.test;reboot",
        "web.lab.test && reboot",
        "web.lab.test|nc",
        "${IFS}id",
        "%0aid",
        "%00",
        "198.51.100.10%0a",
        "1.2.3.4.5",
        "256.1.1.1",
        "198.51.100",
        "::::",
        "1:2:3:4:5:6:7:8:9",
        "web.lab.123",
        " ",
    ]
    return cases


def _params_cases() -> list[str]:
    cases = [f"-c 1{m}id" for m in META if m not in " \t"] + [
        f"-c 1 {m}" for m in META if m.strip()
    ]
    cases += [
        "-f",
        "-a",
        "-b",
        "-B",
        "-D",
        "-l 3",
        "-p ff",
        "-R",
        "-r",
        "-U",
        "-x",
        "--flood",
        "-c 0",
        "-c 101",
        "-c -1",
        "-c 1.5",
        "-c",
        "-c 99999999999",
        "-i 0.1",
        "-i 0",
        "-s 65508",
        "-s -1",
        "-t 0",
        "-t 256",
        "-W 0",
        "-w 0",
        "-I eth0;id",
        "-I $(id)",
        "-I ../x",
        "-I -c",
        "-I " + "e" * 16,
        "-c 1 -c 2",
        "-c1",
        WEB,
        "-- -c 1",
        "-c\n1",
        "-c\t1",
        "-c 1\x00",
        "-4 -6",
        "-c 100 -i 60",
        "-w 601",
        "-c 1 198.51.100.11",
        "-c 1 -- 198.51.100.11",
        "-c \u0661",
        "-c \u00b9",
        "-c 1e2",
        "-c 0x10",
    ]
    return cases


CASES: list[tuple[str, dict[str, str], str]] = (
    [(f"address-{i}", {"ipaddress": a}, "ddress") for i, a in enumerate(_address_cases())]
    + [(f"params-{i}", {"params": p}, "") for i, p in enumerate(_params_cases())]
    + [
        (f"type-{i}", {"type": t}, "type")
        for i, t in enumerate(["nmap", "bash", "PING;id", "../ping", "ping\n", "ping6x", "sh -c"])
    ]
    + [
        ("traceroute-bad-m", {"type": "traceroute", "params": "-m 65"}, "-m"),
        ("traceroute-bad-q", {"type": "traceroute", "params": "-q 11"}, "-q"),
        ("traceroute-two-methods", {"type": "traceroute", "params": "-I -T"}, ""),
        ("traceroute-f-over-m", {"type": "traceroute", "params": "-f 10 -m 5"}, ""),
        ("traceroute-too-long", {"type": "traceroute", "params": "-m 64 -q 10 -w 60"}, ""),
        ("arping-ipv6", {"type": "arping", "ipaddress": "2001:db8::1"}, ""),
        ("arping-bad-s", {"type": "arping", "params": "-s 198.51.100.10;id"}, ""),
        ("arping-two-modes", {"type": "arping", "params": "-D -U"}, ""),
        ("traceroute-tcp-port-0", {"type": "traceroute", "params": "-T -p 0"}, "-p"),
        ("traceroute-tcp-port-big", {"type": "traceroute", "params": "-T -p 65536"}, "-p"),
        ("traceroute-tcp-port-range", {"type": "traceroute", "params": "-T -p 80-81"}, "-p"),
        ("traceroute6-ipv4", {"type": "traceroute6", "ipaddress": WEB, "params": "-T"}, ""),
        ("ping6-ipv4", {"type": "ping6", "ipaddress": WEB}, ""),
        ("tracepath-bad-m", {"type": "tracepath", "params": "-m 65"}, "-m"),
        ("tracepath-short-l", {"type": "tracepath", "params": "-l 28"}, "-l"),
        ("tracepath-both", {"type": "tracepath", "params": "-b"}, "-b"),
        ("tracepath-version", {"type": "tracepath", "params": "-V"}, "-V"),
        ("tracepath-family", {"type": "tracepath", "params": "-6"}, "-6"),
        ("tracepath-address", {"type": "tracepath", "ipaddress": "-n"}, "ddress"),
        ("mtr-bad-c", {"type": "mtr", "params": "-c 101"}, "-c"),
        ("mtr-fast-i", {"type": "mtr", "params": "-i 0.01"}, "-i"),
        ("mtr-port-alone", {"type": "mtr", "params": "-P 80"}, "-P"),
        ("mtr-two-protocols", {"type": "mtr", "params": "-T -u"}, ""),
        ("mtr-as-lookup", {"type": "mtr", "params": "-z"}, "-z"),
        ("mtr-long-option", {"type": "mtr", "params": "--report-wide"}, "--report-wide"),
        ("mtr-curses", {"type": "mtr", "params": "-t"}, "-t"),
        ("mtr-too-long", {"type": "mtr", "params": "-c 100 -i 60"}, ""),
        ("mtr-interface", {"type": "mtr", "params": "-I $(id)"}, ""),
        ("mtr-address", {"type": "mtr", "ipaddress": "web.lab.test;id"}, "ddress"),
        ("targetid-sql", {"targetid": "' OR 1=1 --"}, "uuid"),
        ("targetid-unknown", {"targetid": str(uuid.UUID(int=7))}, "Unable to find"),
    ]
)


def _rows(stack: Stack) -> tuple[int, int]:
    jobs = stack.ok("listAsyncJobs", listall="true").get("count", 0)
    events = stack.ok("listEvents", listall="true").get("count", 0)
    return jobs, events


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 200
    assert len({c[0] for c in CASES}) == len(CASES)


def test_every_hostile_input_is_refused_and_leaves_nothing(stack: Stack) -> None:
    spawned_before = stack.agent_status().spawned
    rows_before = _rows(stack)
    failures = []
    for name, override, fragment in CASES:
        params = {"targetid": stack.vm("router")["uuid"], "type": "ping", "ipaddress": WEB}
        params.update(override)
        r = stack.call("runDiagnostics", **params)
        if r.status_code != 431:
            failures.append(f"{name} {override!r}: HTTP {r.status_code} {r.text[:200]}")
            continue
        text = r.json()["rundiagnosticsresponse"]["errortext"]
        if len(text) < 15 or fragment.lower() not in text.lower():
            failures.append(f"{name} {override!r}: unclear errortext {text!r}")
    assert not failures, "\n".join(failures)
    assert _rows(stack) == rows_before, "a refused request created a job or an event"
    assert stack.agent_status().spawned == spawned_before, "the agent started a process"


@pytest.mark.parametrize("role", ["secondarystoragevm", "consoleproxy"])
def test_the_agent_spawns_for_a_good_request(stack: Stack, role: str) -> None:
    # The counter the corpus test relies on really counts. The first run in a VM may also
    # start its warm session; after that, a diagnostic starts one process: its tool.
    stack.run(role, "ping", WEB, "-c 1")
    before = stack.agent_status().spawned
    stack.run(role, "ping", WEB, "-c 1")
    assert stack.agent_status().spawned == before + 1
