"""getDiagnosticsData: CloudStack's command (4.14), same name, parameters and answer."""

from __future__ import annotations

import asyncio
from typing import Any

from cloudiag.api.context import RequestContext
from cloudiag.api.registry import ADMIN, REGISTRY, Command, Param, ResponseField
from cloudiag.services.diagnostics_data import (
    GET_DIAGNOSTICS_DATA_CMD,
    DataLimits,
    get_diagnostics_data,
    storage_refusal,
)
from cloudiag.services.quotas import Quotas
from cloudiag.sysvm import collect


async def get_data(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Start the collection as an async job and answer with its id at once."""
    settings = ctx.app.settings
    archives = ctx.app.archives
    directory = archives.directory if archives is not None else settings.data_dir
    threshold = settings.diagnostics_data_disable_threshold
    job_id = await get_diagnostics_data(
        ctx.app.db,
        ctx.app.runner,
        ctx.user,
        target_id=params["targetid"],
        files=params.get("files"),
        limits=DataLimits(
            roots=tuple(settings.diagnostics_data_roots),
            max_file=settings.diagnostics_data_max_file,
            max_zip=settings.diagnostics_data_max_zip,
            time_limit=settings.diagnostics_data_retrieval_timeout,
            start_timeout=settings.start_timeout,
            heartbeat_interval=settings.heartbeat_interval,
            quotas=Quotas.from_settings(settings),
        ),
        refusal=await asyncio.to_thread(storage_refusal, directory, threshold),
        signature=ctx.signature,
    )
    return {"jobid": job_id}


REGISTRY.add(
    Command(
        "getDiagnosticsData",
        "Get diagnostics and files from system VMs",
        get_data,
        params=(
            Param(
                "targetid",
                "uuid",
                "The ID of the system VM instance to retrieve diagnostics data files from",
                required=True,
                related="listSystemVms,listRouters",
            ),
            Param(
                "files",
                "string",
                "A comma separated list of diagnostics data files to be retrieved: keywords "
                f"({', '.join(collect.KEYWORDS)}), [script] (run from {collect.SCRIPT_DIR}) "
                "or absolute paths under the allowed roots; defaults per VM type when absent",
                length=collect.MAX_ITEMS * (collect.MAX_ITEM_LENGTH + 1),
            ),
        ),
        response=(
            ResponseField(
                "url", "string", "Storage URL to download retrieve diagnostics data files"
            ),
        ),
        roles=frozenset({ADMIN}),
        is_async=True,
        changes_state=True,
        spends_signature=True,
        since="4.14.0.0",
        related="listSystemVms,listRouters",
        cmd_class=GET_DIAGNOSTICS_DATA_CMD,
    )
)
