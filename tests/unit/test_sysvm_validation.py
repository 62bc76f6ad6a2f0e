"""Validation rules of the shared diagnostics registry (cloudiag.sysvm: registry, validate)."""

from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudiag.sysvm import command, diagnostic_type, options, registry, tokens, validate
from cloudiag.sysvm.errors import DiagnosticsInputError

SAFE_ADDRESS = re.compile(r"[A-Za-z0-9.:-]+")
SAFE_TOKEN = re.compile(r"[A-Za-z0-9_.:-]+")

# --------------------------------------------------------------------------- registry


def test_registry_types_and_vm_types() -> None:
    # At least these (types added later are other tests' business).
    assert {"ping", "traceroute", "arping", "ping6", "traceroute6"} <= set(registry.TYPES)
    router = {t.name for t in registry.types_for_vm("domainrouter")}
    assert router == set(registry.TYPES)
    for vm in ("secondarystoragevm", "consoleproxy", "ConsoleProxy"):
        offered = {t.name for t in registry.types_for_vm(vm)}
        assert {"ping", "traceroute", "arping"} <= offered
        assert not {"ping6", "traceroute6"} & offered
    assert registry.types_for_vm("userVM") == []


def test_get_type_is_case_insensitive_and_cloudstack_message() -> None:
    assert registry.get_type("PING") is registry.TYPES["ping"]
    assert registry.get_type("Traceroute6").tool == "traceroute"
    with pytest.raises(DiagnosticsInputError) as info:
        registry.get_type("bash")
    assert info.value.field == "type"
    assert info.value.message == "bash Is not a valid diagnostics command type."


@pytest.mark.parametrize("name", ["ping;id", "ping ", " ping", "ping\n", "", "pin", "ping7", "sh"])
def test_bad_types(name: str) -> None:
    with pytest.raises(DiagnosticsInputError) as info:
        validate.validate(name, "127.0.0.1", None)
    assert info.value.field == "type"


def test_registry_is_read_only_and_describable() -> None:
    with pytest.raises(TypeError):
        registry.TYPES["sh"] = registry.TYPES["ping"]  # type: ignore[index]
    with pytest.raises(TypeError):
        registry.TYPES["ping"].options["-f"] = registry.TYPES["ping"].options["-c"]  # type: ignore[index]
    described = registry.TYPES["arping"].to_dict()
    assert described["name"] == "arping"
    assert [o["flag"] for o in described["options"]] == sorted(registry.TYPES["arping"].options)
    assert described["address_families"] == [4]


def test_error_is_a_value_error_and_picklable() -> None:
    err = DiagnosticsInputError("params", "boom")
    assert isinstance(err, ValueError)
    copy = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own object
    assert (copy.field, copy.message) == ("params", "boom")


# --------------------------------------------------------------------------- addresses

