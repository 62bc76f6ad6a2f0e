"""runDiagnostics: CloudStack's command, same name, parameters and answer."""

from __future__ import annotations

from typing import Any

from cloudiag.api.context import RequestContext
from cloudiag.api.registry import ADMIN, REGISTRY, Command, Param, ResponseField
from cloudiag.domain import SYSTEM_VM_TYPES
from cloudiag.services.quotas import Quotas
from cloudiag.services.runs import Limits, start_diagnostics
from cloudiag.sysvm import registry, targets, tokens

_TYPES = sorted({t.name for vm in SYSTEM_VM_TYPES for t in registry.types_for_vm(vm)})


async def run_diagnostics(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Start the diagnostic as an async job and answer with its id at once."""
    settings = ctx.app.settings
    started = await start_diagnostics(
        ctx.app.db,
        ctx.app.runner,
        ctx.user,
        target_ids=[params["targetid"]],
        type_name=params["type"],
        address=params["ipaddress"],
        params=params.get("params"),
        limits=Limits(
            time_limit=settings.diagnostics_timeout,
            type_time_limits=settings.type_time_limits,
            denied_networks=settings.denied_networks,
            max_output=settings.max_output,
            start_timeout=settings.start_timeout,
            heartbeat_interval=settings.heartbeat_interval,
            quotas=Quotas.from_settings(settings),
        ),
        signature=ctx.signature,
    )
    return {"jobid": started.job_id}


REGISTRY.add(
    Command(
        "runDiagnostics",
        "Execute network-utility command (ping/arping/tracert) on system VMs remotely",
        run_diagnostics,
        params=(
            Param(
                "targetid",
                "uuid",
                "The ID of the system VM instance to diagnose",
                required=True,
                related="listSystemVms,listRouters",
            ),
            Param(
                "ipaddress",
                "string",
                "The IP/Domain address to test connection to (host:port for tcp, a URL for http)",
                required=True,
                # Each kind of target has its own bound (an address 253): the longest here.
                length=max(tokens.MAX_ADDRESS_LENGTH, targets.MAX_URL_LENGTH),
            ),
            Param(
                "type",
                "string",
                f"The system VM diagnostics type: {', '.join(_TYPES)}",
                required=True,
                length=32,
            ),
            Param(
                "params",
                "string",
                "Additional command line options that apply for each command",
                length=255,
            ),
        ),
        response=(
            ResponseField("stdout", "string", "the standard output from the command execution"),
            ResponseField(
                "stderr", "string", "the standard error output from the command execution"
            ),
            ResponseField("exitcode", "string", "the command execution return code"),
            ResponseField(
                "parsed",
                "map",
                "(cloudiag) the output summarised: ping and traceroute in RIPE Atlas's "
                "result format (af, dst_addr, dst_name, sent, rcvd, min/avg/max, result), "
                "with the extras the web UI shows; absent for a type without parser",
            ),
        ),
        roles=frozenset({ADMIN}),
        is_async=True,
        changes_state=True,
        # Spent with the job, in one transaction: one commit per call, not two.
        spends_signature=True,
        since="4.12.0.0",
        related="listSystemVms,listRouters",
        cmd_class="org.apache.cloudstack.api.command.admin.diagnostics.RunDiagnosticsCmd",
    )
)
