"""The operator's forbidden destinations: literals at the API, names on the VM, where the
tool is given the address that was checked (a second lookup could answer differently)."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cloudiag.settings import Settings
from cloudiag.sysvm import cli, errors, framing, policy, validate
from tests.sysvm_zipapp import zipapp

NETS = policy.parse_networks(["169.254.0.0/16", "203.0.113.0/24", "2001:db8::/32"])


@pytest.mark.parametrize(
    "address",
    ["169.254.0.10", "203.0.113.1", "2001:db8::1", "::ffff:169.254.0.10", "::ffff:203.0.113.9"],
)
def test_literals_in_a_denied_network_are_refused(address: str) -> None:
    reason = policy.denied_destination(address, NETS)
    assert reason is not None and address in reason and "does not allow" in reason


@pytest.mark.parametrize("address", ["198.51.100.10", "192.0.2.1", "2001:db9::1"])
def test_other_literals_pass(address: str) -> None:
    assert policy.denied_destination(address, NETS) is None


def test_names_are_judged_by_what_they_resolve_to() -> None:
    loopback = policy.parse_networks(["127.0.0.0/8", "::1/128"])
    assert policy.denied_destination("localhost", loopback) is None
    with pytest.raises(errors.DiagnosticsInputError) as refused:
        policy.pin_destination(validate.validate("ping", "localhost", []), loopback)
    reason = refused.value.message
    assert reason is not None and reason.startswith("Destination localhost (")


def test_no_policy_allows_everything() -> None:
    assert policy.denied_destination("169.254.0.10", []) is None


def policy_args(networks: list[str] | None) -> list[str]:
    """The script's arguments for that deny list (None: none given, the default applies)."""
    if networks is None:
        return []
    return [arg for net in networks for arg in ("--deny", net)] or ["--no-deny"]


def _script(
    networks: list[str] | None, address: str, *extra: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            *(sys.executable, "-I", "-S", zipapp(), *policy_args(networks)),
            *("ping", address, "-c", "1", "-W", "1", *extra),
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )


def test_the_script_checks_names_after_resolving_them() -> None:
    done = _script(["127.0.0.0/8", "::1/128"], "localhost")
    assert done.returncode == 2
    assert b"which the operator does not allow" in done.stdout
    assert _script([], "localhost").returncode == 0


def test_a_malformed_policy_is_refused() -> None:
    done = _script(["not-a-network"], "127.0.0.1")
    assert done.returncode == 2 and b"not a network" in done.stdout
    assert b'"s": "refused"' in done.stdout


def test_without_a_deny_list_the_script_denies_the_default() -> None:
    done = _script(None, "127.0.0.1")
    assert done.returncode == 2
    assert b"127.0.0.1 is in 127.0.0.0/8" in done.stdout


class Resolver:
    """A DNS under the test's control: each lookup of a name gets the next answer."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: object, family: int = 0, *args: object) -> list[Any]:
        self.asked.append((host, family))
        answer = self.answers[min(len(self.asked), len(self.answers)) - 1]
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_DGRAM, 17, "", (a, 0))
            for a in answer
        ]


@pytest.fixture
def tool(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The argv of every tool the script would start (none is started)."""
    started: list[list[str]] = []

    def fake_run_tool(argv: list[str], out: Any = None, **kw: Any) -> int:
        started.append(list(argv))
        out.write(framing.encode_record("exit", code=0))
        return 0

    monkeypatch.setattr(cli, "run_tool", fake_run_tool)
    monkeypatch.setattr(cli, "choose_interface", lambda address: "eth0")
    return started


def _main(
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
    resolver: Resolver,
    policy: str,
    *args: str,
) -> tuple[int, str]:
    """Run the script's main() with that resolver and policy; (status, its err and refusal)."""
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    status = cli.main([*policy_args([policy] if policy else []), *args])
    records = [framing.decode_record(line) for line in capsysbinary.readouterr().out.splitlines()]
    return status, "".join(
        r.data for r in records if r is not None and r.stream in ("err", "refused")
    )


def test_the_tool_gets_the_address_that_was_checked(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes], tool: Any
) -> None:
    # A rebinding name: harmless at the first lookup, the management network afterwards.
    dns = Resolver(["198.51.100.10"], ["169.254.0.10"])
    status, err = _main(monkeypatch, capsysbinary, dns, "169.254.0.0/16", "ping", "x.test")
    assert status == 0
    assert tool == [["ping", "-c", "4", "--", "198.51.100.10"]]
    assert dns.asked == [("x.test", 0)]  # Resolved once, by the script, never again.
    assert "x.test is 198.51.100.10" in err


@pytest.mark.parametrize(
    ("args", "family", "answer"),
    [
        (["ping", "x.test", "-4"], socket.AF_INET, "198.51.100.10"),
        (["ping6", "x.test"], socket.AF_INET6, "2001:db9::10"),
        (["traceroute", "x.test", "-6"], socket.AF_INET6, "2001:db9::10"),
        (["arping", "x.test"], socket.AF_INET, "198.51.100.10"),
    ],
)
def test_names_resolve_in_the_tools_family(
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
    tool: Any,
    args: list[str],
    family: int,
    answer: str,
) -> None:
    dns = Resolver([answer], ["169.254.0.10"])
    status, _ = _main(monkeypatch, capsysbinary, dns, "169.254.0.0/16", *args)
    assert status == 0
    assert dns.asked == [("x.test", family)]
    assert tool[0][-2:] == ["--", answer]


@pytest.mark.parametrize(
    "answer", [["169.254.0.10"], ["198.51.100.10", "169.254.0.10"], ["::ffff:169.254.0.10"]]
)
def test_a_name_with_any_denied_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
    tool: Any,
    answer: list[str],
) -> None:
    dns = Resolver(answer, ["198.51.100.10"])
    status, err = _main(monkeypatch, capsysbinary, dns, "169.254.0.0/16", "ping", "x.test")
    assert status == 2 and tool == []
    assert "x.test (169.254.0.10) is in 169.254.0.0/16" in err