VALID_ADDRESSES = [
    ("127.0.0.1", "127.0.0.1"),
    ("192.0.2.1", "192.0.2.1"),
    ("::1", "::1"),
    ("2001:DB8:0:0::1", "2001:db8::1"),
    ("::ffff:192.0.2.1", "::ffff:c000:201"),
    ("fe80::1", "fe80::1"),
    ("example.com", "example.com"),
    ("example.com.", "example.com."),
    ("localhost", "localhost"),
    ("a-b.example", "a-b.example"),
    ("1host.example", "1host.example"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("a" * 63 + ".example", "a" * 63 + ".example"),
    (".".join(["a" * 49] * 5), ".".join(["a" * 49] * 5)),  # 249 characters
    ("EXAMPLE.Org", "EXAMPLE.Org"),
    ("router1.local", "router1.local"),
]


@pytest.mark.parametrize(("address", "expected"), VALID_ADDRESSES)
def test_valid_addresses(address: str, expected: str) -> None:
    assert tokens.validate_address(address) == expected


HOSTILE_ADDRESSES = [
    "",
    " ",
    "; rm -rf /",
    "$(id)",
    "`id`",
    "127.0.0.1;id",
    "127.0.0.1 && id",
    "127.0.0.1|id",
    "127.0.0.1&",
    "127.0.0.1\n",
    "127.0.0.1\nid",
    "127.0.0.1\r",
    "127.0.0.1\x00",
    "\x00",
    "\t127.0.0.1",
    "127.0.0.1 ",
    "a b",
    "-oProxyCommand=x",
    "--help",
    "-1.2.3.4",
    "-c",
    "-",
    "fe80::1%eth0",
    "fe80::1%25eth0",
    "[::1]",
    "[::1]:80",
    "http://x",
    "https://example.com/",
    "example.com:80",
    "x:y",
    "../../etc/passwd",
    "/etc/passwd",
    "~root",
    "$HOME",
    "${IFS}",
    "a>b",
    "a<b",
    "ex*ample.com",
    "example?.com",
    "exa[m]ple.com",
    "{a,b}.com",
    "(a).com",
    "!x",
    "#x",
    "a\\b",
    "'x'",
    '"x"',
    "x@y",
    "user@example.com",
    "x%y",
    "a,b",
    "a=b",
    "a+b",
    "ex_ample.com",
    "x" * 254,
    "a" * 64 + ".com",
    "a" * 64,
    ".example",
    "a..b",
    "example..",
    "-example.com",
    "example-.com",
    "example.-com",
    "exam\u0440le.com",  # Cyrillic er
    "ex\u0430mple.com",  # Cyrillic a
    "\uff11\uff12\uff17.0.0.1",  # fullwidth digits
    "example.com\u200b",  # zero-width space
    "example\u3002com",  # ideographic full stop
    "b\u00fccher.example",
    "1.2.3",
    "127.1",
    "0x7f000001",
    "0x7f.0.0.1",
    "2130706433",
    "017.0.0.1",
    "1.2.3.4.5",
    "256.1.1.1",
    "1.2.3.4.",
    "example.123",
    "::1::",
    "1::2::3",
    "12345::",
    ":::",
    "::ffff:1.2.3.4%1",
    "127.0.0.1\x7f",
    "127.0.0.1\x1b[2J",
]


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_hostile_addresses(address: str) -> None:
    with pytest.raises(DiagnosticsInputError) as info:
        tokens.validate_address(address)
    assert info.value.field == "ipaddress"
    assert info.value.message
    # And validate() reports the same field, for every type.
    with pytest.raises(DiagnosticsInputError) as info:
        validate.validate("ping", address, None)
    assert info.value.field == "ipaddress"


def test_address_messages_name_the_problem() -> None:
    with pytest.raises(DiagnosticsInputError, match="U\\+000A"):
        tokens.validate_address("127.0.0.1\n")
    with pytest.raises(DiagnosticsInputError, match="';'"):
        tokens.validate_address("a;b")
    with pytest.raises(DiagnosticsInputError, match="must not start with '-'"):
        tokens.validate_address("-x")


@pytest.mark.parametrize(
    ("type_name", "address"),
    [
        ("arping", "::1"),
        ("arping", "2001:db8::1"),
        ("ping6", "127.0.0.1"),
        ("traceroute6", "192.0.2.1"),
    ],
)
def test_address_family_per_type(type_name: str, address: str) -> None:
    with pytest.raises(DiagnosticsInputError) as info:
        validate.validate(type_name, address, None)
    assert info.value.field == "ipaddress"


@pytest.mark.parametrize(
    ("type_name", "address"),
    [
        ("ping", "::1"),
        ("traceroute", "::1"),
        ("ping6", "::1"),
        ("ping6", "example.com"),
        ("traceroute6", "example.com"),
        ("arping", "example.com"),
        ("arping", "192.0.2.1"),
    ],
)
def test_address_family_allowed(type_name: str, address: str) -> None:
    assert validate.validate(type_name, address, None).address == address


# --------------------------------------------------------------------------- params

VALID_PARAMS = [
    ("ping", "-c 5 -I eth2", ["-c", "5", "-I", "eth2"]),
    ("ping", "  -c   5  ", ["-c", "5"]),
    ("ping", ["-c", "5"], ["-c", "5"]),
    ("ping", ["-c 5", "-n"], ["-c", "5", "-n"]),
    ("ping", "-c 007", ["-c", "7"]),
    ("ping", "", []),
    ("ping", None, []),
    ("ping", [], []),
    ("ping", "-i 0.2 -c 3", ["-i", "0.2", "-c", "3"]),
    (
        "ping",
        "-W 0.5 -w 5 -t 64 -s 1400 -n -q",
        ["-W", "0.5", "-w", "5", "-t", "64", "-s", "1400", "-n", "-q"],
    ),
    ("ping", "-I 192.0.2.1", ["-I", "192.0.2.1"]),
    ("ping", "-I eth0.100", ["-I", "eth0.100"]),
    ("ping", "-4", ["-4"]),
    ("ping", "-s 0", ["-s", "0"]),
    ("ping", "-s 65507", ["-s", "65507"]),
    ("ping6", "-c 2 -I eth0", ["-c", "2", "-I", "eth0"]),
    ("traceroute", "-m 30 -q 3 -w 3", ["-m", "30", "-q", "3", "-w", "3"]),
    (
        "traceroute",
        "-n -I -p 33434 -i eth1 -f 2",
        ["-n", "-I", "-p", "33434", "-i", "eth1", "-f", "2"],
    ),
    ("traceroute", "-T -p 443 -w 0.5", ["-T", "-p", "443", "-w", "0.5"]),
    ("traceroute6", "-n -m 10", ["-n", "-m", "10"]),
    (
        "arping",
        "-c 2 -w 3 -I eth0 -s 192.0.2.1",
        ["-c", "2", "-w", "3", "-I", "eth0", "-s", "192.0.2.1"],
    ),
    ("arping", "-D -I eth0", ["-D", "-I", "eth0"]),
    ("arping", "-U", ["-U"]),
]


@pytest.mark.parametrize(("type_name", "params", "expected"), VALID_PARAMS)
def test_valid_params(type_name: str, params: str | list[str] | None, expected: list[str]) -> None:
    address = "::1" if type_name.endswith("6") else "192.0.2.2"
    assert validate.parse_params(registry.get_type(type_name), params) == expected
    assert validate.validate(type_name, address, params).params == expected


HOSTILE_PARAMS = [
    ("ping", "; rm -rf /"),
    ("ping", "-c 1; id"),
    ("ping", "-c 1;id"),
    ("ping", "$(id)"),
    ("ping", "-c $(id)"),
    ("ping", "`id`"),
    ("ping", "-c `id`"),
    ("ping", "-c 1 | id"),
    ("ping", "-c 1 && id"),
    ("ping", "-c 1 &"),
    ("ping", "-c 1\nid"),
    ("ping", "-c 1\n"),
    ("ping", "-c 1\rid"),
    ("ping", "-c\x001"),
    ("ping", "-c 1\x00"),
    ("ping", "-c\t1"),
    ("ping", "-c 1\x0b"),
    ("ping", "-c 1\x1b"),
    ("ping", "-c 1\x7f"),
    ("ping", "-c\u00a01"),  # no-break space is not a separator
    ("ping", "-c 1000"),
    ("ping", "-c 101"),
    ("ping", "-c -1"),
    ("ping", "-c 0"),
    ("ping", "-c 1.5"),
    ("ping", "-c 1e2"),
    ("ping", "-c 0x10"),
    ("ping", "-c 1_0"),
    ("ping", "-c +5"),
    ("ping", "-c \u0661"),  # Arabic-Indic digit one: int() would accept it
    ("ping", "-c \uff15"),  # fullwidth 5
    ("ping", "-c"),
    ("ping", "-c -n"),
    ("ping", "-i 0.001"),
    ("ping", "-i 0"),
    ("ping", "-i 0.1"),
    ("ping", "-i -1"),
    ("ping", "-i nan"),
    ("ping", "-i inf"),
    ("ping", "-i 1e-3"),
    ("ping", "-i .5"),
    ("ping", "-i 61"),
    ("ping", "-f"),
    ("ping", "-f -c 100"),
    ("ping", "-s 70000"),
    ("ping", "-s 65508"),
    ("ping", "-W 0"),
    ("ping", "-W 61"),
    ("ping", "-w 0"),
    ("ping", "-w 601"),
    ("ping", "-t 0"),
    ("ping", "-t 256"),
    ("ping", "-I -eth0"),
    ("ping", "-I eth0;id"),
    ("ping", "-I averyveryverylongname"),
    ("ping", "-I .."),
    ("ping", "-I fe80::1%eth0"),
    ("ping", "--help"),
    ("ping", "-h"),
    ("ping", "-V"),
    ("ping", "-b"),
    ("ping", "-p ff"),
    ("ping", "-l 3"),
    ("ping", "-a"),
    ("ping", "-R"),
    ("ping", "-x"),
    ("ping", "-oProxyCommand=x"),
    ("ping", "foo"),
    ("ping", "127.0.0.1"),
    ("ping", "-c 5 127.0.0.1"),
    ("ping", "-c 5 -c 5"),
    ("ping", "-n -n"),
    ("ping", "-4 -6"),
    ("ping", "-c5"),
    ("ping", "-nq"),
    ("ping", "'-c' '5'"),
    ("ping", '"-c 5"'),
    ("ping", "-c *"),
    ("ping", "-c ?"),
    ("ping", "-c [1]"),
    ("ping", "-c {1,2}"),
    ("ping", "-c (1)"),
    ("ping", "-c ~"),
    ("ping", "-c !1"),
    ("ping", "-c 1 #"),
    ("ping", "-c 1\\"),
    ("ping", "-I eth0 > /tmp/x"),
    ("ping", "-c 1 < /etc/passwd"),
    ("ping", "-c 1 $HOME"),
    ("ping", "-c 1 ../../etc/passwd"),
    ("ping", "--"),
    ("ping", "-"),
    ("ping", "-c 1 -- -x"),
    ("ping", "-c 100 -i 1 -W 60"),  # up to 160 s > 120 s
    ("ping", "-w 600"),  # 600 s > 120 s
    ("ping", "-c 2,3"),
    ("ping", "-c=2"),
    ("ping", "-c 1 -I eth0 -I eth1"),
    ("ping", ["-c", "1; id"]),
    ("ping", ["-c", "1\n"]),
    ("ping", ["-c", ""]),
    ("ping", ["-c", None]),
    ("ping", [b"-c", b"1"]),
    ("ping", b"-c 1"),
    ("ping", 5),
    ("ping", "-c " + "1" * 600),
    ("ping", "-n " * 200),
    ("ping6", "-4"),
    ("ping6", "-6"),
    ("ping6", "-I 192.0.2.1"),
    ("arping", "-I 192.0.2.1;"),
    ("traceroute", "-m 65"),
    ("traceroute", "-m 0"),
    ("traceroute", "-q 11"),
    ("traceroute", "-w 61"),
    ("traceroute", "-w 5,3,10"),
    ("traceroute", "-p 0"),
    ("traceroute", "-p 65536"),
    ("traceroute", "-I -T"),
    ("traceroute", "-T -U"),
    ("traceroute", "-g 192.0.2.1"),
    ("traceroute", "-s 192.0.2.1"),
    ("traceroute", "-z 1"),
    ("traceroute", "-N 100"),
    ("traceroute", "-M tcp"),
    ("traceroute", "-O x"),
    ("traceroute", "-f 10 -m 5"),
    ("traceroute", "-m 50"),  # 50 * 3 * 5 = 750 s > 600 s
    ("traceroute", "-i eth0;id"),
    ("traceroute", "--fwmark=1"),
    ("traceroute", "-n 60"),
    ("traceroute6", "-4"),
    ("traceroute6", "-6"),
    ("arping", "-c 101"),
    ("arping", "-w 0"),
    ("arping", "-w 121"),
    ("arping", "-s ::1"),
    ("arping", "-s host"),
    ("arping", "-s 192.0.2.1%eth0"),
    ("arping", "-I -x"),
    ("arping", "-D -U"),
    ("arping", "-U -A"),
    ("arping", "-f"),
    ("arping", "-b"),
    ("arping", "-i 0.1"),
    ("arping", "-q"),
    ("arping", "-c 100 -w 600"),  # 600 s > 120 s
]


@pytest.mark.parametrize(("type_name", "params"), HOSTILE_PARAMS)
def test_hostile_params(type_name: str, params: object) -> None:
    address = "::1" if type_name.endswith("6") else "192.0.2.2"
    with pytest.raises(DiagnosticsInputError) as info:
        validate.validate(type_name, address, params)  # type: ignore[arg-type]
    assert info.value.field == "params"
    assert info.value.message


def test_at_least_a_hundred_hostile_cases() -> None:
    assert len(HOSTILE_PARAMS) + len(HOSTILE_ADDRESSES) >= 200
    assert len(HOSTILE_PARAMS) >= 100


def test_unknown_option_message_lists_allowed() -> None:
    with pytest.raises(DiagnosticsInputError) as info:
        validate.parse_params(registry.get_type("ping"), "-x")
    assert info.value.message == (
        'Option "-x" is not allowed for ping; allowed: -4, -6, -I, -W, -c, -i, -n, -q, -s, -t, -w'
    )


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ("-f", 'Option "-f" is not allowed for ping'),
        ("-c 1000", 'Option "-c" of ping needs an integer from 1 to 100, got "1000"'),
        ("-c", 'Option "-c" of ping needs a value: an integer from 1 to 100'),
        ("-i 0.001", 'Option "-i" of ping needs a number from 0.2 to 60'),
        ("-c 1 -c 2", 'Option "-c" is given more than once'),
        ("foo", 'Unexpected argument "foo" for ping'),
        ("-c5", 'write the value after a space: "-c 5"'),
        ("-4 -6", "Options -4 and -6 cannot be used together"),
        ("-c 1\nid", "U+000A"),
        ("-c 1; id", "';'"),
    ],
)
def test_param_messages(params: str, fragment: str) -> None:
    with pytest.raises(DiagnosticsInputError) as info:
        validate.validate("ping", "192.0.2.1", params)
    assert fragment in info.value.message


