"""ping6: ping -6, on routers only."""

from __future__ import annotations

from .. import vm_types
from ..diagnostic_type import DiagnosticType
from ..options import KIND_INTERFACE_OR_ADDRESS, OptionSpec, option_table
from ..targets import Target
from .ping import COMMON_OPTIONS, estimate

TYPE = DiagnosticType(
    name="ping6",
    order=40,
    tool="ping",
    description="Send ICMPv6 echo requests (ping -6)",
    vm_types=vm_types.ROUTERS,
    options=option_table(
        *COMMON_OPTIONS,
        OptionSpec(
            "-I",
            "Source interface or IPv6 address",
            KIND_INTERFACE_OR_ADDRESS,
            families=frozenset({6}),
        ),
    ),
    default_options=(("-c", "4"),),
    forced_options=("-6",),
    target=Target(families=frozenset({6})),
    time_limit=120.0,
    estimate=estimate,
    # The same tool and output as ping.
    parser="ping",
    ui_summary="ping",
)
