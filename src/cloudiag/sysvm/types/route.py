"""route: which interface, source and gateway the VM uses for a destination, with its
interfaces, routes, rules and neighbours (``ip -j``), done by the package's probe."""

from __future__ import annotations

from .. import vm_types
from ..diagnostic_type import DiagnosticType
from ..options import KIND_ADDRESS, KIND_INTERFACE, OptionSpec, option_table
from ..probes.argv import probe_argv

TYPE = DiagnosticType(
    name="route",
    order=90,
    tool="ip",
    description=(
        "Show the route to a host (ip route get) and the VM's interfaces, routes, rules "
        "and neighbours"
    ),
    vm_types=vm_types.ALL,
    options=option_table(
        OptionSpec("-s", "Source address to route from", KIND_ADDRESS),
        OptionSpec("-i", "Outgoing interface to route through", KIND_INTERFACE),
    ),
    time_limit=60.0,
    # Seven ip commands of at most ROUTE_COMMAND_TIMEOUT seconds each (probes/route.py).
    estimate=lambda options: 35.0,
    argv=probe_argv,
    ui_summary="route",
)
