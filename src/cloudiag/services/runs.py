"""runDiagnostics' rules: plan and validate a run on one or many system VMs, then create
its jobs (and their events) in one transaction, then start them.

Planning (plan_run) is pure: it takes the VMs as found and the request, checks each VM can
take it with the system-VM package's own rules, and yields a plan. Creating (create_jobs)
writes the plan's jobs within the caller's transaction: one job per VM, and over many VMs a
parent job whose status follows theirs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus.messages import RunRequest
from cloudiag.db.engine import is_sqlite, locked_transaction
from cloudiag.db.models import AsyncJob, Host, VirtualMachine, new_uuid, utcnow
from cloudiag.domain import SYSTEM_VM_TYPES, Caller, InvalidInput, JobStatus, NotFound
from cloudiag.jobs import events
from cloudiag.jobs.diagnostics_job import DiagnosticsJob
from cloudiag.jobs.runner import JobRunner
from cloudiag.logs import job_id_var
from cloudiag.services import quotas, used_signatures
from cloudiag.services.inventory import heartbeat_fresh
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
    #: Seconds a job's request may wait for its agent to take it.
    start_timeout: float = 60.0
    #: Seconds between agents' heartbeats: a host that missed three is Disconnected.
    heartbeat_interval: float = 5.0
    quotas: Quotas = field(default_factory=Quotas)


@dataclass(frozen=True)
class Target:
    """A system VM a run was asked for, as the inventory holds it, its host's name, and
    when its host's agent last beat (None: it said goodbye, or never beat)."""

    vm: VirtualMachine
    host_name: str
    last_heartbeat: datetime | None = None

    def host_up(self, heartbeat_interval: float) -> bool:
        """Whether the host is Up by its heartbeats (as listHosts shows it)."""
        return heartbeat_fresh(self.last_heartbeat, heartbeat_interval)


@dataclass(frozen=True)
class PlannedRun:
    """One VM's share of a run, validated: what its job will ask the agent."""

    target: Target
    type: str
    address: str
    params: tuple[str, ...]
    time_limit: float


@dataclass(frozen=True)
class RunPlan:
    """A validated run on one or many VMs, ready to become jobs."""

    runs: tuple[PlannedRun, ...]
    limits: Limits


@dataclass(frozen=True)
class CreatedRun:
    """The jobs a plan became: one per VM, and their parent when there are several."""

    jobs: tuple[DiagnosticsJob, ...]
    parent_id: str | None

    @property
    def job_id(self) -> str:
        """The job the caller follows: the parent of a run over many VMs, else the one job."""
        return self.parent_id or self.jobs[0].job_id


#: The VMs of some ids and their hosts' names: one query for all of them (a round trip
#: each costs more than the query), made once (building it costs more than running it).
_TARGETS = (
    select(VirtualMachine, Host.name, Host.connected, Host.last_heartbeat)
    .outerjoin(Host, Host.id == VirtualMachine.host_id)
    .where(VirtualMachine.id.in_(bindparam("ids", expanding=True)))
)


async def find_targets(db: AsyncSession, target_ids: Sequence[str]) -> list[Target]:
    """The system VMs of these ids with their hosts' names; NotFound for any other id."""
    rows = await db.execute(_TARGETS, {"ids": sorted(set(target_ids))})
    found = {
        vm.id: Target(vm, host_name or vm.host_id or "", beat if connected else None)
        for vm, host_name, connected, beat in rows
    }
    targets = []
    for target_id in target_ids:
        target = found.get(target_id)
        if target is None or target.vm.vm_type not in SYSTEM_VM_TYPES:
            raise NotFound(f"Unable to find a system vm with id {target_id}", param="targetid")
        targets.append(target)
    return targets


def plan_run(
    targets: Sequence[Target],
    *,
    type_name: str,
    address: str,
    params: str | None,
    limits: Limits,
) -> RunPlan:
    """Check the request against every VM with the system-VM rules; the plan, or InvalidInput."""
    return RunPlan(tuple(_plan_one(t, type_name, address, params, limits) for t in targets), limits)


