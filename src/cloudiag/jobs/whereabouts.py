"""What became of a job sent to an agent: the truth from the bus, not a guess.

The request stream says whether the request still waits for its agent; the agents' job
table says whether the agent took it, and how it ended. The order of the two reads
matters: an agent records a job before it acknowledges (removes) its request, so a request
found in neither place was never taken and is not waiting: nobody knows the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from cloudiag.bus import job_records
from cloudiag.bus.messages import JobRecord, RunResult

State = Literal["queued", "running", "finished", "withdrawn", "unknown", "unreachable"]


@dataclass(frozen=True)
class Whereabouts:
    """Where a job is: waiting in the stream, running on its agent, finished with a result,
    withdrawn by a server, unknown to everyone, or not known now (the bus is away)."""

    state: State
    result: RunResult | None = None
    #: The agent process that runs it, when running.
    session: str = ""
    #: When the agent took it (Unix time), when running.
    started: float = 0.0


def _of(found: JobRecord) -> Whereabouts:
    if found.session == "":
        return Whereabouts("withdrawn", found.result)
    if found.state == "finished" and found.result is not None:
        return Whereabouts("finished", found.result, found.session)
    return Whereabouts("running", session=found.session, started=found.started)


async def find(js: JetStreamContext, kv: KeyValue, host_id: str, job_id: str) -> Whereabouts:
    """Ask the bus what became of the job."""
    try:
        found = await job_records.read(kv, host_id, job_id)
        if found is not None:
            return _of(found)
        if await job_records.queued_request(js, host_id, job_id) is not None:
            return Whereabouts("queued")
        # Taken between the two reads: the record was written before the request went.
        found = await job_records.read(kv, host_id, job_id)
        return _of(found) if found is not None else Whereabouts("unknown")
    except (NatsError, TimeoutError, OSError):
        return Whereabouts("unreachable")
