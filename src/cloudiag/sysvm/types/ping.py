"""ping: ICMP echo requests (iputils)."""

from __future__ import annotations

from .. import vm_types
from ..diagnostic_type import DiagnosticType
from ..options import (
    KIND_FLOAT,
    KIND_INT,
    KIND_INTERFACE_OR_ADDRESS,
    OptionSpec,
    check_family_flags,
    float_option,
    int_option,
    option_table,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

#: The options ping and ping6 share (ping6 narrows -I to IPv6).
COMMON_OPTIONS = (
    OptionSpec("-c", "Stop after sending this many packets", KIND_INT, 1, 100),
    OptionSpec("-i", "Seconds between packets", KIND_FLOAT, 0.2, 60),
    OptionSpec("-s", "Number of data bytes to send", KIND_INT, 0, 65507),
    OptionSpec("-W", "Seconds to wait for a response", KIND_FLOAT, 0.1, 60),
    OptionSpec("-w", "Deadline: seconds before ping exits", KIND_INT, 1, 600),
    OptionSpec("-t", "IP time to live", KIND_INT, 1, 255),
    OptionSpec("-n", "Numeric output only"),
    OptionSpec("-q", "Quiet output: only the summary"),
)


def estimate(options: Mapping[str, str]) -> float:
    """Seconds ping may run with these options."""
    # With -w (deadline) ping stops at the deadline whatever else happens. Otherwise it
    # sends count probes one interval apart and then lingers up to -W (10 s) for replies.
    if "-w" in options:
        return float(options["-w"])
    count = int_option(options, "-c", 4)
    return count * float_option(options, "-i", 1.0) + float_option(options, "-W", 10.0)


TYPE = DiagnosticType(
    name="ping",
    order=10,
    tool="ping",
    description="Send ICMP echo requests and report replies",
    vm_types=vm_types.ALL,
    options=option_table(
        *COMMON_OPTIONS,
        OptionSpec("-I", "Source interface or address", KIND_INTERFACE_OR_ADDRESS),
        OptionSpec("-4", "Use IPv4 only"),
        OptionSpec("-6", "Use IPv6 only"),
    ),
    default_options=(("-c", "4"),),
    time_limit=120.0,
    conflicts=(frozenset({"-4", "-6"}),),
    estimate=estimate,
    extra_check=check_family_flags,
    ui_summary="ping",
)