def test_family_options_must_fit_the_address() -> None:
    with pytest.raises(DiagnosticsInputError) as info:
        validate.validate("ping", "::1", "-4")
    assert info.value.field == "params"
    with pytest.raises(DiagnosticsInputError):
        validate.validate("traceroute", "192.0.2.1", "-6")
    assert validate.validate("ping", "example.com", "-6").params == ["-6"]


def test_forced_option_hint() -> None:
    with pytest.raises(DiagnosticsInputError, match="ping6 always uses -6"):
        validate.validate("ping6", "::1", "-6")


# --------------------------------------------------------------------------- time


def test_estimates_and_limits() -> None:
    assert validate.validate("ping", "192.0.2.1", None).estimated_seconds == 14  # 4 x 1 s + 10 s
    assert validate.validate("ping", "192.0.2.1", "-c 100").estimated_seconds == 110
    assert validate.validate("ping", "192.0.2.1", "-w 5 -c 100").estimated_seconds == 5
    assert validate.validate("traceroute", "192.0.2.1", None).estimated_seconds == 300
    assert validate.validate("traceroute", "192.0.2.1", "-m 30 -q 3 -w 3").estimated_seconds == 270
    assert (
        validate.validate("traceroute", "192.0.2.1", "-f 5 -m 6 -q 1 -w 1").estimated_seconds == 2
    )
    assert validate.validate("arping", "192.0.2.1", None).estimated_seconds == 5
    assert validate.validate("arping", "192.0.2.1", "-w 3 -c 2").estimated_seconds == 3


