"""Options of a diagnostic tool: a flag, the kind of its value, and the value's bounds."""

from __future__ import annotations

import re
from types import MappingProxyType

from .errors import DiagnosticsInputError
from .frozen import Frozen, set_fields
from .tokens import FLOAT_RE, INT_RE, format_number, is_interface_name, parse_ip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from ipaddress import IPv4Address, IPv6Address
    from typing import Any

    from .diagnostic_type import DiagnosticType

    Address = IPv4Address | IPv6Address

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


class OptionSpec(Frozen):
    """One allowed command-line option of a diagnostic tool and the rule for its value.

    ``families`` are the IP versions the address kinds accept.
    """

    __slots__ = ("choices", "description", "families", "flag", "kind", "maximum", "minimum")
    flag: str
    description: str
    kind: str
    minimum: float | None
    maximum: float | None
    choices: tuple[str, ...]
    families: frozenset[int]

    def __init__(
        self,
        flag: str,
        description: str,
        kind: str = KIND_FLAG,
        minimum: float | None = None,
        maximum: float | None = None,
        choices: tuple[str, ...] = (),
        families: frozenset[int] = frozenset({4, 6}),
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"unknown option kind {kind!r}")
        if not re.fullmatch(r"-[A-Za-z0-9]", flag):
            raise ValueError(f"option flags are a dash and one character, not {flag!r}")
        set_fields(
            self,
            flag=flag,
            description=description,
            kind=kind,
            minimum=minimum,
            maximum=maximum,
            choices=choices,
            families=families,
        )

    @property
    def takes_value(self) -> bool:
        """Whether the option is followed by a value."""
        return self.kind != KIND_FLAG

    def describe_value(self) -> str:
        """Describe the accepted value in words, for messages and the UI."""
        families = "/".join(f"IPv{f}" for f in sorted(self.families))
        if self.kind == KIND_INT:
            return (
                f"an integer from {format_number(self.minimum or 0)}"
                f" to {format_number(self.maximum or 0)}"
            )
        if self.kind == KIND_FLOAT:
            return (
                f"a number from {format_number(self.minimum or 0)}"
                f" to {format_number(self.maximum or 0)}"
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
            if not INT_RE.fullmatch(value):
                raise DiagnosticsInputError("params", problem)
            number = int(value)
            if not self._in_range(number):
                raise DiagnosticsInputError("params", problem)
            return str(number)
        if self.kind == KIND_FLOAT:
            # A strict pattern: no sign, exponent, "inf"/"nan", "_" or non-ASCII digits
            # that float() would otherwise accept.
            if not FLOAT_RE.fullmatch(value) or not self._in_range(float(value)):
                raise DiagnosticsInputError("params", problem)
            return value
        if self.kind == KIND_ENUM:
            if value not in self.choices:
                raise DiagnosticsInputError("params", problem)
            return value
        if self.kind in (KIND_ADDRESS, KIND_INTERFACE_OR_ADDRESS):
            ip = parse_ip(value)
            if ip is not None and ip.version in self.families:
                return str(ip)
            if self.kind == KIND_INTERFACE_OR_ADDRESS and ip is None:
                if is_interface_name(value):
                    return value
            raise DiagnosticsInputError("params", problem)
        if self.kind == KIND_INTERFACE:
            if is_interface_name(value):
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


def option_table(*specs: OptionSpec) -> Mapping[str, OptionSpec]:
    """The options of a type by flag, read-only so that no caller can widen the rules."""
    table = {spec.flag: spec for spec in specs}
    if len(table) != len(specs):
        raise ValueError("an option is declared twice")
    return MappingProxyType(table)


def int_option(options: Mapping[str, str], flag: str, default: int) -> int:
    """An integer option's value from the options map, or ``default``."""
    return int(options[flag]) if flag in options else default


def float_option(options: Mapping[str, str], flag: str, default: float) -> float:
    """A number option's value from the options map, or ``default``."""
    return float(options[flag]) if flag in options else default


def check_family_flags(
    dtype: DiagnosticType, ip: Address | None, options: Mapping[str, str]
) -> None:
    """Refuse "-4" with an IPv6 target and "-6" with an IPv4 one."""
    if ip is None:
        return
    for flag, version in (("-4", 4), ("-6", 6)):
        if flag in options and ip.version != version:
            raise DiagnosticsInputError(
                "params",
                f'Option "{flag}" of {dtype.name} does not fit the IPv{ip.version} address "{ip}".',
            )
