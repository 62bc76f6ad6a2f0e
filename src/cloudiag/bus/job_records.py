"""Reading the agents' job table and the request stream: what both the agent and the
servers ask of them about one job."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from cloudiag.bus import subjects
from cloudiag.bus.messages import JobRecord


async def read(kv: KeyValue, host_id: str, job_id: str) -> JobRecord | None:
    """The job's record in the agents' job table, or None (none, or not readable)."""
    try:
        entry = await kv.get(subjects.job_key(host_id, job_id))
    except KeyNotFoundError:
        return None
    if not entry.value:
        return None
    try:
        return JobRecord.model_validate_json(entry.value)
    except ValidationError:
        return None


async def queued_request(js: JetStreamContext, host_id: str, job_id: str) -> RawStreamMsg | None:
    """The job's request while it waits in the request stream for its agent, or None."""
    try:
        return await js.get_msg(
            subjects.REQUESTS_STREAM, subject=subjects.agent_request(host_id, job_id)
        )
    except NotFoundError:
        return None
