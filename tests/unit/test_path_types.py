"""tracepath and mtr as declared on the system VM, and traceroute's TCP probes: the argv
each request becomes, the time each may take, and the requests refused before any tool
runs (the VM's own wall, behind the API's)."""

from __future__ import annotations

import pytest

from cloudiag.sysvm import command, registry, validate, vm_types
from cloudiag.sysvm.errors import DiagnosticsInputError


def argv(type_name: str, address: str, params: str = "") -> list[str]:
    return command.build_argv(validate.validate(type_name, address, params))


def test_both_run_on_every_system_vm_type_and_both_families() -> None:
    for name in ("tracepath", "mtr"):
        dtype = registry.TYPES[name]
        assert dtype.vm_types == vm_types.ALL
        assert dtype.address_families == {4, 6}
        for vm in vm_types.ALL:
            assert dtype in registry.types_for_vm(vm)
    assert registry.TYPES["tracepath"].parser_name == "tracepath"
    assert registry.TYPES["mtr"].parser_name == "mtr"


def test_tracepath_argv_prints_addresses_and_ends_options() -> None:
    # Names with their addresses (-b), or addresses only (-n, where -b would resolve).
    assert argv("tracepath", "198.51.100.10") == [
        *("tracepath", "-b", "-m", "20", "--", "198.51.100.10"),
    ]
    assert argv("tracepath", "2001:db8:0:100::10", "-n -m 5 -l 1400 -p 33434 -6") == [
        *("tracepath", "-n", "-m", "5", "-l", "1400", "-p", "33434", "-6"),
        *("--", "2001:db8:0:100::10"),
    ]


def test_mtr_argv_is_a_json_report_with_addresses() -> None:
    assert argv("mtr", "198.51.100.10", "-n -c 3 -i 0.2") == [
        *("mtr", "--report", "--json", "--show-ips", "-n", "-c", "3", "-i", "0.2"),
        *("--", "198.51.100.10"),
    ]
    assert argv("mtr", "web.lab.test", "-T -P 80") == [
        *("mtr", "--report", "--json", "--show-ips", "-T", "-P", "80", "-c", "10"),
        *("--", "web.lab.test"),
    ]


@pytest.mark.parametrize(
    ("type_name", "params", "seconds"),
    [
        ("tracepath", "", 120.0),
        ("tracepath", "-m 2", 12.0),
        ("tracepath", "-m 64", 384.0),
        ("mtr", "", 18.0),
        ("mtr", "-c 3 -i 0.2", 3 * 0.2 + 8.0),
        ("mtr", "-c 100 -i 2", 208.0),
    ],
)
def test_estimates(type_name: str, params: str, seconds: float) -> None:
    request = validate.validate(type_name, "198.51.100.10", params)
    assert request.estimated_seconds == pytest.approx(seconds)


def test_an_estimate_over_the_limit_is_refused() -> None:
    with pytest.raises(DiagnosticsInputError, match="may take up to 608 s, more than the limit"):
        validate.validate("mtr", "198.51.100.10", "-c 100 -i 6")
    with pytest.raises(DiagnosticsInputError, match="more than the limit of 100 s"):
        validate.validate("tracepath", "198.51.100.10", "", time_limit=100)


@pytest.mark.parametrize(
    ("type_name", "address", "params", "field", "fragment"),
    [
        ("tracepath", "198.51.100.10", "-m 0", "params", 'Option "-m" of tracepath needs'),
        ("tracepath", "198.51.100.10", "-m 65", "params", "from 1 to 64"),
        ("tracepath", "198.51.100.10", "-l 28", "params", "from 64 to 65535"),
        ("tracepath", "198.51.100.10", "-p 0", "params", "from 1 to 65535"),
        ("tracepath", "198.51.100.10", "-b", "params", 'Option "-b" is not allowed'),
        ("tracepath", "198.51.100.10", "-6", "params", "does not fit the IPv4 address"),
        ("tracepath", "198.51.100.10", "-4 -6", "params", "cannot be used together"),
        ("tracepath", "198.51.100.10", "-V", "params", 'Option "-V" is not allowed'),
        ("tracepath", "198.51.100.10", "198.51.100.11", "params", "Unexpected argument"),
        ("tracepath", "-n", "", "ipaddress", ""),
        ("tracepath", "198.51.100.10;reboot", "", "ipaddress", ""),
        ("mtr", "198.51.100.10", "-c 0", "params", "from 1 to 100"),
        ("mtr", "198.51.100.10", "-c 101", "params", "from 1 to 100"),
        ("mtr", "198.51.100.10", "-i 0.01", "params", "from 0.1 to 60"),
        ("mtr", "198.51.100.10", "-s 9001", "params", "from 0 to 9000"),
        ("mtr", "198.51.100.10", "-P 80", "params", 'needs "-T" (TCP) or "-u" (UDP)'),
        ("mtr", "198.51.100.10", "-T -u", "params", "cannot be used together"),
        ("mtr", "198.51.100.10", "-f 9 -m 3", "params", 'must not be larger than "-m"'),
        ("mtr", "198.51.100.10", "-I eth0;id", "params", "forbidden character ';'"),
        ("mtr", "198.51.100.10", "-I -n", "params", 'Option "-I" of mtr needs an interface'),
        ("mtr", "198.51.100.10", "--report", "params", 'Option "--report" is not allowed'),
        ("mtr", "198.51.100.10", "-z", "params", 'Option "-z" is not allowed'),
        ("mtr", "198.51.100.10", "-c 3 -c 4", "params", "more than once"),
        ("mtr", "$(reboot)", "", "ipaddress", ""),
        ("mtr", "2001:db8::1", "-4", "params", "does not fit the IPv6 address"),
    ],
)
def test_hostile_and_bad_requests_are_refused_on_the_vm(
    type_name: str, address: str, params: str, field: str, fragment: str
) -> None:
    with pytest.raises(DiagnosticsInputError) as info:
        validate.validate(type_name, address, params)
    assert info.value.field == field
    assert fragment in info.value.message


def test_traceroute_takes_tcp_probes_to_a_port() -> None:
    # TCP traceroute is an option of traceroute (and traceroute6), not a type of its own:
    # the same tool, output and parser; only the probe changes.
    assert argv("traceroute", "198.51.100.10", "-T -p 80 -n") == [
        *("traceroute", "-T", "-p", "80", "-n", "-m", "20", "--", "198.51.100.10"),
    ]
    assert argv("traceroute6", "2001:db8:0:100::10", "-T -p 443") == [
        *("traceroute", "-6", "-T", "-p", "443", "-m", "20", "--", "2001:db8:0:100::10"),
    ]
    for params, fragment in (
        ("-T -p 0", "from 1 to 65535"),
        ("-T -p 65536", "from 1 to 65535"),
        ("-T -I", "cannot be used together"),
        ("-T -U", "cannot be used together"),
        ("-T -p 80:81", 'Option "-p" of traceroute needs'),
    ):
        with pytest.raises(DiagnosticsInputError) as info:
            validate.validate("traceroute", "198.51.100.10", params)
        assert fragment in info.value.message, (params, info.value.message)