def test_time_limit_override() -> None:
    with pytest.raises(DiagnosticsInputError) as info:
        validate.validate("ping", "192.0.2.1", "-c 10", time_limit=5)
    assert info.value.field == "params"
    assert "limit of 5 s" in info.value.message
    assert (
        validate.validate("traceroute", "192.0.2.1", "-m 30", time_limit=600).estimated_seconds
        == 450
    )


# --------------------------------------------------------------------------- argv


def test_build_argv() -> None:
    def argv(type_name: str, address: str, params: str | None, **kw: str) -> list[str]:
        return command.build_argv(validate.validate(type_name, address, params), **kw)

    assert argv("ping", "192.0.2.1", None) == ["ping", "-c", "4", "--", "192.0.2.1"]
    assert argv("ping", "192.0.2.1", "-c 2 -n") == ["ping", "-c", "2", "-n", "--", "192.0.2.1"]
    assert argv("ping", "::1", None) == ["ping", "-c", "4", "--", "::1"]
    assert argv("ping6", "::1", "-n") == ["ping", "-6", "-n", "-c", "4", "--", "::1"]
    assert argv("traceroute", "192.0.2.1", "-n") == [
        "traceroute",
        "-n",
        "-m",
        "20",
        "--",
        "192.0.2.1",
    ]
    assert argv("traceroute6", "::1", None) == ["traceroute", "-6", "-m", "20", "--", "::1"]
    assert argv("arping", "192.0.2.1", None, interface="eth0") == [
        "arping",
        "-c",
        "4",
        "-I",
        "eth0",
        "--",
        "192.0.2.1",
    ]
    # The user's -I wins over the routing table's choice.
    assert argv("arping", "192.0.2.1", "-I eth1", interface="eth0") == [
        "arping",
        "-I",
        "eth1",
        "-c",
        "4",
        "--",
        "192.0.2.1",
    ]
    # Types that do not pick an interface ignore the hint.
    assert "-I" not in argv("ping", "192.0.2.1", None, interface="eth0")
    with pytest.raises(ValueError):
        argv("arping", "192.0.2.1", None, interface="-x;id")


