"""getDiagnosticsData's rules: check the items with the system-VM package's own rules (the
first wall), refuse when the data directory's disk is too full, then create the job.

The job runs as any other (jobs/runner.py): the agent collects on the VM, puts the zip on
the bus, and the server that stores the result takes the zip (jobs/data_archive.py).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus.messages import CollectRequest, RunRequest
from cloudiag.db.engine import is_sqlite, locked_transaction
from cloudiag.domain import Caller, DomainError, InvalidInput
from cloudiag.jobs.diagnostics_job import DiagnosticsJob
from cloudiag.jobs.runner import JobRunner
from cloudiag.logs import job_id_var
from cloudiag.services import quotas, used_signatures
from cloudiag.services.quotas import Quotas
from cloudiag.services.runs import Target, create_vm_job, find_targets
from cloudiag.sysvm import collect
from cloudiag.sysvm.errors import DiagnosticsInputError

log = logging.getLogger(__name__)

GET_DIAGNOSTICS_DATA_CMD = (
    "org.apache.cloudstack.api.command.admin.diagnostics.GetDiagnosticsDataCmd"
)


class StorageFull(DomainError):
    """The data directory's disk is used above diagnostics.data.disable.threshold."""


@dataclass(frozen=True)
class DataLimits:
    """The operator's settings a collection follows."""

    roots: tuple[str, ...] = collect.DEFAULT_ROOTS
    max_file: int = collect.MAX_FILE
    max_zip: int = collect.MAX_ZIP
    #: diagnostics.data.retrieval.timeout: how long the collection may take (s).
    time_limit: float = 1800.0
    start_timeout: float = 60.0
    #: Seconds between agents' heartbeats: a host that missed three is Disconnected.
    heartbeat_interval: float = 5.0
    quotas: Quotas = field(default_factory=Quotas)


def check_files(files: str | None, vm_type: str, roots: tuple[str, ...]) -> list[str]:
    """The items of `files` (the VM type's defaults when absent), checked; InvalidInput
    naming `files` when one is refused."""
    items = collect.split_files(files) if files is not None else list(collect.DEFAULTS[vm_type])
    try:
        return [item.text for item in collect.check_items(items, roots)]
    except DiagnosticsInputError as exc:
        raise InvalidInput(exc.message, param="files") from None


def storage_refusal(directory: Path, threshold: float) -> str:
    """Why no zip can be stored now (the disk is too full), or ''. Blocking (a statfs)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    usage = shutil.disk_usage(directory)
    used = usage.used / usage.total if usage.total else 1.0
    if used > threshold:
        return (
            f"Diagnostics data cannot be retrieved: disk usage above threshold "
            f"({used:.0%} used, diagnostics.data.disable.threshold is {threshold:.0%})"
        )
    return ""


def _request(
    target: Target, job_id: str, items: list[str], limits: DataLimits, now: float
) -> RunRequest:
    return RunRequest(
        job_id=job_id,
        start_by=now + limits.start_timeout,
        vm_id=target.vm.id,
        type=collect.TYPE_NAME,
        address="",
        params=[],
        time_limit=limits.time_limit,
        collect=CollectRequest(
            items=items, roots=list(limits.roots), max_file=limits.max_file, max_zip=limits.max_zip
        ),
    )


async def _create(
    db: AsyncSession,
    caller: Caller,
    target: Target,
    items: list[str],
    limits: DataLimits,
    server_id: str,
    signature: used_signatures.Use | None,
) -> DiagnosticsJob:
    vm = target.vm
    if signature is not None:
        await used_signatures.use_within(db, signature)
    await quotas.check(db, limits.quotas, caller.id, vm)
    return await create_vm_job(
        db,
        caller,
        server_id,
        target,
        record={"type": collect.TYPE_NAME, "files": items, "timelimit": limits.time_limit},
        request=lambda job_id, now: _request(target, job_id, items, limits, now),
        description=f"Getting diagnostics data files from system vm: {vm.id}",
        heartbeat_interval=limits.heartbeat_interval,
        cmd=GET_DIAGNOSTICS_DATA_CMD,
    )


async def get_diagnostics_data(
    sessionmaker: async_sessionmaker[AsyncSession],
    runner: JobRunner,
    caller: Caller,
    *,
    target_id: str,
    files: str | None,
    limits: DataLimits,
    refusal: str = "",
    signature: used_signatures.Use | None = None,
) -> str:
    """Check the request, create its job in one transaction, start it; the job's id.

    `refusal`: storage_refusal()'s answer (the caller asked it in a thread).
    """
    async with sessionmaker() as db:
        (target,) = await find_targets(db, [target_id])
        sqlite = is_sqlite(db)
    vm = target.vm
    if vm.state != "Running" or vm.host_id is None:
        raise InvalidInput(
            f"Unable to find host for virtual machine instance: {vm.name} ({vm.id}) is {vm.state}"
        )
    if vm.access.get("script") == "cloudstack":
        raise InvalidInput(
            f"{vm.name} runs CloudStack's own script, which cannot collect files", param="targetid"
        )
    items = check_files(files, vm.vm_type, limits.roots)
    if refusal:
        raise StorageFull(refusal)
    if sqlite:
        async with locked_transaction(sessionmaker) as s:
            job = await _create(s, caller, target, items, limits, runner.server_id, signature)
    else:
        async with sessionmaker() as s:
            job = await _create(s, caller, target, items, limits, runner.server_id, signature)
            await s.commit()
    token = job_id_var.set(job.job_id)
    log.info("getDiagnosticsData by %s: %s on %s", caller.username, ",".join(items), vm.name)
    job_id_var.reset(token)
    runner.submit(job)
    return job.job_id
