"""Network diagnostics for cloud system VMs: registry, validation, runner and framing.

This ONE file is both

* the script copied to system VMs and run there as
  ``python3 -I -S diagnostics.py <type> <address> [param ...]``, and
* the module the server, the agent and the UI import
  (``from cloudiag.sysvm import diagnostics``) so that there is exactly one registry of
  diagnostic types and one set of validation rules.

Because system VMs carry a bare Python 3 and ``-I`` keeps the script's folder off
``sys.path``, this file imports the standard library only, has no side effects at import
time, and keeps to syntax that older Python 3 interpreters accept (annotations are never
evaluated thanks to ``from __future__ import annotations``).

Output framing of the script (one JSON object per line on stdout, flushed per line)::

    {"s": "out", "d": "<a line of the tool's stdout, incl. newline>"}
    {"s": "err", "d": "<a line of the tool's stderr>"}
    {"s": "exit", "code": <int>}

JSON string escaping (ASCII only) guarantees that nothing the tool prints can end a record
early or forge one: a newline or ``{"s": "exit"}`` inside the tool's output stays inside a
``"d"`` string.
"""

from __future__ import annotations

import codecs
import ipaddress
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

# The script starts once per diagnostic, so import time counts: "typing" is only needed
# by type checkers (annotations are never evaluated), and socket/struct only by arping's
# route lookup, which imports them when it runs.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

__all__ = [
    "TYPES",
    "VM_TYPES",
    "DiagnosticType",
    "DiagnosticsInputError",
    "OptionSpec",
    "Record",
    "Request",
    "build_argv",
    "choose_interface",
    "decode_record",
    "encode_record",
    "get_type",
    "main",
    "parse_params",
    "pin_destination",
    "run_tool",
    "types_for_vm",
    "validate",
    "validate_address",
]

# CloudStack's names of the system VM types.
VM_DOMAIN_ROUTER = "domainrouter"
VM_SECONDARY_STORAGE = "secondarystoragevm"
VM_CONSOLE_PROXY = "consoleproxy"
VM_TYPES = frozenset({VM_DOMAIN_ROUTER, VM_SECONDARY_STORAGE, VM_CONSOLE_PROXY})

# Bounds on raw input, checked before any parsing so that pathological input is cheap.
MAX_PARAMS_LENGTH = 512
MAX_ADDRESS_LENGTH = 253

# Value kinds of an OptionSpec.
KIND_FLAG = "flag"
KIND_INT = "int"
KIND_FLOAT = "float"
KIND_INTERFACE = "interface"
KIND_ADDRESS = "address"
KIND_INTERFACE_OR_ADDRESS = "interface_or_address"
KIND_ENUM = "enum"
_KINDS = frozenset(
    {
        KIND_FLAG,
        KIND_INT,
        KIND_FLOAT,
        KIND_INTERFACE,
        KIND_ADDRESS,
        KIND_INTERFACE_OR_ADDRESS,
        KIND_ENUM,
    }
)

# Every character any accepted token can need: flags (-c), numbers, interface names and
# IP literals. Checking this first refuses all shell, glob, quoting and control
# characters (and any non-ASCII look-alike) in one place, before any other rule runs.
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_.:-]+")
_ADDRESS_CHARS = re.compile(r"[A-Za-z0-9.:-]+")
# ASCII-only patterns; fullmatch() everywhere because "$" would accept a trailing "\n".
_INT_RE = re.compile(r"[0-9]{1,9}")
_FLOAT_RE = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,6})?")
_INTERFACE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,15}")
_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
# A part inet_aton() would read as a number (decimal, octal or hex).
_INET_ATON_PART_RE = re.compile(r"0[xX][0-9A-Fa-f]*|[0-9]+")


