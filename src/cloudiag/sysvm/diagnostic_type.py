"""The declaration of one diagnostic type: everything the server, agent, VM and UI need."""

from __future__ import annotations

from dataclasses import dataclass, field

from .targets import ADDRESS, Target

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from ipaddress import IPv4Address, IPv6Address
    from typing import Any

    from .options import OptionSpec
    from .targets import Positional
    from .validate import Request

    #: An extra rule on the target's IP (None for a name) and the options (defaults in).
    ExtraCheck = Callable[
        ["DiagnosticType", IPv4Address | IPv6Address | None, Mapping[str, str]], None
    ]
    #: How a type turns a validated request (and a chosen interface) into the tool's argv.
    ArgvBuilder = Callable[[Request, str | None], list[str]]


def _no_extra_check(dtype: DiagnosticType, ip: object, options: Mapping[str, str]) -> None:
    """The default: the generic rules are all there is."""


def _no_estimate(options: Mapping[str, str]) -> float:
    return 0.0


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
    # What the ipaddress field holds (an address by default) and its IP versions.
    target: Target = ADDRESS
    # Positional words of params besides the options (none for ping and friends).
    positionals: tuple[Positional, ...] = ()
    # Default time limit (seconds) for the estimate of the options.
    time_limit: float = 120.0
    # Groups of flags of which at most one may be given.
    conflicts: tuple[frozenset[str], ...] = ()
    # Whether the tool needs "-I <interface>" chosen from the routing table when absent.
    auto_interface: bool = False
    # Whether the tool accepts "--" before the target (ping, traceroute, arping do).
    end_of_options: bool = True
    # Upper bound of the run time (seconds) for the given options (defaults included).
    estimate: Callable[[Mapping[str, str]], float] = field(
        default=_no_estimate, compare=False, repr=False
    )
    extra_check: ExtraCheck = field(default=_no_extra_check, compare=False, repr=False)
    # The type's own argv order; None: options, "--", target, positionals.
    argv: ArgvBuilder | None = field(default=None, compare=False, repr=False)
    # The module cloudiag/parsers/<parser>.py (with parse_<parser>) that summarises it.
    parser: str = ""
    # The web UI's summary js/diag/summaries/<ui_summary>.js.
    ui_summary: str = "generic"
    # Where the type comes in lists (listDiagnosticsTypes, messages): lower first.
    order: int = 100

    @property
    def address_families(self) -> frozenset[int]:
        """IP versions of a literal target host; host names are always allowed."""
        return self.target.families

    @property
    def parser_name(self) -> str:
        """The parser module's name (the type's own name unless it declares another)."""
        return self.parser or self.name

    def allowed_flags(self) -> list[str]:
        """The allowed flags, sorted (as in error messages)."""
        return sorted(self.options)

    def extra_token_chars(self) -> str:
        """Characters the positionals' prefixes add to the allowed ones of params."""
        return "".join(sorted({c for p in self.positionals for c in p.prefix}))

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
            "target": self.target.to_dict(),
            "positionals": [p.to_dict() for p in self.positionals],
            "time_limit": self.time_limit,
            "conflicts": [sorted(group) for group in self.conflicts],
            "ui_summary": self.ui_summary,
        }
