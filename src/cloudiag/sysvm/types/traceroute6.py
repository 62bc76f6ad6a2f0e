"""traceroute6: traceroute -6, on routers only."""

from __future__ import annotations

from .. import vm_types
from ..diagnostic_type import DiagnosticType
from ..options import option_table
from ..targets import Target
from .traceroute import COMMON_OPTIONS, PROBE_CONFLICTS, TIME_LIMIT, check_first_ttl, estimate

TYPE = DiagnosticType(
    name="traceroute6",
    order=50,
    tool="traceroute",
    description="Show the IPv6 route packets take to a host (traceroute -6)",
    vm_types=vm_types.ROUTERS,
    options=option_table(*COMMON_OPTIONS),
    default_options=(("-m", "20"),),
    forced_options=("-6",),
    target=Target(families=frozenset({6})),
    time_limit=TIME_LIMIT,
    conflicts=PROBE_CONFLICTS,
    estimate=estimate,
    extra_check=check_first_ttl,
    # The same tool and output as traceroute.
    parser="traceroute",
    ui_summary="traceroute",
)
