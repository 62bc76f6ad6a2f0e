"""runDiagnostics: find the system VM, check the request, create the job, start it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.api.errors import ApiError
from cloudiag.bus.messages import RunRequest
from cloudiag.db.engine import locked_transaction
from cloudiag.db.models import AsyncJob, Host, VirtualMachine
from cloudiag.domain import Caller
from cloudiag.jobs import events
from cloudiag.jobs.runner import DiagnosticsJob, JobRunner
from cloudiag.logs import job_id_var
from cloudiag.services import quotas
from cloudiag.services.quotas import Quotas
from cloudiag.sysvm import errors, policy, registry, validate

log = logging.getLogger(__name__)

RUN_DIAGNOSTICS_CMD = "org.apache.cloudstack.api.command.admin.diagnostics.RunDiagnosticsCmd"


@dataclass(frozen=True)
class Limits:
    """Per-run limits chosen by the operator."""

    #: Overrides every type's own time limit when set.
    time_limit: float | None
    #: Per type name; wins over time_limit.
    type_time_limits: dict[str, float] = field(default_factory=dict)
    #: Destination networks the operator forbids (CIDRs).
    denied_networks: list[str] = field(default_factory=list)
    max_output: int = 1 << 20
    quotas: Quotas = field(default_factory=Quotas)


async def start_diagnostics(
    sessionmaker: async_sessionmaker[AsyncSession],
    runner: JobRunner,
    caller: Caller,
    *,
    target_id: str,
    type_name: str,
    address: str,
    params: str | None,
    limits: Limits,
) -> str:
    """Validate everything, then create the job and its event in one transaction; the job id."""
    async with locked_transaction(sessionmaker) as db:
        vm = await db.get(VirtualMachine, target_id)
        if vm is None or vm.vm_type not in events.INSTANCE_TYPE:
            raise ApiError.param(f"Unable to find a system vm with id {target_id}", name="targetid")
        if vm.state != "Running" or vm.host_id is None:
            raise ApiError.param(
                f"Unable to find host for virtual machine instance: {vm.name} ({vm.id}) "
                f"is {vm.state}"
            )
        try:
            dtype = registry.get_type(type_name)
            if vm.vm_type not in dtype.vm_types:
                offered = ", ".join(t.name for t in registry.types_for_vm(vm.vm_type))
                raise ApiError.param(
                    f"{dtype.name} is not available on a {vm.vm_type}; choose one of: {offered}",
                    name="type",
                )
            time_limit = (
                limits.type_time_limits.get(dtype.name) or limits.time_limit or dtype.time_limit
            )
            request = validate.validate(dtype.name, address, params, time_limit=time_limit)
            denied = policy.denied_destination(
                request.address,
                policy.parse_networks(limits.denied_networks),
            )
            if denied:
                raise ApiError.param(denied, name="ipaddress")
        except errors.DiagnosticsInputError as exc:
            text = exc.message
            if exc.field == "type":
                offered = ", ".join(t.name for t in registry.types_for_vm(vm.vm_type))
                text = f"{text} This VM offers: {offered}."
            raise ApiError.param(text, name=exc.field) from None
        await quotas.check(db, limits.quotas, caller.id, vm)
        host = await db.get(Host, vm.host_id)
        host_name = host.name if host else vm.host_id
        job = AsyncJob(
            user_id=caller.id,
            account_id=caller.account_id,
            cmd=RUN_DIAGNOSTICS_CMD,
            instance_type=events.INSTANCE_TYPE[vm.vm_type],
            instance_id=vm.id,
            host_id=vm.host_id,
            request={
                "type": dtype.name,
                "ipaddress": request.address,
                "params": request.params,
                "timelimit": time_limit,
            },
            server_id=runner.server_id,
        )
        db.add(job)
        await db.flush()
        events.record(
            db,
            type=events.DIAGNOSTICS_EVENT[vm.vm_type],
            state="Started",
            description=f"Executing diagnostics on system vm: {vm.id}",
            user_id=caller.id,
            username=caller.username,
            account_id=caller.account_id,
            domain_id=caller.domain_id,
            resource_type=events.INSTANCE_TYPE[vm.vm_type],
            resource_id=vm.id,
            job_id=job.id,
        )
        run = DiagnosticsJob(
            job_id=job.id,
            host_id=vm.host_id,
            host_name=host_name,
            vm_name=vm.name,
            vm_type=vm.vm_type,
            request=RunRequest(
                job_id=job.id,
                vm_id=vm.id,
                type=dtype.name,
                address=request.address,
                params=list(request.params),
                time_limit=time_limit,
                max_output=limits.max_output,
                denied_networks=limits.denied_networks,
            ),
            user_id=caller.id,
            username=caller.username,
            account_id=caller.account_id,
            domain_id=caller.domain_id,
        )
    token = job_id_var.set(run.job_id)
    log.info(
        "runDiagnostics by %s: %s on %s",
        caller.username,
        " ".join([dtype.name, request.address, *request.params]),
        vm.name,
    )
    job_id_var.reset(token)
    runner.submit(run)
    return run.job_id