class DiagnosticsInputError(ValueError):
    """Refused input; ``field`` is "type", "ipaddress" or "params" (CloudStack's names)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the two-argument constructor picklable (multiprocessing, caches).
        return (type(self), (self.field, self.message))


def _describe_char(char: str) -> str:
    """Name a character so that invisible ones (newline, NUL, ...) show up in messages."""
    if char.isprintable() and not char.isspace():
        return repr(char)
    if char == " ":
        return "' ' (space)"
    return f"{char!r} (U+{ord(char):04X})"


def _first_bad_char(text: str, allowed: re.Pattern[str]) -> str | None:
    for char in text:
        if not allowed.fullmatch(char):
            return char
    return None


def _is_interface_name(value: str) -> bool:
    # "." and ".." are refused by the kernel; a leading "-" would read as an option.
    return (
        bool(_INTERFACE_RE.fullmatch(value))
        and not value.startswith("-")
        and value not in (".", "..")
    )


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse an IPv4/IPv6 literal without zone id or brackets; None if it is not one."""
    if not _ADDRESS_CHARS.fullmatch(value):
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _format_number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class OptionSpec:
    """One allowed command-line option of a diagnostic tool and the rule for its value."""

    flag: str
    description: str
    kind: str = KIND_FLAG
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    # IP versions accepted by the address kinds.
    families: frozenset[int] = frozenset({4, 6})

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown option kind {self.kind!r}")
        if not re.fullmatch(r"-[A-Za-z0-9]", self.flag):
            raise ValueError(f"option flags are a dash and one character, not {self.flag!r}")

    @property
    def takes_value(self) -> bool:
        """Whether the option is followed by a value."""
        return self.kind != KIND_FLAG

    def describe_value(self) -> str:
        """Describe the accepted value in words, for messages and the UI."""
        families = "/".join(f"IPv{f}" for f in sorted(self.families))
        if self.kind == KIND_INT:
            return (
                f"an integer from {_format_number(self.minimum or 0)}"
                f" to {_format_number(self.maximum or 0)}"
            )
        if self.kind == KIND_FLOAT:
            return (
                f"a number from {_format_number(self.minimum or 0)}"
                f" to {_format_number(self.maximum or 0)}"
            )
        if self.kind == KIND_INTERFACE:
            return "an interface name"
        if self.kind == KIND_ADDRESS:
            return f"an {families} address"
        if self.kind == KIND_INTERFACE_OR_ADDRESS:
            return f"an interface name or an {families} address"
        if self.kind == KIND_ENUM:
            return "one of " + ", ".join(self.choices)
        return "no value"

    def check(self, value: str, type_name: str = "") -> str:
        """Return the normalized value, or raise DiagnosticsInputError(field="params")."""
        where = f" of {type_name}" if type_name else ""
        problem = f'Option "{self.flag}"{where} needs {self.describe_value()}, got "{value}"'
        if self.kind == KIND_INT:
            if not _INT_RE.fullmatch(value):
                raise DiagnosticsInputError("params", problem)
            number = int(value)
            if not self._in_range(number):
                raise DiagnosticsInputError("params", problem)
            return str(number)
        if self.kind == KIND_FLOAT:
            # A strict pattern: no sign, exponent, "inf"/"nan", "_" or non-ASCII digits
            # that float() would otherwise accept.
            if not _FLOAT_RE.fullmatch(value) or not self._in_range(float(value)):
                raise DiagnosticsInputError("params", problem)
            return value
        if self.kind == KIND_ENUM:
            if value not in self.choices:
                raise DiagnosticsInputError("params", problem)
            return value
        if self.kind in (KIND_ADDRESS, KIND_INTERFACE_OR_ADDRESS):
            ip = _parse_ip(value)
            if ip is not None and ip.version in self.families:
                return str(ip)
            if self.kind == KIND_INTERFACE_OR_ADDRESS and ip is None:
                if _is_interface_name(value):
                    return value
            raise DiagnosticsInputError("params", problem)
        if self.kind == KIND_INTERFACE:
            if _is_interface_name(value):
                return value
            raise DiagnosticsInputError("params", problem)
        raise DiagnosticsInputError("params", f'Option "{self.flag}"{where} takes no value')

    def _in_range(self, number: float) -> bool:
        if self.minimum is not None and number < self.minimum:
            return False
        return not (self.maximum is not None and number > self.maximum)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (for the API and the UI)."""
        return {
            "flag": self.flag,
            "description": self.description,
            "kind": self.kind,
            "takes_value": self.takes_value,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "choices": list(self.choices),
            "families": sorted(self.families),
            "value": self.describe_value() if self.takes_value else None,
        }


@dataclass(frozen=True)
class DiagnosticType:
    """A diagnostic command, declared once for the API, the agent, the script and the UI."""

    name: str
    tool: str
    description: str
    vm_types: frozenset[str]
    options: Mapping[str, OptionSpec]
    # Added when the user did not give the flag, e.g. (("-c", "4"),).
    default_options: tuple[tuple[str, str], ...] = ()
    # Always added in front, e.g. ("-6",) for ping6; the user may not give them.
    forced_options: tuple[str, ...] = ()
    # IP versions of a literal target address; host names are always allowed.
    address_families: frozenset[int] = frozenset({4, 6})
    # Default time limit (seconds) for the estimate of the options.
    time_limit: float = 120.0
    # Groups of flags of which at most one may be given.
    conflicts: tuple[frozenset[str], ...] = ()
    # Whether the tool needs "-I <interface>" chosen from the routing table when absent.
    auto_interface: bool = False
    # Whether the tool accepts "--" before the address (all three do on Debian).
    end_of_options: bool = True
    # Upper bound of the run time (seconds) for the given options (defaults included).
    estimate: Callable[[Mapping[str, str]], float] = field(
        default=lambda options: 0.0, compare=False, repr=False
    )

    def allowed_flags(self) -> list[str]:
        """The allowed flags, sorted (as in error messages)."""
        return sorted(self.options)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (for the API and the UI)."""
        return {
            "name": self.name,
            "tool": self.tool,
            "description": self.description,
            "vm_types": sorted(self.vm_types),
            "options": [self.options[f].to_dict() for f in self.allowed_flags()],
            "default_options": [list(pair) for pair in self.default_options],
            "forced_options": list(self.forced_options),
            "address_families": sorted(self.address_families),
            "time_limit": self.time_limit,
            "conflicts": [sorted(group) for group in self.conflicts],
        }


def _options(*specs: OptionSpec) -> Mapping[str, OptionSpec]:
    table = {spec.flag: spec for spec in specs}
    if len(table) != len(specs):
        raise ValueError("an option is declared twice")
    # Read-only so that no caller can widen the rules at run time.
    return MappingProxyType(table)


def _int(options: Mapping[str, str], flag: str, default: int) -> int:
    return int(options[flag]) if flag in options else default


