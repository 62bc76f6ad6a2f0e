"""The declaration of one diagnostic type: everything the server, agent, VM and UI need."""

from __future__ import annotations

from .frozen import Frozen, set_fields
from .targets import ADDRESS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from ipaddress import IPv4Address, IPv6Address
    from typing import Any

    from .options import OptionSpec
    from .targets import Positional, Target
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


class DiagnosticType(Frozen):
    """A diagnostic command, declared once for the API, the agent, the script and the UI.

    - ``default_options`` are added when the user did not give the flag, e.g.
      ``(("-c", "4"),)``; ``forced_options`` always, in front (``("-6",)`` for ping6), and
      the user may not give them.
    - ``target``: what the ipaddress field holds (an address or host name by default) and
      its IP versions; ``positionals``: the words of params besides the options.
    - ``time_limit``: the default limit (seconds) for the options' ``estimate``, an upper
      bound of the run time for the given options (defaults included).
    - ``conflicts``: groups of flags of which at most one may be given; ``extra_check`` a
      rule of the type's own on the target's IP and the options.
    - ``auto_interface``: the tool needs "-I <interface>" from the routing table when absent;
      ``end_of_options``: the tool accepts "--" before the target.
    - ``destination_option``: the flag whose value (an IP literal) is where packets go,
      when that is not the target (dns queries a name at the server ``-s``); the
      operator's denied networks judge it instead of the target, and nothing when absent.
    - ``argv``: the type's own argv order (None: options, "--", target, positionals).
    - ``parser``: the module cloudiag/parsers/<parser>.py (with parse_<parser>) that
      summarises it (default: the type's name); ``ui_summary`` the web UI's
      js/diag/summaries/<ui_summary>.js; ``order`` its place in lists, lower first.
    """

    __slots__ = (
        "argv",
        "auto_interface",
        "conflicts",
        "default_options",
        "description",
        "destination_option",
        "end_of_options",
        "estimate",
        "extra_check",
        "forced_options",
        "name",
        "options",
        "order",
        "parser",
        "positionals",
        "target",
        "time_limit",
        "tool",
        "ui_summary",
        "vm_types",
    )
    name: str
    tool: str
    description: str
    vm_types: frozenset[str]
    options: Mapping[str, OptionSpec]
    default_options: tuple[tuple[str, str], ...]
    forced_options: tuple[str, ...]
    target: Target
    positionals: tuple[Positional, ...]
    time_limit: float
    conflicts: tuple[frozenset[str], ...]
    auto_interface: bool
    end_of_options: bool
    destination_option: str
    estimate: Callable[[Mapping[str, str]], float]
    extra_check: ExtraCheck
    argv: ArgvBuilder | None
    parser: str
    ui_summary: str
    order: int

    def __init__(
        self,
        *,
        name: str,
        tool: str,
        description: str,
        vm_types: frozenset[str],
        options: Mapping[str, OptionSpec],
        default_options: tuple[tuple[str, str], ...] = (),
        forced_options: tuple[str, ...] = (),
        target: Target = ADDRESS,
        positionals: tuple[Positional, ...] = (),
        time_limit: float = 120.0,
        conflicts: tuple[frozenset[str], ...] = (),
        auto_interface: bool = False,
        end_of_options: bool = True,
        destination_option: str = "",
        estimate: Callable[[Mapping[str, str]], float] = _no_estimate,
        extra_check: ExtraCheck = _no_extra_check,
        argv: ArgvBuilder | None = None,
        parser: str = "",
        ui_summary: str = "generic",
        order: int = 100,
    ) -> None:
        set_fields(
            self,
            name=name,
            tool=tool,
            description=description,
            vm_types=vm_types,
            options=options,
            default_options=default_options,
            forced_options=forced_options,
            target=target,
            positionals=positionals,
            time_limit=time_limit,
            conflicts=conflicts,
            auto_interface=auto_interface,
            end_of_options=end_of_options,
            destination_option=destination_option,
            estimate=estimate,
            extra_check=extra_check,
            argv=argv,
            parser=parser,
            ui_summary=ui_summary,
            order=order,
        )

    def __repr__(self) -> str:
        return f"DiagnosticType(name={self.name!r}, tool={self.tool!r})"

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
