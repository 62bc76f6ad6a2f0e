"""mtr: per-hop loss, latency and jitter over several cycles (mtr 0.9x in report mode)."""

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
from .traceroute import check_first_ttl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..options import Address

#: mtr waits this long (its --gracetime, not offered) for late answers after the last cycle.
GRACE_SECONDS = 5.0
#: What mtr takes beyond its cycles and grace time: measured up to 1.7 s on the lab (a
#: silent hop, an unreachable host), so with room to spare.
SLACK_SECONDS = 3.0


def estimate(options: Mapping[str, str]) -> float:
    """Seconds mtr may run with these options."""
    cycles = int_option(options, "-c", 10)
    return cycles * float_option(options, "-i", 1.0) + GRACE_SECONDS + SLACK_SECONDS


def _check(dtype: DiagnosticType, ip: Address | None, options: Mapping[str, str]) -> None:
    check_family_flags(dtype, ip, options)
    check_first_ttl(dtype, ip, options)
    if "-P" in options and "-T" not in options and "-u" not in options:
        raise DiagnosticsInputError(
            "params", f'Option "-P" of {dtype.name} needs "-T" (TCP) or "-u" (UDP) probes.'
        )


TYPE = DiagnosticType(
    name="mtr",
    order=70,
    tool="mtr",
    description="Report the loss, latency and jitter of every hop to a host (mtr --report)",
    vm_types=vm_types.ALL,
    options=option_table(
        OptionSpec("-c", "Number of cycles (probes per hop)", KIND_INT, 1, 100),
        # As root (as on a system VM) mtr takes intervals below one second.
        OptionSpec("-i", "Seconds between cycles", KIND_FLOAT, 0.1, 60),
        OptionSpec("-m", "Maximum number of hops (max TTL)", KIND_INT, 1, 64),
        OptionSpec("-f", "First TTL", KIND_INT, 1, 64),
        OptionSpec("-s", "Packet size in bytes", KIND_INT, 0, 9000),
        OptionSpec("-n", "Do not resolve addresses to names"),
        OptionSpec("-T", "Use TCP SYN probes"),
        OptionSpec("-u", "Use UDP probes"),
        OptionSpec("-P", "Destination port of TCP or UDP probes", KIND_INT, 1, 65535),
        OptionSpec("-I", "Network interface to use", KIND_INTERFACE),
        OptionSpec("-4", "Use IPv4 only"),
        OptionSpec("-6", "Use IPv6 only"),
    ),
    default_options=(("-c", "10"),),
    # A report (no curses screen) as JSON, which the parser reads, with each hop's address
    # beside its name.
    forced_options=("--report", "--json", "--show-ips"),
    time_limit=300.0,
    conflicts=(frozenset({"-4", "-6"}), frozenset({"-T", "-u"})),
    estimate=estimate,
    extra_check=_check,
    ui_summary="mtr",
)