def _plan_one(
    target: Target, type_name: str, address: str, params: str | None, limits: Limits
) -> PlannedRun:
    vm = target.vm
    if vm.state != "Running" or vm.host_id is None:
        raise InvalidInput(
            f"Unable to find host for virtual machine instance: {vm.name} ({vm.id}) is {vm.state}"
        )
    offered = ", ".join(t.name for t in registry.types_for_vm(vm.vm_type))
    try:
        dtype = registry.get_type(type_name)
        if vm.vm_type not in dtype.vm_types:
            raise InvalidInput(
                f"{dtype.name} is not available on a {vm.vm_type}; choose one of: {offered}",
                param="type",
            )
        time_limit = (
            limits.type_time_limits.get(dtype.name) or limits.time_limit or dtype.time_limit
        )
        request = validate.validate(dtype.name, address, params, time_limit=time_limit)
        denied = policy.denied_request(request, policy.parse_networks(limits.denied_networks))
    except errors.DiagnosticsInputError as exc:
        text = exc.message
        if exc.field == "type":
            text = f"{text} This VM offers: {offered}."
        raise InvalidInput(text, param=exc.field) from None
    if denied:
        raise InvalidInput(denied, param="ipaddress")
    if vm.access.get("script") == "cloudstack":
        # The agent would refuse these too; say so now, as bad parameters.
        cannot = policy.script_cannot_run(request.type.name, vm.name)
        if cannot:
            raise InvalidInput(cannot, param="type")
        host = request.type.target.host(request.address)
        unchecked = policy.unchecked_name(host, vm.name, limits.denied_networks)
        if unchecked:
            raise InvalidInput(unchecked, param="ipaddress")
    return PlannedRun(target, dtype.name, request.address, tuple(request.params), time_limit)


async def create_jobs(
    db: AsyncSession,
    caller: Caller,
    plan: RunPlan,
    *,
    server_id: str,
    signature: used_signatures.Use | None = None,
) -> CreatedRun:
    """Add the plan's jobs and their Started events to the caller's transaction.

    Each VM's quotas are checked as its job is added, so they count the jobs before it. On
    SQLite the caller's transaction is a `locked_transaction`. `signature`: the call's
    once-only signature, spent first in the same transaction (used_signatures.SignatureUsed
    when it was spent before).
    """
    if signature is not None:
        await used_signatures.use_within(db, signature)
    parent_id: str | None = None
    if len(plan.runs) > 1:
        first = plan.runs[0]
        parent_id = await _insert_job(
            db,
            caller,
            server_id,
            instance_type="",
            instance_id="",
            request={
                **_request_record(first),
                "targetids": [run.target.vm.id for run in plan.runs],
            },
        )
        await events.record(
            db,
            type=events.GROUP_EVENT,
            state="Started",
            description=f"Executing diagnostics on {len(plan.runs)} system vms",
            user_id=caller.id,
            username=caller.username,
            account_id=caller.account_id,
            domain_id=caller.domain_id,
            job_id=parent_id,
        )
    jobs = []
    for run in plan.runs:
        await quotas.check(db, plan.limits.quotas, caller.id, run.target.vm)
        jobs.append(await _create_job(db, caller, run, plan.limits, server_id, parent_id))
    return CreatedRun(tuple(jobs), parent_id)


#: Made once (building a statement costs more than running it); a job is written at once,
#: not at the session's flush (whose bookkeeping costs more than the insert).
_INSERT_JOB = insert(cast(Table, AsyncJob.__table__))


async def _insert_job(
    db: AsyncSession,
    caller: Caller,
    server_id: str,
    *,
    instance_type: str,
    instance_id: str,
    request: dict[str, Any],
    host_id: str | None = None,
    parent_id: str | None = None,
    cmd: str = RUN_DIAGNOSTICS_CMD,
) -> str:
    """Write a pending job (runDiagnostics', or `cmd`'s); its id (chosen here, not by the
    database)."""
    job_id = new_uuid()
    await db.execute(
        _INSERT_JOB,
        {
            "id": job_id,
            "user_id": caller.id,
            "account_id": caller.account_id,
            "cmd": cmd,
            "status": JobStatus.PENDING,
            "result_code": 0,
            "instance_type": instance_type,
            "instance_id": instance_id,
            "host_id": host_id,
            "request": request,
            "server_id": server_id,
            "parent_id": parent_id,
            "created": utcnow(),
        },
    )
    return job_id


def _request_record(run: PlannedRun) -> dict[str, Any]:
    """The request as a job's row keeps it (listAsyncJobs shows it)."""
    return {
        "type": run.type,
        "ipaddress": run.address,
        "params": list(run.params),
        "timelimit": run.time_limit,
    }