# --------------------------------------------------------------------------- properties

_EVIL = " ;|&$`<>*?[]{}()~!#\\'\"\n\r\t\x00/@%,=+_\u0430\uff11\u200b"
_NEAR_ADDRESS = "abcxyz0129.:-" + _EVIL
_HOST_NAMES = st.from_regex(
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,5}[A-Za-z0-9])?){0,3}",
    fullmatch=True,
)


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[str], alphabet: str) -> str:
    """A mostly valid string with, often, one character inserted, replaced or deleted."""
    text = draw(base)
    action = draw(st.sampled_from(["keep", "insert", "replace", "delete"]))
    if action == "keep" or not text:
        return text
    pos = draw(st.integers(0, len(text) - 1))
    char = draw(st.sampled_from(alphabet))
    if action == "insert":
        return text[:pos] + char + text[pos:]
    if action == "replace":
        return text[:pos] + char + text[pos + 1 :]
    return text[:pos] + text[pos + 1 :]


_ADDRESSES = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=_NEAR_ADDRESS, max_size=40),
    _mutated(st.ip_addresses().map(str), _NEAR_ADDRESS),
    _mutated(_HOST_NAMES, _NEAR_ADDRESS),
)


@settings(deadline=None, max_examples=500)
@given(_ADDRESSES)
def test_accepted_addresses_are_safe(address: str) -> None:
    try:
        accepted = tokens.validate_address(address)
    except DiagnosticsInputError as exc:
        assert exc.field == "ipaddress"
        return
    for text in (address, accepted):
        assert SAFE_ADDRESS.fullmatch(text)
        assert not text.startswith("-")
    assert len(accepted) <= 253
    assert tokens.validate_address(accepted) == accepted


