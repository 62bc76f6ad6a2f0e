"""traceroute: the route packets take (Dmitry Butskoy's traceroute 2.x)."""

from __future__ import annotations

from .. import vm_types
from ..diagnostic_type import DiagnosticType
from ..errors import DiagnosticsInputError
from ..options import (
    KIND_FLOAT,
    KIND_INT,
    KIND_INTERFACE,
    OptionSpec,
    check_family_flags,
    float_option,
    int_option,
    option_table,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..options import Address

#: The options traceroute and traceroute6 share.
COMMON_OPTIONS = (
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
PROBE_CONFLICTS = (frozenset({"-I", "-T", "-U"}),)
#: -m 30 -q 3 -w 5 (450 s) must fit.
TIME_LIMIT = 600.0


def estimate(options: Mapping[str, str]) -> float:
    """Seconds traceroute may run with these options."""
    # Worst case: every probe of every hop waits the full -w (default 5 s), one by one.
    hops = int_option(options, "-m", 30) - int_option(options, "-f", 1) + 1
    return max(hops, 0) * int_option(options, "-q", 3) * float_option(options, "-w", 5.0)


def check_first_ttl(dtype: DiagnosticType, ip: Address | None, options: Mapping[str, str]) -> None:
    """Refuse a first TTL beyond the last one."""
    if "-f" in options and "-m" in options and int(options["-f"]) > int(options["-m"]):
        raise DiagnosticsInputError(
            "params", f'Option "-f" of {dtype.name} must not be larger than "-m".'
        )


def _check(dtype: DiagnosticType, ip: Address | None, options: Mapping[str, str]) -> None:
    check_family_flags(dtype, ip, options)
    check_first_ttl(dtype, ip, options)


TYPE = DiagnosticType(
    name="traceroute",
    order=20,
    tool="traceroute",
    description="Show the route packets take to a host",
    vm_types=vm_types.ALL,
    options=option_table(
        *COMMON_OPTIONS,
        OptionSpec("-4", "Use IPv4 only"),
        OptionSpec("-6", "Use IPv6 only"),
    ),
    default_options=(("-m", "20"),),
    time_limit=TIME_LIMIT,
    conflicts=(frozenset({"-4", "-6"}), *PROBE_CONFLICTS),
    estimate=estimate,
    extra_check=_check,
    ui_summary="traceroute",
)
