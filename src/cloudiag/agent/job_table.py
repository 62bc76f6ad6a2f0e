"""The agent's table of its recent jobs, in a JetStream key-value bucket.

A job's record is created once, atomically, when the agent takes its request: a duplicated
or replayed request finds it and is not run again, even by a restarted agent. The record
says what became of the job (running, or finished with its result), so that after any
restart or reconnect a management server gets the truth, and a restarted agent can finish
what its previous run left: a job that was running died with it, a result not yet in the
results stream is sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from cloudiag.bus import job_records, subjects
from cloudiag.bus.messages import JobRecord, RunResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Leftover:
    """A job an earlier run of this agent left unfinished in the table."""

    job_id: str
    record: JobRecord


class JobTable:
    """One host's jobs in the shared bucket, written by this agent process (`session`)."""

    def __init__(
        self, bucket: Callable[[], Awaitable[KeyValue]], host_id: str, session: str
    ) -> None:
        self._bucket = bucket
        self.host_id = host_id
        self.session = session

    async def claim(self, job_id: str, record: JobRecord) -> JobRecord | None:
        """Record the job as this agent's; None when done, or the record already there."""
        key = subjects.job_key(self.host_id, job_id)
        bucket = await self._bucket()
        try:
            await bucket.create(key, record.encode())
        except KeyWrongLastSequenceError:
            return await self.get(job_id) or record
        return None

    async def get(self, job_id: str) -> JobRecord | None:
        """The job's record, or None."""
        return await job_records.read(await self._bucket(), self.host_id, job_id)

    async def finish(self, result: RunResult) -> None:
        """Record the job's result, once it is in the results stream."""
        record = JobRecord(state="finished", session=self.session, result=result, published=True)
        bucket = await self._bucket()
        await bucket.put(subjects.job_key(self.host_id, result.job_id), record.encode())

    async def leftovers(self, nc: Client) -> list[Leftover]:
        """Jobs an earlier agent process left running, and results it may not have sent."""
        found = []
        # This host's keys only: the bucket holds every host's jobs.
        for job_id, value in await job_records.host_records(nc, self.host_id):
            try:
                record = JobRecord.model_validate_json(value)
            except ValidationError:
                continue
            # Its own, or a server's record of a request it withdrew (no agent ran it).
            if record.session in (self.session, ""):
                continue
            unsent = record.result is not None and not record.published
            if record.state == "running" or unsent:
                found.append(Leftover(job_id, record))
        return found
