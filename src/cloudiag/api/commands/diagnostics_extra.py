"""listDiagnosticsTypes and cancelDiagnostics: what cloudiag adds beside runDiagnostics."""

from __future__ import annotations

from typing import Any

from cloudiag.api.context import RequestContext
from cloudiag.api.errors import ApiError
from cloudiag.api.registry import ADMIN, REGISTRY, Command, Param, ResponseField
from cloudiag.db.models import AsyncJob, VirtualMachine
from cloudiag.services.diagnostics import RUN_DIAGNOSTICS_CMD
from cloudiag.sysvm import registry, tokens

#: The address rules of sysvm/tokens.py, for a browser to check before the server does.
ADDRESS_RULES = {
    "maxlength": tokens.MAX_ADDRESS_LENGTH,
    "characters": "[A-Za-z0-9.:-]",
    "label": "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
    "nodash": True,
}


async def list_diagnostics_types(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Every diagnostic type (or those a VM supports) with its options and their bounds."""
    if "targetid" in params:
        async with ctx.app.db() as db:
            vm = await db.get(VirtualMachine, params["targetid"])
        if vm is None or vm.vm_type == "uservm":
            raise ApiError.param(f"Unable to find a system vm with id {params['targetid']}")
        types = registry.types_for_vm(vm.vm_type)
    else:
        types = list(registry.TYPES.values())
    items = [t.to_dict() for t in types]
    return {"count": len(items), "diagnosticstype": items, "addressrules": ADDRESS_RULES}


async def cancel_diagnostics(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Stop a running diagnostic on its VM; the job then ends as cancelled."""
    async with ctx.app.db() as db:
        job = await db.get(AsyncJob, params["jobid"])
    if (
        job is None
        or job.cmd != RUN_DIAGNOSTICS_CMD
        or (not ctx.user.is_admin and job.user_id != ctx.user.id)
    ):
        raise ApiError.param(f"Unable to find a diagnostics job with id {params['jobid']}")
    if job.status != 0 or job.host_id is None:
        raise ApiError.param(f"The job {job.id} has already finished")
    why_not = await ctx.app.runner.cancel(job.id, job.host_id, ctx.user.username)
    if why_not:
        raise ApiError.param(f"Unable to cancel the job {job.id}: {why_not}")
    return {"success": True, "jobid": job.id}


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
            ResponseField("options", "list", "the options params may hold, with bounds"),
            ResponseField("time_limit", "double", "the longest a run may take, seconds"),
        ),
        roles=frozenset({ADMIN}),
        since="cloudiag 0.1",
    )
)
REGISTRY.add(
    Command(
        "cancelDiagnostics",
        "Stops a running runDiagnostics job on its VM; the job ends as cancelled with the "
        "output so far (a cloudiag extension)",
        cancel_diagnostics,
        params=(Param("jobid", "uuid", "the job of the runDiagnostics call", required=True),),
        response=(ResponseField("success", "boolean", "true when the agent stopped the tool"),),
        roles=frozenset({ADMIN}),
        since="cloudiag 0.1",
    )
)
