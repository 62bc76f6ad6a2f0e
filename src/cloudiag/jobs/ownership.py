"""Which management server owns which job, and failing the jobs no server will finish.

Every job records the server that runs it (async_jobs.server_id). Each server stamps its
heartbeat in management_servers; while a server's stamp is fresh, its pending jobs are its
own to end. A server takes over at its start the jobs its previous run left (left_pending,
and the runner's recovery), and its periodic sweep takes over those of a server that
stopped beating (adopt_orphans): their requests and results are on the bus, so any server
can follow them to their end. The sweep fails only what nobody can finish. A parent job is
nobody's: it follows its children, and is settled in the transaction that fails them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from cloudiag.db.models import AsyncJob, ManagementServer, utcnow
from cloudiag.domain import MAX_TIME_LIMIT, JobStatus
from cloudiag.jobs import completion
from cloudiag.jobs.agent_protocol import RESULT_GRACE
from cloudiag.logs import job_id_var
from cloudiag.metrics import jobs as job_metrics

log = logging.getLogger(__name__)

#: Each server stamps its heartbeat and sweeps this often, by default
#: (CLOUDIAG_SWEEP_INTERVAL); the two times below follow it.
SWEEP_INTERVAL = 30.0
#: The sweep leaves younger jobs alone (one just created may not be held by its runner yet),
#: and fails a job of a server that never beat this long past its time limit.
ORPHAN_GRACE = 2 * SWEEP_INTERVAL
#: A server whose heartbeat is this old has stopped: others take over its pending jobs.
SERVER_TIMEOUT = 3 * SWEEP_INTERVAL
#: The errortexts of the jobs a sweep fails, by why nobody will finish them.
OUTCOME_LOST = "The management server could not store the job's outcome; run the diagnostic again"
PAST_LIMIT = (
    "No management server finished the job within its time limit (its server stopped); "
    "run the diagnostic again"
)

_child = aliased(AsyncJob)
#: A pending job that runs on an agent; not a parent job, whose state follows its children's.
_PENDING_RUN: ColumnElement[bool] = (AsyncJob.status == JobStatus.PENDING) & ~exists(
    select(_child.id).where(_child.parent_id == AsyncJob.id)
)


class Ownership:
    """One server's side of job ownership: its heartbeat, its recovery, its sweeps."""

    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        *,
        server_id: str,
        server_label: str,
        holds: Callable[[str], bool],
        sweep_interval: float = SWEEP_INTERVAL,
    ) -> None:
        self.db = db
        #: How often this server beats and sweeps; the others' must be the same (a setting
        #: of the whole cloud), since a server is judged dead after three of them.
        self.sweep_interval = sweep_interval
        self.server_timeout = 3 * sweep_interval
        self.orphan_grace = 2 * sweep_interval
        self.server_id = server_id
        self.server_label = server_label
        #: Whether this server's runner still holds a job (queued or running) by its id.
        self._holds = holds

    async def left_pending(self) -> list[str]:
        """The jobs an earlier run of this server left pending (it died while they ran)."""
        async with self.db() as db:
            rows = await db.scalars(
                select(AsyncJob.id).where(_PENDING_RUN, AsyncJob.server_id == self.server_id)
            )
            return list(rows)

    async def heartbeat(self, now: datetime | None = None) -> None:
        """Stamp this server's row: while it is fresh, other servers leave its jobs alone."""
        now = now or utcnow()
        async with self.db.begin() as db:
            row = await db.get(ManagementServer, self.server_id)
            if row is None:
                db.add(
                    ManagementServer(
                        id=self.server_id, name=self.server_label, started=now, last_seen=now
                    )
                )
            else:
                row.last_seen = now
                if row.name != self.server_label:  # Restarted elsewhere: same id, new place.
                    row.name, row.started = self.server_label, now

    async def adopt_orphans(self, now: datetime | None = None) -> list[str]:
        """Make this server the owner of the pending jobs of servers whose heartbeat went
        stale; the ids it took (the runner follows them from here).

        A dead server's jobs are not lost: their requests and results are on the bus, and
        any server can follow them to their end. One UPDATE per dead server, guarded by
        the old owner and the pending state, so that of several live servers sweeping at
        once each job goes to exactly one.
        """
        now = now or utcnow()
        stale = now - timedelta(seconds=self.server_timeout)
        taken: list[str] = []
        async with self.db.begin() as db:
            dead = await db.scalars(
                select(ManagementServer.id).where(
                    ManagementServer.last_seen < stale, ManagementServer.id != self.server_id
                )
            )
            for owner in list(dead):
                result = await db.execute(
                    update(AsyncJob)
                    .where(
                        _PENDING_RUN,
                        AsyncJob.server_id == owner,
                        AsyncJob.created < now - timedelta(seconds=self.orphan_grace),
                    )
                    .values(server_id=self.server_id)
                    .returning(AsyncJob.id)
                )
                ids = list(result.scalars())
                if ids:
                    log.warning(
                        "taking over %d jobs of server %s (no heartbeat for %g s)",
                        len(ids),
                        owner,
                        self.server_timeout,
                    )
                taken += ids
        return taken

    async def sweep(self, now: datetime | None = None) -> int:
        """Fail pending jobs no server will finish; how many.

        A job, queued or running, is its server's to end while that server's heartbeat is
        fresh; a dead server's jobs are taken over (adopt_orphans), not failed. The sweep
        fails a job only when it is this server's and its runner no longer holds it
        (storing its outcome failed), or its server never beat (an older version) and it
        is long past its time limit.
        """
        now = now or utcnow()
        async with self.db.begin() as db:
            servers = await db.execute(select(ManagementServer.id, ManagementServer.last_seen))
            beats = {server_id: last_seen for server_id, last_seen in servers}
            rows = (
                await db.execute(
                    select(
                        AsyncJob.id, AsyncJob.server_id, AsyncJob.created, AsyncJob.request
                    ).where(
                        _PENDING_RUN, AsyncJob.created < now - timedelta(seconds=self.orphan_grace)
                    )
                )
            ).all()
            orphans: dict[str, str] = {}
            for job_id, owner, created, request in rows:
                why = self._orphaned(job_id, owner, created, request, beats.get(owner), now)
                if why:
                    orphans[job_id] = why
            failed = await completion.fail_pending(db, orphans, now)
        _log_failed(failed, "swept")
        return len(failed)

    def _orphaned(
        self,
        job_id: str,
        owner: str,
        created: datetime,
        request: dict[str, Any] | None,
        last_seen: datetime | None,
        now: datetime,
    ) -> str:
        """Why nobody will finish this pending job (its errortext), or '' if its owner will."""
        if owner == self.server_id:
            return "" if self._holds(job_id) else OUTCOME_LOST
        if last_seen is not None:  # Its server's while it beats; adopted once it stops.
            return ""
        limit = float((request or {}).get("timelimit", MAX_TIME_LIMIT))
        late = (now - created).total_seconds() > limit + RESULT_GRACE + self.orphan_grace
        return PAST_LIMIT if late else ""


def _log_failed(failed: list[completion.FailedJob], how: str) -> None:
    """One line per failed job, under its job id, and its count in the metrics (after the
    commit: they are failed)."""
    for job in failed:
        job_metrics.ended(job.type_name or "unknown", "failed", job.created)
        token = job_id_var.set(job.job_id)
        log.warning("%s: %s (host %s)", how, job.errortext, job.host_name or "unknown")
        job_id_var.reset(token)
