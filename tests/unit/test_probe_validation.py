"""The second wall for the package's own checks: hostile URLs, names, host:port targets and
options refused by the system-VM validation and by the probe subcommand itself; the
operator's denied networks judge where each check sends packets."""

from __future__ import annotations

import pytest

from cloudiag.sysvm import command, policy, registry
from cloudiag.sysvm.errors import DiagnosticsInputError
from cloudiag.sysvm.probes import run
from cloudiag.sysvm.validate import validate

HOSTILE_URLS = [
    "-http://192.0.2.1/",
    "http://-o.lab.test/",
    "http://web.lab.test/a b",
    "http://web.lab.test/\nHost: evil",
    "http://web.lab.test/\r\n",
    "file:///etc/passwd",
    "ftp://web.lab.test/",
    "gopher://web.lab.test/",
    "http://user:pass@web.lab.test/",
    "http://user@web.lab.test/",
    "https://web.lab.test:0/",
    "https://web.lab.test:65536/",
    "https://web.lab.test:8x/",
    "http://" + "a" * 64 + ".lab.test/",
    "http://web.lab.test/" + "a" * 2100,
    'http://web.lab.test/"><script>',
    "http://web.lab.test/`id`",
    "http://web.lab.test/'x'",
    "http://web.lab.test\\@evil/",
    "http:///path",
    "http://",
    "web.lab.test",
    "http://0x7f000001/",
    "http://127.1/",
    "http://[::1/",
    "",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_urls_are_refused(url: str) -> None:
    with pytest.raises(DiagnosticsInputError) as err:
        validate("http", url, "")
    assert err.value.field == "ipaddress"


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_the_probe_itself_refuses_them(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["http", "-X", "GET", "--", url]) == 2
    assert capsys.readouterr().err.startswith("probe: ")


@pytest.mark.parametrize(
    "words",
    [
        ["http", "-X", "POST", "--", "http://192.0.2.1/"],
        ["http", "-w", "61", "--", "http://192.0.2.1/"],
        ["tcp", "--", "192.0.2.1"],
        ["tcp", "--", "192.0.2.1:0"],
        ["tcp", "--", "2001:db8::1:80"],
        ["dns", "-t", "ANY", "--", "lab.test"],
        ["dns", "-t", "mx;id", "--", "lab.test"],
        ["dns", "-s", "dns.lab.test", "--", "lab.test"],
        ["dns", "-p", "0", "--", "lab.test"],
        ["dns", "--", "bad_label.lab.test"],
        ["dns", "--", "a" * 64 + ".lab.test"],
        ["dns", "--", ("a" * 60 + ".") * 5],
        ["route", "-i", "-eth0", "--", "192.0.2.1"],
        ["ping", "--", "192.0.2.1"],
        ["tcp", "192.0.2.1:80"],
        ["tcp", "-w", "1", "--", "web.lab.test:80", "web.lab.test"],
        ["tcp", "-w", "1", "--", "web.lab.test:80", "192.0.2.1", "192.0.2.2"],
        ["http", "-X", "GET", "--", "http://web.lab.test/", "-1"],
        [],
    ],
)
def test_the_probe_refuses_bad_words(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(words) == 2
    assert "probe: " in capsys.readouterr().err


def test_good_targets_are_normalized() -> None:
    url = validate("http", "HTTP://[2001:db8::0001]:8080/a?b=c#d", "")
    assert url.address == "http://[2001:db8::1]:8080/a?b=c#d"
    assert validate("tcp", "[2001:DB8::1]:0443", "").address == "[2001:db8::1]:443"
    assert validate("dns", "Web.Lab.Test.", "-t MX").params == ["-t", "MX"]


def test_a_probe_type_runs_the_package_with_its_options_and_defaults() -> None:
    argv = command.build_argv(validate("http", "https://web.lab.test/", "-k"))
    assert argv[argv.index("probe") :] == [
        "probe",
        "http",
        "-k",
        "-X",
        "GET",
        "--",
        "https://web.lab.test/",
    ]


@pytest.mark.parametrize(
    ("type_", "target", "pinned_target"),
    [
        ("http", "https://web.lab.test/x", "https://198.51.100.10/x"),
        ("tcp", "web.lab.test:443", "198.51.100.10:443"),
        ("route", "web.lab.test", "198.51.100.10"),
    ],
)
def test_a_pinned_name_goes_with_its_address(type_: str, target: str, pinned_target: str) -> None:
    req = validate(type_, target, "")
    pinned = req.aimed_at(req.type.target.with_host(req.address, "198.51.100.10"))
    assert pinned.address == pinned_target
    assert command.build_argv(pinned)[-3:] == ["--", target, "198.51.100.10"]
    assert command.build_argv(req)[-2:] == ["--", target]


DENY = policy.parse_networks(["192.0.2.0/24", "127.0.0.0/8"])


@pytest.mark.parametrize(
    ("type_", "target", "params"),
    [
        ("http", "http://192.0.2.7/", ""),
        ("http", "https://127.0.0.1:8443/", ""),
        ("http", "http://[::ffff:192.0.2.7]/", ""),
        ("tcp", "192.0.2.7:22", ""),
        ("tcp", "[::ffff:127.0.0.1]:22", ""),
        ("dns", "lab.test", "-s 192.0.2.53"),
        ("route", "127.0.0.1", ""),
    ],
)
def test_denied_destinations_are_refused(type_: str, target: str, params: str) -> None:
    req = validate(type_, target, params)
    assert policy.denied_request(req, DENY)
    with pytest.raises(DiagnosticsInputError):
        policy.pin_destination(req, DENY)


def test_dns_judges_its_server_not_the_name() -> None:
    # The name is only asked about; without -s the VM's own resolver is asked.
    req = validate("dns", "no-such-name.lab.test", "")
    assert policy.destination(req) is None and policy.denied_request(req, DENY) is None
    assert policy.pin_destination(req, DENY) is req
    allowed = validate("dns", "no-such-name.lab.test", "-s 198.51.100.53")
    assert policy.destination(allowed) == "198.51.100.53"
    assert policy.pin_destination(allowed, DENY) is allowed


def test_every_probe_type_is_offered_on_every_system_vm() -> None:
    for name in ("tcp", "dns", "http", "route"):
        assert registry.TYPES[name].vm_types == frozenset(
            {"domainrouter", "secondarystoragevm", "consoleproxy"}
        )
