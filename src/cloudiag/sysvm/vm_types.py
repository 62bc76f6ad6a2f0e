"""CloudStack's names of the system VM types.

The package is shipped to VMs on its own, so it keeps its own copy of these names; a unit
test holds them equal to ``cloudiag.domain.SYSTEM_VM_TYPES``.
"""

from __future__ import annotations

DOMAIN_ROUTER = "domainrouter"
SECONDARY_STORAGE = "secondarystoragevm"
CONSOLE_PROXY = "consoleproxy"
ALL = frozenset({DOMAIN_ROUTER, SECONDARY_STORAGE, CONSOLE_PROXY})
ROUTERS = frozenset({DOMAIN_ROUTER})