def test_an_unresolvable_name_is_refused_under_a_policy(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes], tool: Any
) -> None:
    def no_such_name(*args: object) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    assert cli.main(["--deny", "169.254.0.0/16", "ping", "x.test"]) == 2
    assert tool == []  # Not handed to a tool that might resolve it after all.
    assert b"x.test cannot be resolved (Name or service not known)" in capsysbinary.readouterr().out


def test_without_a_policy_the_tool_resolves_the_name(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes], tool: Any
) -> None:
    dns = Resolver(["169.254.0.10"])
    status, err = _main(monkeypatch, capsysbinary, dns, "", "ping", "x.test")
    assert status == 0 and err == ""
    assert dns.asked == []
    assert tool == [["ping", "-c", "4", "--", "x.test"]]


def test_the_script_pings_the_address_it_checked() -> None:
    done = _script(["10.0.0.0/8"], "localhost", "-4")
    assert done.returncode == 0, done.stdout
    assert b"PING 127.0.0.1 (127.0.0.1)" in done.stdout
    assert b"[cloudiag] localhost is 127.0.0.1" in done.stdout


def test_settings_take_and_check_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDIAG_DENIED_NETWORKS", '["169.254.0.0/16", "10.1.2.3/8"]')
    assert Settings().denied_networks == ["169.254.0.0/16", "10.0.0.0/8"]
    monkeypatch.setenv("CLOUDIAG_DENIED_NETWORKS", '["nonsense"]')
    with pytest.raises(ValidationError, match="not a network"):
        Settings()


# --------------------------------------------------------------------------- every form

LOOPBACK = policy.parse_networks(["127.0.0.0/8"])


@pytest.mark.parametrize("address", ["0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0"])
def test_the_unspecified_address_is_denied_with_loopback(address: str) -> None:
    # Linux delivers a packet to 0.0.0.0 (or "::") to the host itself: 127.0.0.1.
    reason = policy.denied_destination(address, LOOPBACK)
    assert reason is not None and "127.0.0.0/8" in reason


def ipv6_forms(ip: ipaddress.IPv4Address) -> list[str]:
    """The IPv6 addresses that carry ``ip``: every form a packet to ``ip`` can take."""
    v = int(ip)
    return [
        f"::ffff:{ip}",  # IPv4-mapped
        f"::{ip}",  # IPv4-compatible (deprecated, still routed by some stacks)
        f"::ffff:0:{ip}",  # IPv4-translated (SIIT)
        f"64:ff9b::{ip}",  # NAT64, well-known prefix
        # NAT64, local-use /48, around the reserved octet u (RFC 6052)
        str(ipaddress.IPv6Address(0x64FF9B0001 << 80 | (v >> 16) << 64 | (v & 0xFFFF) << 40)),
        str(ipaddress.IPv6Address(0x2002 << 112 | v << 80 | 1)),  # 6to4
        # Teredo: server 192.0.2.1, the client's address inverted in the last 32 bits.
        str(ipaddress.IPv6Address(0x20010000 << 96 | 0xC0000201 << 64 | (v ^ 0xFFFFFFFF))),
    ]


@given(
    network=st.sampled_from(["127.0.0.0/8", "169.254.0.0/16", "203.0.113.0/24"]),
    host=st.integers(0, 2**32 - 1),
)
def test_every_ipv6_form_of_a_denied_ipv4_address_is_denied(network: str, host: int) -> None:
    net = ipaddress.IPv4Network(network)
    ip = net[host % net.num_addresses]
    for form in ipv6_forms(ip):
        reason = policy.denied_destination(form, policy.parse_networks([network]))
        assert reason is not None, form
        assert f"({ip})" in reason and network in reason


def test_ipv6_forms_of_allowed_addresses_pass() -> None:
    for form in ipv6_forms(ipaddress.IPv4Address("198.51.100.10")):
        assert policy.denied_destination(form, LOOPBACK) is None, form


def test_a_name_resolving_to_nat64_of_loopback_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes], tool: Any
) -> None:
    dns = Resolver(["64:ff9b::7f00:1"])
    status, why = _main(monkeypatch, capsysbinary, dns, "127.0.0.0/8", "ping", "x.test")
    assert status == 2 and tool == []
    assert "x.test (127.0.0.1) is in 127.0.0.0/8" in why


# --------------------------------------------------------------------------- the default

DEFAULT = policy.parse_networks(policy.DEFAULT_DENIED_NETWORKS)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "::1", "0.0.0.0", "::", "224.0.0.1", "239.255.255.250",
     "ff02::1", "255.255.255.255", "::ffff:127.0.0.1", "64:ff9b::e000:1"],
)  # fmt: skip
def test_by_default_the_vm_itself_multicast_and_broadcast_are_denied(address: str) -> None:
    assert policy.denied_destination(address, DEFAULT) is not None


@pytest.mark.parametrize(
    "address", ["203.0.113.1", "198.51.100.10", "192.0.2.1", "169.254.0.10", "2001:db8::1"]
)
def test_by_default_the_lab_networks_are_allowed(address: str) -> None:
    assert policy.denied_destination(address, DEFAULT) is None


def test_the_settings_hold_the_default_and_can_allow_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CLOUDIAG_DENIED_NETWORKS", raising=False)
    assert Settings().denied_networks == [str(n) for n in DEFAULT]
    assert "127.0.0.0/8" in Settings().denied_networks
    monkeypatch.setenv("CLOUDIAG_DENIED_NETWORKS", "[]")
    assert Settings().denied_networks == []