def _float(options: Mapping[str, str], flag: str, default: float) -> float:
    return float(options[flag]) if flag in options else default


def _estimate_ping(options: Mapping[str, str]) -> float:
    # With -w (deadline) ping stops at the deadline whatever else happens. Otherwise it
    # sends count probes one interval apart and then lingers up to -W (10 s) for replies.
    if "-w" in options:
        return float(options["-w"])
    count = _int(options, "-c", 4)
    return count * _float(options, "-i", 1.0) + _float(options, "-W", 10.0)


def _estimate_traceroute(options: Mapping[str, str]) -> float:
    # Worst case: every probe of every hop waits the full -w (default 5 s), one by one.
    hops = _int(options, "-m", 30) - _int(options, "-f", 1) + 1
    return max(hops, 0) * _int(options, "-q", 3) * _float(options, "-w", 5.0)


def _estimate_arping(options: Mapping[str, str]) -> float:
    # -w is a hard deadline; without it arping sends count requests a second apart.
    if "-w" in options:
        return float(options["-w"])
    return _int(options, "-c", 4) + 1.0


_PING_OPTIONS = (
    OptionSpec("-c", "Stop after sending this many packets", KIND_INT, 1, 100),
    OptionSpec("-i", "Seconds between packets", KIND_FLOAT, 0.2, 60),
    OptionSpec("-s", "Number of data bytes to send", KIND_INT, 0, 65507),
    OptionSpec("-W", "Seconds to wait for a response", KIND_FLOAT, 0.1, 60),
    OptionSpec("-w", "Deadline: seconds before ping exits", KIND_INT, 1, 600),
    OptionSpec("-t", "IP time to live", KIND_INT, 1, 255),
    OptionSpec("-I", "Source interface or address", KIND_INTERFACE_OR_ADDRESS),
    OptionSpec("-n", "Numeric output only"),
    OptionSpec("-q", "Quiet output: only the summary"),
)
_PING_FAMILY = (
    OptionSpec("-4", "Use IPv4 only"),
    OptionSpec("-6", "Use IPv6 only"),
)
_TRACEROUTE_OPTIONS = (
    OptionSpec("-m", "Maximum number of hops (max TTL)", KIND_INT, 1, 64),
    OptionSpec("-q", "Number of probes per hop", KIND_INT, 1, 10),
    OptionSpec("-w", "Seconds to wait for a probe", KIND_FLOAT, 0.1, 60),
    OptionSpec("-f", "First TTL", KIND_INT, 1, 64),
    OptionSpec("-n", "Do not resolve addresses to names"),
    OptionSpec("-I", "Use ICMP ECHO probes"),
    OptionSpec("-T", "Use TCP SYN probes"),
    OptionSpec("-U", "Use UDP probes to a fixed port"),
    OptionSpec("-p", "Destination port", KIND_INT, 1, 65535),
    OptionSpec("-i", "Network interface to use", KIND_INTERFACE),
)
_TRACEROUTE_FAMILY = (
    OptionSpec("-4", "Use IPv4 only"),
    OptionSpec("-6", "Use IPv6 only"),
)
_TRACEROUTE_CONFLICTS = (frozenset({"-I", "-T", "-U"}),)

_ALL_VMS = VM_TYPES
_ROUTERS = frozenset({VM_DOMAIN_ROUTER})

TYPES: Mapping[str, DiagnosticType] = MappingProxyType(
    {
        t.name: t
        for t in (
            DiagnosticType(
                name="ping",
                tool="ping",
                description="Send ICMP echo requests and report replies",
                vm_types=_ALL_VMS,
                options=_options(*_PING_OPTIONS, *_PING_FAMILY),
                default_options=(("-c", "4"),),
                time_limit=120.0,
                conflicts=(frozenset({"-4", "-6"}),),
                estimate=_estimate_ping,
            ),
            DiagnosticType(
                name="traceroute",
                tool="traceroute",
                description="Show the route packets take to a host",
                vm_types=_ALL_VMS,
                options=_options(*_TRACEROUTE_OPTIONS, *_TRACEROUTE_FAMILY),
                default_options=(("-m", "20"),),
                time_limit=600.0,  # -m 30 -q 3 -w 5 (450 s) must fit
                conflicts=(frozenset({"-4", "-6"}), *_TRACEROUTE_CONFLICTS),
                estimate=_estimate_traceroute,
            ),
            DiagnosticType(
                name="arping",
                tool="arping",
                description="Send ARP requests to a neighbour on the local link",
                vm_types=_ALL_VMS,
                options=_options(
                    OptionSpec("-c", "Number of requests to send", KIND_INT, 1, 100),
                    OptionSpec("-w", "Deadline: seconds before arping exits", KIND_INT, 1, 600),
                    OptionSpec("-I", "Network interface to use", KIND_INTERFACE),
                    OptionSpec("-D", "Duplicate address detection mode"),
                    OptionSpec("-U", "Unsolicited ARP mode (update neighbours)"),
                    OptionSpec("-A", "Like -U, with ARP REPLY packets"),
                    OptionSpec("-s", "IPv4 source address", KIND_ADDRESS, families=frozenset({4})),
                ),
                default_options=(("-c", "4"),),
                address_families=frozenset({4}),
                time_limit=120.0,
                conflicts=(frozenset({"-D", "-U", "-A"}),),
                auto_interface=True,
                estimate=_estimate_arping,
            ),
            DiagnosticType(
                name="ping6",
                tool="ping",
                description="Send ICMPv6 echo requests (ping -6)",
                vm_types=_ROUTERS,
                options=_options(
                    *(o for o in _PING_OPTIONS if o.flag != "-I"),
                    OptionSpec(
                        "-I",
                        "Source interface or IPv6 address",
                        KIND_INTERFACE_OR_ADDRESS,
                        families=frozenset({6}),
                    ),
                ),
                default_options=(("-c", "4"),),
                forced_options=("-6",),
                address_families=frozenset({6}),
                time_limit=120.0,
                estimate=_estimate_ping,
            ),
            DiagnosticType(
                name="traceroute6",
                tool="traceroute",
                description="Show the IPv6 route packets take to a host (traceroute -6)",
                vm_types=_ROUTERS,
                options=_options(*_TRACEROUTE_OPTIONS),
                default_options=(("-m", "20"),),
                forced_options=("-6",),
                address_families=frozenset({6}),
                time_limit=600.0,  # -m 30 -q 3 -w 5 (450 s) must fit
                conflicts=_TRACEROUTE_CONFLICTS,
                estimate=_estimate_traceroute,
            ),
        )
    }
)


