"""The types' declarations: complete, in step with the domain, and a grammar that fits
types other than "flags, then an address" (throw-away declarations made here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloudiag import domain, parsers
from cloudiag.lab import manager
from cloudiag.sysvm import cli, command, options, registry, types, vm_types
from cloudiag.sysvm.diagnostic_type import DiagnosticType
from cloudiag.sysvm.errors import DiagnosticsInputError
from cloudiag.sysvm.probes.argv import PROBE_TOOL, self_command
from cloudiag.sysvm.targets import TARGET_HOST_PORT, TARGET_URL, Positional, Target
from cloudiag.sysvm.tokens import validate_address
from cloudiag.sysvm.validate import Request, validate_for

ROOT = Path(__file__).resolve().parents[2]
SUMMARIES = ROOT / "src/cloudiag/ui/static/js/diag/summaries"
ALL_TYPES = sorted(registry.TYPES)


def test_the_vm_type_names_are_the_domains() -> None:
    assert vm_types.ALL == {str(t) for t in domain.SYSTEM_VM_TYPES}


def test_the_scripts_time_limit_bound_is_the_domains() -> None:
    assert cli.MAX_TIME_LIMIT == domain.MAX_TIME_LIMIT


def test_every_type_module_is_found_and_offered_in_its_order() -> None:
    modules = {p.stem for p in Path(types.__file__).parent.glob("[!_]*.py")}
    assert {m.__name__.rsplit(".", 1)[1] for m in types.MODULES} == modules
    assert set(registry.TYPES) == modules
    order = sorted(registry.TYPES.values(), key=lambda t: (t.order, t.name))
    assert list(registry.TYPES) == [t.name for t in order]
    # The lists (listDiagnosticsTypes, the UI's menu, messages) start as they always did.
    assert list(registry.TYPES)[:5] == ["ping", "traceroute", "arping", "ping6", "traceroute6"]


def test_the_declarations_are_read_only() -> None:
    ping = registry.TYPES["ping"]
    with pytest.raises(AttributeError):
        ping.target.families = frozenset({4, 6, 7})  # type: ignore[misc]
    with pytest.raises(AttributeError):
        DIG.positionals[0].check = str  # type: ignore[misc]


# --------------------------------------------------------------------------- completeness


@pytest.mark.parametrize("name", ALL_TYPES)
def test_every_type_has_a_parser_module(name: str) -> None:
    dtype = registry.TYPES[name]
    assert (ROOT / f"src/cloudiag/parsers/{dtype.parser_name}.py").is_file()
    assert parsers.PARSERS[name] is parsers.parser_named(dtype.parser_name)


@pytest.mark.parametrize("name", [*ALL_TYPES, "generic"])
def test_every_type_has_a_ui_summary(name: str) -> None:
    summary = registry.TYPES[name].ui_summary if name in registry.TYPES else name
    assert (SUMMARIES / f"{summary}.js").is_file()


def _setup_tools() -> set[str]:
    script = (ROOT / "scripts/setup.sh").read_text(encoding="utf-8")
    block = re.search(r"declare -A tools=\((.*?)\)", script, re.S)
    assert block is not None, "scripts/setup.sh has no tools=( ... ) list"
    return set(re.findall(r"\[([\w.-]+)\]=", block.group(1)))


#: A target of each type the package does itself (its argv runs the package again).
PROBE_TARGETS = {"tcp": "192.0.2.1:80", "dns": "web.lab.test", "http": "http://192.0.2.1/"}


@pytest.mark.parametrize("name", ALL_TYPES)
def test_every_types_tool_is_installed_by_setup_and_required_by_the_lab(name: str) -> None:
    tool = registry.TYPES[name].tool
    if tool == PROBE_TOOL:
        argv = command.build_argv(validate_for(registry.TYPES[name], PROBE_TARGETS[name], ""))
        assert argv[argv.index("probe") + 1] == name
        assert argv[: argv.index("probe")] == self_command()
        return
    assert tool in _setup_tools()
    assert tool in manager.REQUIRED_TOOLS


# --------------------------------------------------------------------------- the grammar

RECORD_TYPES = ("A", "AAAA", "MX", "NS", "TXT", "PTR", "SOA")


def _server(value: str) -> str:
    return validate_address(value, field="params")


def _record_type(value: str) -> str:
    if value.upper() not in RECORD_TYPES:
        raise DiagnosticsInputError("params", f"{value} is not one of {', '.join(RECORD_TYPES)}")
    return value.upper()


def _dig_argv(req: Request, interface: str | None) -> list[str]:
    words = dict(req.positionals)
    server = [words["server"]] if "server" in words else []
    return ["dig", *req.params, *server, req.address, words.get("rtype", "A")]


DIG = DiagnosticType(
    name="dig",
    tool="dig",
    description="Query a DNS server",
    vm_types=vm_types.ALL,
    options=options.option_table(
        options.OptionSpec("-p", "Port of the server", options.KIND_INT, 1, 65535),
        options.OptionSpec("-4", "IPv4 only"),
    ),
    positionals=(
        Positional("server", "the server to ask", _server, prefix="@"),
        Positional("rtype", "the record type", _record_type),
    ),
    argv=_dig_argv,
)
HTTP = DiagnosticType(
    name="http",
    tool="curl",
    description="Fetch a URL",
    vm_types=vm_types.ALL,
    options=options.option_table(options.OptionSpec("-m", "Seconds", options.KIND_INT, 1, 60)),
    target=Target(TARGET_URL),
)
TCP = DiagnosticType(
    name="tcp",
    tool="nc",
    description="Open a TCP connection",
    vm_types=vm_types.ALL,
    options=options.option_table(options.OptionSpec("-w", "Seconds", options.KIND_INT, 1, 60)),
    target=Target(TARGET_HOST_PORT, families=frozenset({4})),
)


def test_dig_takes_a_server_a_name_and_a_record_type() -> None:
    req = validate_for(DIG, "web.lab.test", "@198.51.100.53 mx -p 53")
    assert req.positionals == (("server", "@198.51.100.53"), ("rtype", "MX"))
    assert command.build_argv(req) == ["dig", "-p", "53", "@198.51.100.53", "web.lab.test", "MX"]
    # Either order, and both words are optional.
    assert validate_for(DIG, "web.lab.test", "AAAA @ns.lab.test").positionals == (
        ("server", "@ns.lab.test"),
        ("rtype", "AAAA"),
    )
    assert command.build_argv(validate_for(DIG, "web.lab.test", "")) == [
        "dig",
        "web.lab.test",
        "A",
    ]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ("@-x", "must not start with '-'"),
        ("@198.51.100.53 @198.51.100.54", "given more than once"),
        ("MX A", 'Unexpected argument "A"'),
        ("BOGUS", "BOGUS is not one of"),
        ("@$(id)", "forbidden character '$'"),
        ("x@y", "x@y is not one of"),
    ],
)
def test_dig_words_are_checked(params: str, fragment: str) -> None:
    with pytest.raises(DiagnosticsInputError) as refused:
        validate_for(DIG, "web.lab.test", params)
    assert refused.value.field == "params"
    assert fragment in refused.value.message


def test_an_at_sign_is_refused_where_no_positional_takes_it() -> None:
    with pytest.raises(DiagnosticsInputError, match="forbidden character '@'"):
        validate_for(registry.TYPES["ping"], "198.51.100.10", "@x")


def test_a_required_positional_must_be_given() -> None:
    needy = DiagnosticType(
        name="needy",
        tool="needy",
        description="",
        vm_types=vm_types.ALL,
        options=options.option_table(),
        positionals=(Positional("port", "a port", str, required=True),),
    )
    with pytest.raises(DiagnosticsInputError, match='needs "port"'):
        validate_for(needy, "198.51.100.10", "")


@pytest.mark.parametrize(
    ("url", "normalized", "host"),
    [
        ("http://web.lab.test/", "http://web.lab.test/", "web.lab.test"),
        ("HTTPS://198.51.100.10:8443/a?b#c", "https://198.51.100.10:8443/a?b#c", "198.51.100.10"),
        ("http://[2001:DB8::1]:080", "http://[2001:db8::1]:80", "2001:db8::1"),
    ],
)  # fmt: skip
def test_a_url_target(url: str, normalized: str, host: str) -> None:
    req = validate_for(HTTP, url, "-m 5")
    assert req.address == normalized
    assert HTTP.target.host(req.address) == host
    assert command.build_argv(req) == ["curl", "-m", "5", "--", normalized]
    pinned = HTTP.target.with_host(req.address, "198.51.100.99")
    assert HTTP.target.host(pinned) == "198.51.100.99"


@pytest.mark.parametrize(
    "url",
    ["web.lab.test", "ftp://web.lab.test/", "http://user@web.lab.test/", "http://-x/",
     "http://web.lab.test:99999/", "http://web.lab.test/a b", "http://web.lab.test/\"", ""],
)  # fmt: skip
def test_a_bad_url_is_refused(url: str) -> None:
    with pytest.raises(DiagnosticsInputError) as refused:
        validate_for(HTTP, url, None)
    assert refused.value.field == "ipaddress"


def test_a_host_port_target() -> None:
    req = validate_for(TCP, "web.lab.test:0443", "-w 2")
    assert req.address == "web.lab.test:443"
    assert command.build_argv(req) == ["nc", "-w", "2", "--", "web.lab.test:443"]
    assert TCP.target.with_host(req.address, "198.51.100.10") == "198.51.100.10:443"
    assert TCP.target.host(req.address) == "web.lab.test"


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("web.lab.test", "not host:port"),
        ("web.lab.test:0", "not host:port"),
        ("web.lab.test:65536", "not host:port"),
        ("2001:db8::1:80", "not host:port"),
        ("[2001:db8::1]:80", "needs an IPv4 address"),
        ("-x:80", "must not start with '-'"),
    ],
)
def test_a_bad_host_port_is_refused(target: str, fragment: str) -> None:
    with pytest.raises(DiagnosticsInputError) as refused:
        validate_for(TCP, target, None)
    assert refused.value.field == "ipaddress"
    assert fragment in refused.value.message
