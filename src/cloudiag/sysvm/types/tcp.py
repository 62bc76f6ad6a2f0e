"""tcp: a TCP connect check of host:port (open, refused or timed out), done by the package."""

from __future__ import annotations

from .. import vm_types
from ..diagnostic_type import DiagnosticType
from ..options import KIND_FLOAT, OptionSpec, check_family_flags, float_option, option_table
from ..probes.argv import PROBE_TOOL, probe_argv
from ..targets import TARGET_HOST_PORT, Target

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

#: How long a connect waits when -w is not given (seconds).
DEFAULT_WAIT = 5.0


def estimate(options: Mapping[str, str]) -> float:
    """Seconds the check may take: one connect attempt of at most -w seconds."""
    return float_option(options, "-w", DEFAULT_WAIT)


TYPE = DiagnosticType(
    name="tcp",
    order=60,
    tool=PROBE_TOOL,
    description="Check that a TCP port accepts connections (open, refused or timed out)",
    vm_types=vm_types.ALL,
    options=option_table(
        OptionSpec("-w", "Seconds to wait for the connection", KIND_FLOAT, 0.1, 60),
        OptionSpec("-4", "Use IPv4 only"),
        OptionSpec("-6", "Use IPv6 only"),
    ),
    default_options=(("-w", f"{DEFAULT_WAIT:g}"),),
    target=Target(TARGET_HOST_PORT),
    time_limit=120.0,
    conflicts=(frozenset({"-4", "-6"}),),
    estimate=estimate,
    extra_check=check_family_flags,
    argv=probe_argv,
    ui_summary="tcp",
)