@dataclass(frozen=True)
class Request:
    """A validated diagnostics request: safe to turn into an argv with build_argv()."""

    type: DiagnosticType
    address: str
    params: list[str]
    estimated_seconds: float


def get_type(name: str) -> DiagnosticType:
    """Return the diagnostic type called ``name`` (case-insensitive)."""
    dtype = TYPES.get(name.lower()) if isinstance(name, str) else None
    if dtype is None:
        raise DiagnosticsInputError("type", f"{name} Is not a valid diagnostics command type.")
    return dtype


def types_for_vm(vm_type: str) -> list[DiagnosticType]:
    """The diagnostic types a system VM type supports ([] for an unknown VM type)."""
    wanted = vm_type.lower()
    return [t for t in TYPES.values() if wanted in t.vm_types]


def _looks_like_inet_aton(name: str) -> bool:
    # getaddrinfo() falls back to inet_aton(), which reads "0x7f000001", "127.1" or
    # "017.0.0.1" as addresses; such names would slip past any check done on literals.
    parts = name.rstrip(".").split(".")
    return len(parts) <= 4 and all(_INET_ATON_PART_RE.fullmatch(p) for p in parts)


def validate_address(address: str) -> str:
    """Check a target: an IPv4/IPv6 literal or an RFC 1123 host name.

    Returns the address (IP literals in their canonical form). Raises
    DiagnosticsInputError(field="ipaddress") for anything else.
    """
    if not isinstance(address, str) or not address:
        raise DiagnosticsInputError("ipaddress", "An IP address or host name is required.")
    if len(address) > MAX_ADDRESS_LENGTH:
        raise DiagnosticsInputError(
            "ipaddress",
            f"Address is too long ({len(address)} characters, at most {MAX_ADDRESS_LENGTH}).",
        )
    bad = _first_bad_char(address, _ADDRESS_CHARS)
    if bad is not None:
        raise DiagnosticsInputError(
            "ipaddress",
            f"Address contains a forbidden character {_describe_char(bad)}; "
            "use an IPv4/IPv6 address or a host name.",
        )
    if address.startswith("-"):
        raise DiagnosticsInputError("ipaddress", "Address must not start with '-'.")
    if ":" in address:
        ip = _parse_ip(address)
        if not isinstance(ip, ipaddress.IPv6Address):
            raise DiagnosticsInputError("ipaddress", f'"{address}" is not a valid IPv6 address.')
        return str(ip)
    ip = _parse_ip(address)
    if ip is not None:
        return str(ip)
    name = address[:-1] if address.endswith(".") else address
    labels = name.split(".")
    for label in labels:
        if not _LABEL_RE.fullmatch(label):
            raise DiagnosticsInputError(
                "ipaddress",
                f'"{address}" is not a valid IP address or host name '
                "(labels are 1-63 letters, digits or '-', not starting or ending with '-').",
            )
    if labels[-1].isdigit() or _looks_like_inet_aton(name):
        raise DiagnosticsInputError(
            "ipaddress",
            f'"{address}" is not a valid IP address or host name '
            "(write IPv4 addresses as four decimal numbers, e.g. 192.0.2.1).",
        )
    return address


def _split_params(params: str | Sequence[str] | None) -> list[str]:
    if params is None:
        return []
    if isinstance(params, str):
        pieces: Sequence[str] = [params]
    elif isinstance(params, Sequence) and all(isinstance(p, str) for p in params):
        pieces = params
    else:
        raise DiagnosticsInputError("params", "Parameters must be a string or a list of strings.")
    if sum(len(p) + 1 for p in pieces) > MAX_PARAMS_LENGTH:
        raise DiagnosticsInputError(
            "params", f"Parameters are too long (at most {MAX_PARAMS_LENGTH} characters)."
        )
    tokens: list[str] = []
    for piece in pieces:
        # Only ASCII spaces separate words: tabs, newlines and other blanks are refused
        # below instead of being silently treated as separators.
        for token in piece.split(" "):
            if not token:
                continue
            bad = _first_bad_char(token, _TOKEN_CHARS)
            if bad is not None:
                raise DiagnosticsInputError(
                    "params",
                    f'Parameter "{token}" contains a forbidden character {_describe_char(bad)};'
                    " parameters are options and values made of letters, digits and . _ : -",
                )
            tokens.append(token)
    return tokens


