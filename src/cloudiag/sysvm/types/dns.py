"""dns: resolve a name from the VM (A, AAAA, MX, TXT, PTR, NS, SOA), done by the package.

The target is the name to look up (an IP address looks up its PTR name unless ``-t`` says
otherwise); ``-s`` asks that server instead of the VM's first nameserver, and it alone is
where packets go, so the operator's denied networks judge it, not the name.
"""

from __future__ import annotations

from .. import vm_types
from ..diagnostic_type import DiagnosticType
from ..options import (
    KIND_ADDRESS,
    KIND_ENUM,
    KIND_FLOAT,
    KIND_INT,
    OptionSpec,
    float_option,
    option_table,
)
from ..probes.argv import PROBE_TOOL, probe_argv

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

#: The record types a query may ask for.
RECORD_TYPES = ("A", "AAAA", "MX", "TXT", "PTR", "NS", "SOA")
#: Seconds one try waits for its answer when -w is not given.
DEFAULT_WAIT = 3.0
#: Tries over UDP before giving up, and the one TCP try after a truncated answer.
UDP_TRIES = 2


def estimate(options: Mapping[str, str]) -> float:
    """Seconds the lookup may take: every UDP try and the TCP one wait the full -w."""
    return (UDP_TRIES + 1) * float_option(options, "-w", DEFAULT_WAIT)


TYPE = DiagnosticType(
    name="dns",
    order=70,
    tool=PROBE_TOOL,
    description="Resolve a name from the VM (A, AAAA, MX, TXT, PTR, NS, SOA)",
    vm_types=vm_types.ALL,
    options=option_table(
        OptionSpec("-t", "Record type", KIND_ENUM, choices=RECORD_TYPES),
        OptionSpec("-s", "DNS server to ask (default: the VM's first nameserver)", KIND_ADDRESS),
        OptionSpec("-p", "Port of the DNS server", KIND_INT, 1, 65535),
        OptionSpec("-w", "Seconds to wait for each answer", KIND_FLOAT, 0.1, 30),
        OptionSpec("-T", "Ask over TCP only"),
    ),
    time_limit=120.0,
    destination_option="-s",
    estimate=estimate,
    argv=probe_argv,
    ui_summary="dns",
)
