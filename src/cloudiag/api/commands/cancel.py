"""cancelDiagnostics: stop a running runDiagnostics job (a cloudiag extension)."""

from __future__ import annotations

from typing import Any

from cloudiag.api.context import RequestContext
from cloudiag.api.registry import ADMIN, REGISTRY, Command, Param, ResponseField
from cloudiag.services.cancel import cancel_diagnostics


async def cancel(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Stop the job's tool; the job then ends as cancelled with the output so far.

    The answer is CloudStack's SuccessResponse: a `jobid` in it would make clients such as
    cs wait on that job, which ends as cancelled, and report the cancel as a failure.
    """
    await cancel_diagnostics(ctx.app.db, ctx.app.runner, ctx.user, params["jobid"])
    return {"success": True, "displaytext": f"Cancelled the diagnostics job {params['jobid']}"}


REGISTRY.add(
    Command(
        "cancelDiagnostics",
        "Stops a running runDiagnostics job on its VM; the job ends as cancelled with the "
        "output so far (a cloudiag extension)",
        cancel,
        params=(Param("jobid", "uuid", "the job of the runDiagnostics call", required=True),),
        response=(
            ResponseField("success", "boolean", "true when the agent stopped the tool"),
            ResponseField("displaytext", "string", "what was done"),
        ),
        roles=frozenset({ADMIN}),
        changes_state=True,
        since="cloudiag 0.1",
    )
)