def parse_params(dtype: DiagnosticType, params: str | Sequence[str] | None) -> list[str]:
    """Check the options of ``dtype`` and return them as a normalized argv fragment.

    ``params`` is one string (words separated by ASCII spaces) or a list of words.
    Raises DiagnosticsInputError(field="params") naming the offending option.
    """
    tokens = _split_params(params)
    allowed = ", ".join(dtype.allowed_flags())
    seen: dict[str, str] = {}
    result: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if not token.startswith("-"):
            raise DiagnosticsInputError(
                "params",
                f'Unexpected argument "{token}" for {dtype.name}: parameters are options; '
                f"allowed: {allowed}",
            )
        spec = dtype.options.get(token)
        if spec is None:
            hint = ""
            glued = dtype.options.get(token[:2])
            if glued is not None and glued.takes_value and len(token) > 2:
                hint = f' (write the value after a space: "{token[:2]} {token[2:]}")'
            if token in dtype.forced_options:
                hint = f" ({dtype.name} always uses {token})"
            raise DiagnosticsInputError(
                "params",
                f'Option "{token}" is not allowed for {dtype.name}; allowed: {allowed}{hint}',
            )
        if token in seen:
            raise DiagnosticsInputError(
                "params", f'Option "{token}" is given more than once for {dtype.name}.'
            )
        value = ""
        if spec.takes_value:
            if index >= len(tokens):
                raise DiagnosticsInputError(
                    "params",
                    f'Option "{token}" of {dtype.name} needs a value: {spec.describe_value()}',
                )
            value = spec.check(tokens[index], dtype.name)
            index += 1
            result.extend((token, value))
        else:
            result.append(token)
        seen[token] = value
    for group in dtype.conflicts:
        given = sorted(group.intersection(seen))
        if len(given) > 1:
            raise DiagnosticsInputError(
                "params",
                f"Options {' and '.join(given)} cannot be used together for {dtype.name}.",
            )
    return result


def _options_of(params: Sequence[str], dtype: DiagnosticType) -> dict[str, str]:
    """Map flag -> value ("" for flags) of normalized params plus the type's defaults."""
    options: dict[str, str] = {}
    index = 0
    while index < len(params):
        flag = params[index]
        spec = dtype.options[flag]
        if spec.takes_value:
            options[flag] = params[index + 1]
            index += 2
        else:
            options[flag] = ""
            index += 1
    for flag, value in dtype.default_options:
        options.setdefault(flag, value)
    return options


def validate(
    type_name: str,
    address: str,
    params: str | Sequence[str] | None,
    *,
    time_limit: float | None = None,
) -> Request:
    """Validate a whole request; raise DiagnosticsInputError naming the bad field.

    ``time_limit`` (seconds) overrides the type's limit for the estimated duration.
    """
    dtype = get_type(type_name)
    target = validate_address(address)
    ip = _parse_ip(target)
    if ip is not None and ip.version not in dtype.address_families:
        wanted = " or ".join(f"IPv{f}" for f in sorted(dtype.address_families))
        raise DiagnosticsInputError(
            "ipaddress",
            f"{dtype.name} needs an {wanted} address or a host name, got IPv{ip.version} "
            f'address "{target}".',
        )
    argv = parse_params(dtype, params)
    options = _options_of(argv, dtype)
    if ip is not None:
        for flag, version in (("-4", 4), ("-6", 6)):
            if flag in options and ip.version != version:
                raise DiagnosticsInputError(
                    "params",
                    f'Option "{flag}" of {dtype.name} does not fit the IPv{ip.version} '
                    f'address "{target}".',
                )
    if "-f" in options and "-m" in options and int(options["-f"]) > int(options["-m"]):
        raise DiagnosticsInputError(
            "params", f'Option "-f" of {dtype.name} must not be larger than "-m".'
        )
    estimate = float(dtype.estimate(options))
    limit = dtype.time_limit if time_limit is None else float(time_limit)
    if estimate > limit:
        raise DiagnosticsInputError(
            "params",
            f"The options of {dtype.name} may take up to {_format_number(estimate)} s, more "
            f"than the limit of {_format_number(limit)} s; lower the count, wait or hop "
            "options.",
        )
    return Request(type=dtype, address=target, params=argv, estimated_seconds=estimate)


def build_argv(req: Request, *, interface: str | None = None) -> list[str]:
    """The tool's argv: forced options, user options, defaults, then ``--`` and the address.

    ``interface`` is used as ``-I`` for types that pick their interface from the routing
    table (arping) when the user gave none.
    """
    dtype = req.type
    argv = [dtype.tool, *dtype.forced_options, *req.params]
    for flag, value in dtype.default_options:
        if flag not in req.params:
            argv.extend((flag, value))
    if interface is not None and dtype.auto_interface and "-I" not in req.params:
        if not _is_interface_name(interface):
            raise ValueError(f"not an interface name: {interface!r}")
        argv.extend(("-I", interface))
    # "--" ends option parsing in all three Debian tools (iputils ping/arping, traceroute
    # 2.x); validate_address() also makes sure the address never starts with "-".
    if dtype.end_of_options:
        argv.append("--")
    argv.append(req.address)
    return argv


