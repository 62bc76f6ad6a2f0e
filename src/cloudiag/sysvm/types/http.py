"""http: fetch a URL from the VM (GET or HEAD), timed step by step, done by the package."""

from __future__ import annotations

from .. import vm_types
from ..diagnostic_type import DiagnosticType
from ..options import (
    KIND_ENUM,
    KIND_FLOAT,
    OptionSpec,
    check_family_flags,
    float_option,
    option_table,
)
from ..probes.argv import PROBE_TOOL, probe_argv
from ..targets import TARGET_URL, Target

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

#: Seconds the whole fetch may take when -w is not given.
DEFAULT_WAIT = 10.0


def estimate(options: Mapping[str, str]) -> float:
    """Seconds the fetch may take: -w bounds it all (connect, TLS, response, body)."""
    return float_option(options, "-w", DEFAULT_WAIT)


TYPE = DiagnosticType(
    name="http",
    order=80,
    tool=PROBE_TOOL,
    description="Fetch a URL from the VM: status, headers, timings, size, certificate",
    vm_types=vm_types.ALL,
    options=option_table(
        OptionSpec("-X", "Request method", KIND_ENUM, choices=("GET", "HEAD")),
        OptionSpec("-w", "Seconds the whole fetch may take", KIND_FLOAT, 0.1, 60),
        OptionSpec("-k", "Do not verify the server's certificate"),
        OptionSpec("-4", "Use IPv4 only"),
        OptionSpec("-6", "Use IPv6 only"),
    ),
    default_options=(("-X", "GET"),),
    target=Target(TARGET_URL),
    time_limit=120.0,
    conflicts=(frozenset({"-4", "-6"}),),
    estimate=estimate,
    extra_check=check_family_flags,
    argv=probe_argv,
    ui_summary="http",
)
