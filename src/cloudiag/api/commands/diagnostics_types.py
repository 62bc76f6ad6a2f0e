"""listDiagnosticsTypes: the types runDiagnostics takes, with their options (a cloudiag
extension)."""

from __future__ import annotations

from typing import Any

from cloudiag.api.context import RequestContext
from cloudiag.api.registry import ADMIN, REGISTRY, Command, Param, ResponseField
from cloudiag.services import inventory
from cloudiag.sysvm import policy, registry, targets, tokens

#: The address rules of sysvm/tokens.py, for a browser to check before the server does.
ADDRESS_RULES = {
    "maxlength": tokens.MAX_ADDRESS_LENGTH,
    "characters": "[A-Za-z0-9.:-]",
    "label": "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
    "nodash": True,
    "urlmaxlength": targets.MAX_URL_LENGTH,
}


async def list_diagnostics_types(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Every diagnostic type (or those a VM supports) with its options and their bounds."""
    if "targetid" in params:
        vm = await inventory.find_system_vm(ctx.app.db, params["targetid"])
        types = registry.types_for_vm(vm.vm_type)
        if vm.access.get("script") == "cloudstack":
            # Reached through CloudStack's own script: only the types that script runs.
            types = [t for t in types if policy.script_cannot_run(t.name, vm.name) is None]
    else:
        types = list(registry.TYPES.values())
    items = [t.to_dict() for t in types]
    return {"count": len(items), "diagnosticstype": items, "addressrules": ADDRESS_RULES}


REGISTRY.add(
    Command(
        "listDiagnosticsTypes",
        "Lists the diagnostics types runDiagnostics accepts, with their options and limits "
        "(a cloudiag extension)",
        list_diagnostics_types,
        params=(
            Param(
                "targetid",
                "uuid",
                "only the types this system VM supports",
                related="listSystemVms,listRouters",
            ),
        ),
        response=(
            ResponseField("name", "string", "the type, as runDiagnostics takes it"),
            ResponseField("tool", "string", "the program it runs on the VM"),
            ResponseField("description", "string", "what it finds out"),
            ResponseField("vm_types", "list", "the system VM types that offer it"),
            ResponseField("options", "list", "the options params may hold, with bounds"),
            ResponseField("default_options", "list", "options added when params has none"),
            ResponseField("forced_options", "list", "options every run gets"),
            ResponseField("address_families", "list", "the address families it reaches"),
            ResponseField("target", "map", "what ipaddress holds: an address, URL or host:port"),
            ResponseField("positionals", "list", "words after the options, each with its rule"),
            ResponseField("time_limit", "double", "the longest a run may take, seconds"),
            ResponseField("conflicts", "list", "groups of options that exclude each other"),
            ResponseField("ui_summary", "string", "the web UI's summary module for its result"),
            ResponseField("addressrules", "map", "the address rules, for a form to check first"),
        ),
        roles=frozenset({ADMIN}),
        since="cloudiag 0.1",
    )
)
