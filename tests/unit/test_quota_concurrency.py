"""The diagnostics limits hold exactly under many concurrent runDiagnostics, on SQLite and on
PostgreSQL: with the serialization only around the count and the insert, never more jobs are
admitted than a limit allows, and never fewer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.bus.messages import RunResult
from cloudiag.db.models import AsyncJob
from cloudiag.domain import Caller, JobStatus, LimitExceeded
from cloudiag.jobs import outcomes
from cloudiag.jobs.final_state import of_result
from cloudiag.services import used_signatures
from cloudiag.services.quotas import Quotas
from cloudiag.services.runs import Limits, start_diagnostics
from tests.databases import migrated
from tests.unit.zone_rows import CommitsOnly, add_zone

CALLER = Caller(id="user-1", username="u", role="Admin", account_id="acct", domain_id="dom")
VMS = {"r-1-VM": "domainrouter", "s-2-VM": "secondarystoragevm", "v-3-VM": "consoleproxy"}
CALLS = 60


@pytest.fixture(params=["sqlite", "postgresql"])
async def sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A migrated database of each backend holding one host with three system VMs."""
    async with migrated(request.param, tmp_path) as factory:
        await add_zone(factory, CALLER, VMS, host_name="host")
        yield factory


async def _fire(
    sessions: async_sessionmaker[AsyncSession], quotas: Quotas, vms: list[str]
) -> tuple[int, list[str]]:
    """CALLS concurrent runs spread over `vms`: how many were admitted, the refusals' texts."""

    async def one(i: int) -> str:
        try:
            await start_diagnostics(
                sessions,
                CommitsOnly(),  # type: ignore[arg-type]
                CALLER,
                target_ids=[vms[i % len(vms)]],
                type_name="ping",
                address="192.0.2.1",
                params="-c 1",
                limits=Limits(time_limit=None, quotas=quotas),
            )
        except LimitExceeded as exc:
            return str(exc)
        return ""

    answers = await asyncio.gather(*(one(i) for i in range(CALLS)))
    refusals = [a for a in answers if a]
    return CALLS - len(refusals), refusals


async def _pending(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as s:
        query = select(func.count()).where(AsyncJob.status == JobStatus.PENDING)
        return int((await s.execute(query)).scalar_one())


async def test_the_per_vm_limit_holds(sessions: async_sessionmaker[AsyncSession]) -> None:
    quotas = Quotas(per_vm=5, per_host=0, per_user=0, rate=0)
    admitted, refusals = await _fire(sessions, quotas, ["r-1-VM"])
    assert admitted == 5 and await _pending(sessions) == 5
    assert all("The VM r-1-VM already has 5" in text for text in refusals)


async def test_the_per_vm_limit_holds_on_each_vm(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    quotas = Quotas(per_vm=4, per_host=0, per_user=0, rate=0)
    admitted, _ = await _fire(sessions, quotas, list(VMS))
    assert admitted == 12 and await _pending(sessions) == 12


async def test_the_per_user_and_host_limits_hold(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    admitted, _ = await _fire(sessions, Quotas(per_vm=0, per_host=0, per_user=7, rate=0), [*VMS])
    assert admitted == 7
    admitted, refusals = await _fire(
        sessions, Quotas(per_vm=0, per_host=11, per_user=0, rate=0), [*VMS]
    )
    assert admitted == 4 and await _pending(sessions) == 11  # 7 before, 4 more
    assert all("The host of" in text for text in refusals)


async def test_the_rate_limit_holds(sessions: async_sessionmaker[AsyncSession]) -> None:
    admitted, refusals = await _fire(
        sessions, Quotas(per_vm=0, per_host=0, per_user=0, rate=9, rate_interval=60), [*VMS]
    )
    assert admitted == 9
    assert all("The limit of 9 diagnostics per 60 s" in text for text in refusals)


async def test_hundreds_of_concurrent_writers_share_the_pool_without_starving(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """More calls than the pool has connections, each spending a signature, creating a job
    and storing its outcome: on SQLite the writers' lock is never awaited while holding a
    connection, so none waits for the pool's timeout."""
    quotas = Quotas(per_vm=0, per_host=0, per_user=0, rate=0)

    async def one(i: int) -> None:
        assert await used_signatures.use(sessions, f"digest-{i}", None)
        run = await start_diagnostics(
            sessions,
            CommitsOnly(),  # type: ignore[arg-type]
            CALLER,
            target_ids=[list(VMS)[i % 3]],
            type_name="ping",
            address="192.0.2.1",
            params="-c 1",
            limits=Limits(time_limit=None, quotas=quotas),
        )
        job = run.jobs[0]
        result = RunResult(job_id=job.job_id, stdout="", stderr="", exitcode="0")
        assert await outcomes.store_once(sessions, job, of_result("ping", result, "host"))

    async with asyncio.timeout(60):
        await asyncio.gather(*(one(i) for i in range(200)))
    assert await _pending(sessions) == 0


async def _start(
    sessions: async_sessionmaker[AsyncSession], quotas: Quotas, use: used_signatures.Use
) -> None:
    await start_diagnostics(
        sessions,
        CommitsOnly(),  # type: ignore[arg-type]
        CALLER,
        target_ids=["r-1-VM"],
        type_name="ping",
        address="192.0.2.1",
        params="-c 1",
        limits=Limits(time_limit=None, quotas=quotas),
        signature=use,
    )


async def test_concurrent_copies_of_a_signature_create_one_job(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The signature is spent in the job's transaction: of 20 concurrent copies one creates
    its job, the others find it used; a refused call (a limit) leaves it unspent."""
    lifted = Quotas(per_vm=0, per_host=0, per_user=0, rate=0)
    use = used_signatures.Use("digest-once", None)
    answers = await asyncio.gather(
        *(_start(sessions, lifted, use) for _ in range(20)), return_exceptions=True
    )
    assert sum(1 for a in answers if a is None) == 1
    assert all(isinstance(a, used_signatures.SignatureUsed) for a in answers if a is not None)
    assert await _pending(sessions) == 1
    full = Quotas(per_vm=1, per_host=0, per_user=0, rate=0)
    refused = used_signatures.Use("digest-refused", None)
    with pytest.raises(LimitExceeded):
        await _start(sessions, full, refused)
    await _start(sessions, lifted, refused)  # Not spent by the refusal: it works now.
    assert await _pending(sessions) == 2
