"""arping: ARP requests to a neighbour on the local link (iputils)."""

from __future__ import annotations

from .. import vm_types
from ..diagnostic_type import DiagnosticType
from ..options import KIND_ADDRESS, KIND_INT, KIND_INTERFACE, OptionSpec, int_option, option_table
from ..targets import Target

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def estimate(options: Mapping[str, str]) -> float:
    """Seconds arping may run with these options."""
    # -w is a hard deadline; without it arping sends count requests a second apart.
    if "-w" in options:
        return float(options["-w"])
    return int_option(options, "-c", 4) + 1.0


TYPE = DiagnosticType(
    name="arping",
    order=30,
    tool="arping",
    description="Send ARP requests to a neighbour on the local link",
    vm_types=vm_types.ALL,
    options=option_table(
        OptionSpec("-c", "Number of requests to send", KIND_INT, 1, 100),
        OptionSpec("-w", "Deadline: seconds before arping exits", KIND_INT, 1, 600),
        OptionSpec("-I", "Network interface to use", KIND_INTERFACE),
        OptionSpec("-D", "Duplicate address detection mode"),
        OptionSpec("-U", "Unsolicited ARP mode (update neighbours)"),
        OptionSpec("-A", "Like -U, with ARP REPLY packets"),
        OptionSpec("-s", "IPv4 source address", KIND_ADDRESS, families=frozenset({4})),
    ),
    default_options=(("-c", "4"),),
    target=Target(families=frozenset({4})),
    time_limit=120.0,
    conflicts=(frozenset({"-D", "-U", "-A"}),),
    # Needs -I on a VM with several interfaces: chosen from the routing table on the VM.
    auto_interface=True,
    estimate=estimate,
    ui_summary="arping",
)