async def _create_job(
    db: AsyncSession,
    caller: Caller,
    run: PlannedRun,
    limits: Limits,
    server_id: str,
    parent_id: str | None,
) -> DiagnosticsJob:
    vm = run.target.vm

    def request(job_id: str, now: float) -> RunRequest:
        return RunRequest(
            job_id=job_id,
            start_by=now + limits.start_timeout,
            vm_id=vm.id,
            type=run.type,
            address=run.address,
            params=list(run.params),
            time_limit=run.time_limit,
            max_output=limits.max_output,
            denied_networks=limits.denied_networks,
        )

    return await create_vm_job(
        db,
        caller,
        server_id,
        run.target,
        record=_request_record(run),
        request=request,
        description=f"Executing diagnostics on system vm: {vm.id}",
        heartbeat_interval=limits.heartbeat_interval,
        parent_id=parent_id,
    )


async def create_vm_job(
    db: AsyncSession,
    caller: Caller,
    server_id: str,
    target: Target,
    *,
    record: dict[str, Any],
    request: Callable[[str, float], RunRequest],
    description: str,
    heartbeat_interval: float,
    cmd: str = RUN_DIAGNOSTICS_CMD,
    parent_id: str | None = None,
) -> DiagnosticsJob:
    """Write a job on a system VM (``record``: what was asked, as the job's row keeps it),
    its Started event, and what the runner needs to run it (``request(job_id, now)``: what
    the agent is asked)."""
    vm = target.vm
    assert vm.host_id is not None  # its planning refused a VM without a host
    job_id = await _insert_job(
        db,
        caller,
        server_id,
        instance_type=events.INSTANCE_TYPE[vm.vm_type],
        instance_id=vm.id,
        request=record,
        host_id=vm.host_id,
        parent_id=parent_id,
        cmd=cmd,
    )
    await events.record(
        db,
        type=events.DIAGNOSTICS_EVENT[vm.vm_type],
        state="Started",
        description=description,
        user_id=caller.id,
        username=caller.username,
        account_id=caller.account_id,
        domain_id=caller.domain_id,
        resource_type=events.INSTANCE_TYPE[vm.vm_type],
        resource_id=vm.id,
        job_id=job_id,
    )
    now = time.time()
    return DiagnosticsJob(
        job_id=job_id,
        host_id=vm.host_id,
        host_name=target.host_name,
        host_up=target.host_up(heartbeat_interval),
        vm_name=vm.name,
        vm_type=vm.vm_type,
        request=request(job_id, now),
        user_id=caller.id,
        username=caller.username,
        account_id=caller.account_id,
        domain_id=caller.domain_id,
        parent_id=parent_id,
        created=now,
    )


async def start_diagnostics(
    sessionmaker: async_sessionmaker[AsyncSession],
    runner: JobRunner,
    caller: Caller,
    *,
    target_ids: Sequence[str],
    type_name: str,
    address: str,
    params: str | None,
    limits: Limits,
    signature: used_signatures.Use | None = None,
) -> CreatedRun:
    """Find the VMs, plan the run and create its jobs in one transaction, then start them.

    `signature`: the call's once-only signature, spent in that transaction: it counts if and
    only if the jobs were created (the API spends it after a refusal that is not for the
    request's input, see api/app.py).

    Only the quotas' count, the inserts and the commit are serialized, and only where they
    must be: per user, host and VM on PostgreSQL (row locks), SQLite's one writer there.
    """
    accepted = time.perf_counter()
    created: CreatedRun | None = None
    async with sessionmaker() as db:
        targets = await find_targets(db, target_ids)
        plan = plan_run(targets, type_name=type_name, address=address, params=params, limits=limits)
        if not is_sqlite(db):
            # The quotas lock their rows in this transaction (FOR UPDATE).
            created = await create_jobs(
                db, caller, plan, server_id=runner.server_id, signature=signature
            )
            await db.commit()
    if created is None:
        # SQLite: its writers' lock is taken before a connection, never while holding one
        # (callers waiting for it with a connection each could leave its holder none); the
        # reads above needed neither.
        async with locked_transaction(sessionmaker) as db:
            created = await create_jobs(
                db, caller, plan, server_id=runner.server_id, signature=signature
            )
    committed_ms = (time.perf_counter() - accepted) * 1000
    for job in created.jobs:
        token = job_id_var.set(job.job_id)
        req = job.request
        # The time to commit is a stage of the latency bench (bench/rundiagnostics_latency.py).
        log.info(
            "runDiagnostics by %s: %s on %s (committed in %.2f ms)",
            caller.username,
            " ".join([req.type, req.address, *req.params]),
            job.vm_name,
            committed_ms,
        )
        job_id_var.reset(token)
        runner.submit(job)
    return created