def _value_strategy(spec: options.OptionSpec, clean: bool) -> st.SearchStrategy[str]:
    """Values around the spec's rule: in range, at the edges, out of range, junk."""
    low = spec.minimum if spec.minimum is not None else 0
    high = spec.maximum if spec.maximum is not None else 10
    junk = st.sampled_from(["", "-1", "nan", "inf", "1e2", "0x10", "-eth0", "..", "\u0661"])
    if spec.kind == options.KIND_INT:
        good = st.integers(int(low) - 2, int(high) + 2).map(str)
    elif spec.kind == options.KIND_FLOAT:
        good = st.one_of(
            st.floats(low - 1, high + 1).map(lambda f: f"{f:.3f}"),
            st.floats(low - 1, high + 1).map(repr),
        )
    elif spec.kind in (
        options.KIND_INTERFACE,
        options.KIND_INTERFACE_OR_ADDRESS,
        options.KIND_ADDRESS,
    ):
        good = st.one_of(
            st.from_regex(r"[A-Za-z0-9_.:-]{1,17}", fullmatch=True),
            st.ip_addresses().map(str),
        )
    else:
        good = st.sampled_from(spec.choices or ("x",))
    if clean:
        return good
    return st.one_of(good, good, _mutated(good, _EVIL + "-."), junk)