# --------------------------------------------------------------------------- interface


def _tool_env() -> dict[str, str]:
    # A small, predictable environment: C locale for parseable output, and the sbin
    # folders on PATH because traceroute and ip live there and a login PATH may lack them.
    path = os.environ.get("PATH", "") or "/usr/local/bin:/usr/bin:/bin"
    parts = path.split(os.pathsep)
    for extra in ("/usr/local/sbin", "/usr/sbin", "/sbin"):
        if extra not in parts:
            parts.append(extra)
    return {"PATH": os.pathsep.join(parts), "LC_ALL": "C", "LANG": "C"}


def _run_quiet(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=5,
            env=_tool_env(),
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")


def _route_dev_ip(target: str) -> tuple[str, bool] | None:
    """(device, is_local) from ``ip route get``, JSON first, then the text form."""
    text = _run_quiet(["ip", "-j", "route", "get", target])
    if text is not None:
        try:
            routes = json.loads(text)
        except ValueError:
            routes = None
        if isinstance(routes, list) and routes and isinstance(routes[0], dict):
            dev = routes[0].get("dev")
            if isinstance(dev, str):
                return dev, routes[0].get("type") == "local"
    # Old iproute2 without -j: "192.0.2.1 dev eth0 src 192.0.2.2 uid 0".
    text = _run_quiet(["ip", "route", "get", target])
    if text is not None:
        words = text.split()
        if "dev" in words[:-1]:
            return words[words.index("dev") + 1], bool(words) and words[0] == "local"
    return None


def _route_dev_proc(target: str, path: str = "/proc/net/route") -> str | None:
    """Longest-prefix match of an IPv4 address in /proc/net/route (no ``ip`` needed)."""
    import socket
    import struct

    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()[1:]
    except OSError:
        return None
    # /proc prints the addresses as the host stores them, so use native byte order too.
    (addr,) = struct.unpack("=I", socket.inet_aton(target))
    best: tuple[int, int, str] | None = None
    for line in lines:
        cols = line.split()
        if len(cols) < 8:
            continue
        try:
            dest, flags, metric, mask = (int(cols[i], 16) for i in (1, 3, 6, 7))
        except ValueError:
            continue
        if not flags & 1 or addr & mask != dest:  # RTF_UP
            continue
        prefix = bin(mask).count("1")
        key = (prefix, -metric, cols[0])
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None


def _owner_of_local(target: str) -> str | None:
    """The interface carrying a local IPv4 address (for arping one's own address)."""
    text = _run_quiet(["ip", "-j", "-4", "addr", "show"])
    if text is None:
        return None
    try:
        links = json.loads(text)
    except ValueError:
        return None
    for link in links if isinstance(links, list) else []:
        for info in link.get("addr_info", []) if isinstance(link, dict) else []:
            if isinstance(info, dict) and info.get("local") == target:
                name = link.get("ifname")
                return name if isinstance(name, str) and name != "lo" else None
    return None


def choose_interface(address: str) -> str | None:
    """Pick the interface the routing table uses for ``address`` (IPv4 literal or name).

    Used for arping, which needs ``-I`` on hosts with several interfaces. Returns None
    when nothing suitable is found, leaving the choice to the tool.
    """
    import socket

    ip = _parse_ip(address)
    if ip is None:
        try:
            infos = socket.getaddrinfo(address, None, socket.AF_INET, socket.SOCK_DGRAM)
        except (OSError, UnicodeError):
            return None
        if not infos:
            return None
        target = str(infos[0][4][0])
    elif ip.version == 4:
        target = str(ip)
    else:
        return None
    found = _route_dev_ip(target)
    dev = found[0] if found else _route_dev_proc(target)
    if dev == "lo" or (found is not None and found[1]):
        dev = _owner_of_local(target)
    if dev is None or not _is_interface_name(dev):
        return None
    return dev


# --------------------------------------------------------------------------- framing


@dataclass(frozen=True)
class Record:
    """One framed record: stream "out"/"err" with text ``data``, or "exit" with ``code``."""

    stream: str
    data: str = ""
    code: int | None = None


def encode_record(stream: str, data: str = "", code: int | None = None) -> bytes:
    """Encode one record as a single line of ASCII JSON (newline-terminated)."""
    obj: dict[str, Any]
    if stream == "exit":
        obj = {"s": "exit", "code": int(code if code is not None else -1)}
    elif stream in ("out", "err"):
        obj = {"s": stream, "d": data}
    else:
        raise ValueError(f"unknown stream {stream!r}")
    # ensure_ascii escapes every newline, U+2028 and other oddity inside the strings,
    # so a record is always exactly one line whatever the tool printed.
    return (json.dumps(obj, ensure_ascii=True) + "\n").encode("ascii")


def decode_record(line: bytes | str) -> Record | None:
    """Decode one framed line; None for a truncated, malformed or unknown line."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="replace")
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    stream = obj.get("s")
    if stream in ("out", "err"):
        data = obj.get("d")
        return Record(stream, data) if isinstance(data, str) else None
    if stream == "exit":
        code = obj.get("code")
        # bool is an int subclass; true/false is not an exit code.
        if isinstance(code, int) and not isinstance(code, bool):
            return Record("exit", "", code)
    return None


class _RecordWriter:
    """Writes records, flushing each; stops quietly once the reader has gone away."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.broken = False

    def write(self, stream: str, data: str = "", code: int | None = None) -> None:
        if self.broken:
            return
        try:
            self._out.write(encode_record(stream, data, code))
            self._out.flush()
        except (BrokenPipeError, ValueError, OSError):
            # Nobody is listening any more (agent killed, ssh gone): stop writing; the
            # caller notices ``broken`` and stops the tool.
            self.broken = True


class _LineSplitter:
    """Splits a byte stream into text lines, decoding UTF-8 incrementally."""

    MAX_LINE = 16384

    def __init__(self) -> None:
        self._buf = b""
        # Incremental so that a multi-byte character cut between two reads survives.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        lines: list[str] = []
        while True:
            cut = self._buf.find(b"\n", 0, self.MAX_LINE)
            if cut < 0:
                # Cap very long lines (binary junk) so records and memory stay bounded.
                if len(self._buf) < self.MAX_LINE:
                    break
                cut = self.MAX_LINE - 1
            piece, self._buf = self._buf[: cut + 1], self._buf[cut + 1 :]
            text = self._decoder.decode(piece)
            if text:
                lines.append(text)
        return lines

    def finish(self) -> list[str]:
        text = self._decoder.decode(self._buf, final=True)
        self._buf = b""
        return [text] if text else []


_FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# How long a child that was asked to stop may take before it is killed.
_STOP_GRACE = 1.0


def run_tool(
    argv: Sequence[str],
    out: IO[bytes] | None = None,
    *,
    hard_limit: float | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run ``argv`` (no shell) and stream its output as framed records to ``out``.

    Returns the tool's exit code (negative signal number if killed), or -1 if it could
    not be started. The exit record is always the last one written. SIGTERM, SIGINT and
    SIGHUP are forwarded to the tool (when called from the main thread); ``hard_limit``
    seconds after the start the tool is killed whatever it is doing.
    """
    writer = _RecordWriter(out if out is not None else sys.stdout.buffer)
    argv = list(argv)
    state: dict[str, Any] = {"child": None, "signal": None}

    def on_signal(signum: int, frame: object) -> None:
        state["signal"] = signum
        child = state["child"]
        if child is not None:
            try:
                # send_signal() does nothing once the child has been reaped.
                child.send_signal(signum)
            except OSError:
                pass

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in _FORWARDED_SIGNALS:
            previous[signum] = signal.signal(signum, on_signal)
    try:
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(env) if env is not None else _tool_env(),
                close_fds=True,
            )
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            writer.write("err", f"cannot run {argv[0] if argv else '(nothing)'}: {reason}\n")
            writer.write("exit", code=-1)
            return -1
        state["child"] = child
        if state["signal"] is not None:
            # A signal arrived while the tool was being started.
            child.send_signal(state["signal"])
        code = _pump(child, writer, state, hard_limit)
        writer.write("exit", code=code)
        return code
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _pump(
    child: subprocess.Popen[bytes],
    writer: _RecordWriter,
    state: dict[str, Any],
    hard_limit: float | None,
) -> int:
    """Forward the child's output line by line until it has exited; return its code."""
    assert child.stdout is not None and child.stderr is not None
    started = time.monotonic()
    splitters = {"out": _LineSplitter(), "err": _LineSplitter()}
    selector = selectors.DefaultSelector()
    selector.register(child.stdout, selectors.EVENT_READ, "out")
    selector.register(child.stderr, selectors.EVENT_READ, "err")
    kill_at: float | None = None
    exited_at: float | None = None
    try:
        while selector.get_map():
            for key, _ in selector.select(timeout=0.2):
                stream = str(key.data)
                data = os.read(key.fd, 65536)
                if data:
                    lines = splitters[stream].feed(data)
                else:
                    selector.unregister(key.fileobj)
                    lines = splitters[stream].finish()
                for line in lines:
                    writer.write(stream, line)
            now = time.monotonic()
            if hard_limit is not None and now - started > hard_limit and kill_at is None:
                writer.write(
                    "err", f"[cloudiag] hard time limit of {hard_limit:g} s reached; killed\n"
                )
                child.kill()
                kill_at = now
            if kill_at is None and (state["signal"] is not None or writer.broken):
                # The signal handler has already forwarded the signal (SIGINT lets ping
                # print its summary); a vanished reader gets the tool a SIGTERM. Either
                # way the tool is killed if it is still there after the grace period.
                if state["signal"] is None and child.poll() is None:
                    child.terminate()
                kill_at = now + _STOP_GRACE
            if kill_at is not None and now >= kill_at and child.poll() is None:
                child.kill()
            # A tool that exited but left a descendant holding its pipes: stop waiting.
            if child.poll() is not None:
                exited_at = exited_at or now
                if now - exited_at > 2.0:
                    break
    finally:
        selector.close()
        child.stdout.close()
        child.stderr.close()
    return child.wait()


def _exit_status(code: int) -> int:
    """Process exit status of the script for the tool's code (as a shell would)."""
    if code == -1:
        return 127
    if code < 0:
        return 128 - code
    return min(code, 255)


#: The agent passes the operator's time limit here when it differs from the type's default.
TIME_LIMIT_ENV = "CLOUDIAG_TIME_LIMIT"
MAX_TIME_LIMIT = 3600.0


def _time_limit_from_env() -> float | None:
    """The time limit the caller set, if it is a sane number of seconds."""
    raw = os.environ.get(TIME_LIMIT_ENV, "")
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if 0 < value <= MAX_TIME_LIMIT else None


#: The operator's forbidden destinations, comma-separated networks (from the agent).
DENIED_NETWORKS_ENV = "CLOUDIAG_DENIED_NETWORKS"


def parse_networks(
    specs: Sequence[str],
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Networks from their text form; ValueError names a malformed one."""
    networks = []
    for spec in specs:
        try:
            networks.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not a network: {spec!r}") from None
    return networks


def denied_destination(
    address: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> str | None:
    """Why the operator's policy forbids this IP literal, or None (also for a host name).

    A name is judged on the VM, where it is resolved: pin_destination() checks what it
    resolves to and hands the tool that very address.
    """
    if not networks or _parse_ip(address) is None:
        return None
    return _denied(address, [address], networks)


def _resolve(name: str, family: int = 0) -> list[str]:
    """The addresses of a host name, in the order a tool would try them (OSError if none)."""
    import socket  # Only here: most runs need no resolution.

    infos = socket.getaddrinfo(name, None, family, socket.SOCK_DGRAM)
    found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not found:
        raise OSError(f"no address for {name}")
    return found


def _denied(
    shown_as: str,
    addresses: Sequence[str],
    networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str | None:
    candidates = [ipaddress.ip_address(a.split("%")[0]) for a in addresses]
    # An IPv4-mapped IPv6 address reaches the IPv4 host: judge it as that host too.
    candidates += [ip.ipv4_mapped for ip in candidates if ip.version == 6 and ip.ipv4_mapped]
    for ip in candidates:
        for net in networks:
            if ip.version == net.version and ip in net:
                shown = shown_as if str(ip) == shown_as else f"{shown_as} ({ip})"
                return f"Destination {shown} is in {net}, which the operator does not allow"
    return None


def _family_of(req: Request) -> int:
    """The address family the tool would resolve a name in (0: either)."""
    import socket

    flags = {*req.type.forced_options, *req.params}
    if "-4" in flags or req.type.address_families == frozenset({4}):
        return socket.AF_INET
    if "-6" in flags or req.type.address_families == frozenset({6}):
        return socket.AF_INET6
    return 0


def pin_destination(
    req: Request, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> Request:
    """The request aimed at one checked address when the operator denies some networks.

    A literal is checked as it is. A host name is resolved once, here: every address it has
    must be allowed, and the tool gets the first one (the one it would have picked) instead
    of the name. Given the name, the tool would resolve it again, and a second answer may
    differ from the one checked (DNS rebinding). Raises DiagnosticsInputError when the
    destination is refused or the name does not resolve.
    """
    if not networks:
        return req
    if _parse_ip(req.address) is not None:
        addresses = [req.address]
    else:
        try:
            addresses = _resolve(req.address, _family_of(req))
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise DiagnosticsInputError(
                "ipaddress", f"{req.address} cannot be resolved ({reason})."
            ) from None
    denied = _denied(req.address, addresses, networks)
    if denied:
        raise DiagnosticsInputError("ipaddress", denied)
    return replace(req, address=addresses[0])


def _denied_from_env() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    raw = os.environ.get(DENIED_NETWORKS_ENV, "")
    try:
        return parse_networks([x for x in raw.split(",") if x.strip()])
    except ValueError:
        # A policy we cannot read must not silently allow everything.
        return parse_networks(["0.0.0.0/0", "::/0"])


def main(argv: Sequence[str] | None = None) -> int:
    """Script entry point: ``diagnostics.py <type> <address> [param ...]``.

    Validates again (the second wall, the server validated first), then runs the tool.
    Returns the process exit status: 2 for refused input.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    writer = _RecordWriter(sys.stdout.buffer)
    if len(args) < 2:
        writer.write("err", "usage: diagnostics.py <type> <address> [param ...]\n")
        writer.write("exit", code=-1)
        return 2
    limit = _time_limit_from_env()
    try:
        req = validate(args[0], args[1], args[2:], time_limit=limit)
    except DiagnosticsInputError as exc:
        writer.write("err", f"{exc.field}: {exc.message}\n")
        writer.write("exit", code=-1)
        return 2
    try:
        pinned = pin_destination(req, _denied_from_env())
    except DiagnosticsInputError as exc:
        writer.write("err", f"{exc.field}: {exc.message}\n")
        writer.write("exit", code=-1)
        return 2
    if pinned.address != req.address:
        # The tool prints the address only: say which name it stands for.
        writer.write("err", f"[cloudiag] {req.address} is {pinned.address}\n")
        req = pinned
    interface = None
    if req.type.auto_interface and "-I" not in req.params:
        interface = choose_interface(req.address)
    # The validated estimate excludes name resolution; leave a margin before killing.
    code = run_tool(
        build_argv(req, interface=interface),
        sys.stdout.buffer,
        hard_limit=(req.type.time_limit if limit is None else limit) + 30.0,
    )
    try:
        sys.stdout.flush()
    except OSError:
        # The reader went away: point stdout at /dev/null so that the interpreter's
        # final flush does not print a BrokenPipeError traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return _exit_status(code)


if __name__ == "__main__":
    sys.exit(main())
