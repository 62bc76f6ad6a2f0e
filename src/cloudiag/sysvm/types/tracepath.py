"""tracepath: the route and the path MTU of each hop (iputils), with no root needed."""

from __future__ import annotations

from .. import vm_types
from ..diagnostic_type import DiagnosticType
from ..options import KIND_INT, OptionSpec, check_family_flags, int_option, option_table

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..validate import Request

#: Seconds one hop may take: up to three probes that each wait a second for an answer,
#: and a last one whose "!H" waits out the hop's neighbour resolution (3 s).
SECONDS_PER_HOP = 6.0
DEFAULT_HOPS = 30


def estimate(options: Mapping[str, str]) -> float:
    """Seconds tracepath may run with these options."""
    return int_option(options, "-m", DEFAULT_HOPS) * SECONDS_PER_HOP


def _argv(req: Request, interface: str | None) -> list[str]:
    """tracepath's argv: with names, "-b" so that each hop's address is printed beside its
    name (alone, tracepath prints one or the other); with "-n", addresses only (-b would
    look the names up all the same)."""
    both = [] if "-n" in req.params else ["-b"]
    defaults = [
        x for flag, value in TYPE.default_options if flag not in req.params for x in (flag, value)
    ]
    return [TYPE.tool, *both, *req.params, *defaults, "--", req.address]


TYPE = DiagnosticType(
    name="tracepath",
    order=60,
    tool="tracepath",
    description="Show the route to a host and the path MTU of each hop",
    vm_types=vm_types.ALL,
    options=option_table(
        OptionSpec("-m", "Maximum number of hops", KIND_INT, 1, 64),
        # tracepath refuses 28 and less; 65535 is its own default for IPv4.
        OptionSpec("-l", "Initial packet length in bytes", KIND_INT, 64, 65535),
        OptionSpec("-p", "Initial destination port", KIND_INT, 1, 65535),
        OptionSpec("-n", "Do not resolve addresses to names"),
        OptionSpec("-4", "Use IPv4 only"),
        OptionSpec("-6", "Use IPv6 only"),
    ),
    default_options=(("-m", "20"),),
    argv=_argv,
    time_limit=600.0,
    conflicts=(frozenset({"-4", "-6"}),),
    estimate=estimate,
    extra_check=check_family_flags,
    ui_summary="tracepath",
)