@st.composite
def _params(draw: st.DrawFn, dtype: diagnostic_type.DiagnosticType) -> list[str]:
    """A mostly well-formed option list for ``dtype``, sometimes with foreign tokens."""
    # Half of the lists are well formed (so that many are accepted and checked), the
    # other half carry broken values, repeated options and foreign tokens.
    clean = draw(st.booleans())
    flags = draw(st.lists(st.sampled_from(dtype.allowed_flags()), max_size=4, unique=True))
    if flags and not clean and draw(st.integers(0, 4)) == 0:
        flags.append(flags[0])  # a repeated option, now and then
    tokens: list[str] = []
    for flag in flags:
        tokens.append(flag)
        spec = dtype.options[flag]
        if spec.takes_value and (clean or draw(st.integers(0, 9))):
            tokens.append(draw(_value_strategy(spec, clean)))
    if not clean and draw(st.booleans()):
        foreign = draw(
            st.one_of(
                st.sampled_from(["-f", "-x", "--help", "-", "--", "-c5", "-oX", "foo"]),
                st.text(alphabet="-0123456789abcI." + _EVIL, max_size=6),
            )
        )
        tokens.insert(draw(st.integers(0, len(tokens))), foreign)
    return tokens


def _check_argv_fragment(dtype: diagnostic_type.DiagnosticType, argv: list[str]) -> None:
    seen: set[str] = set()
    index = 0
    while index < len(argv):
        flag = argv[index]
        assert flag in dtype.options
        assert flag not in seen
        seen.add(flag)
        spec = dtype.options[flag]
        if spec.takes_value:
            value = argv[index + 1]
            assert spec.check(value) == value
            assert SAFE_TOKEN.fullmatch(value)
            assert not value.startswith("-")
            index += 2
        else:
            index += 1


@settings(deadline=None, max_examples=600)
@given(data=st.data(), type_name=st.sampled_from(sorted(registry.TYPES)), as_string=st.booleans())
def test_parse_params_output_only_holds_declared_options(
    data: st.DataObject, type_name: str, as_string: bool
) -> None:
    dtype = registry.get_type(type_name)
    tokens = data.draw(_params(dtype))
    params: str | list[str] = " ".join(tokens) if as_string else tokens
    try:
        argv = validate.parse_params(dtype, params)
    except DiagnosticsInputError as exc:
        assert exc.field == "params"
        return
    _check_argv_fragment(dtype, argv)
    # Normalized output is a fixed point.
    assert validate.parse_params(dtype, argv) == argv


@settings(deadline=None, max_examples=300)
@given(
    type_name=st.sampled_from(sorted(registry.TYPES)),
    prefix=st.text(max_size=10),
    bad=st.sampled_from(_EVIL.replace(" ", "").replace("_", "")),
    suffix=st.text(max_size=10),
)
def test_any_forbidden_character_is_refused(
    type_name: str, prefix: str, bad: str, suffix: str
) -> None:
    with pytest.raises(DiagnosticsInputError) as info:
        validate.parse_params(registry.get_type(type_name), f"-c {prefix}{bad}{suffix}")
    assert info.value.field == "params"


@settings(deadline=None, max_examples=200)
@given(st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9](\.[a-z][a-z0-9]{0,10}){1,3}", fullmatch=True))
def test_generated_host_names_are_accepted(name: str) -> None:
    assert tokens.validate_address(name) == name
