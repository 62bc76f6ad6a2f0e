"""Reading the agents' job table and the request stream: what both the agent and the
servers ask of them about one job."""

from __future__ import annotations

import secrets

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RawStreamMsg
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


#: The stream behind the job table (JetStream names a bucket's stream KV_<bucket>).
JOBS_STREAM = f"KV_{subjects.JOBS_BUCKET}"
#: How long the consumer that lists a host's records outlives its reader, at most.
LISTING_IDLE = 10.0


def host_keys(host_id: str) -> str:
    """The subjects of one host's records in the job table."""
    return f"$KV.{subjects.JOBS_BUCKET}.{subjects.job_key(host_id, '>')}"


async def host_records(nc: Client, host_id: str, timeout: float = 10.0) -> list[tuple[str, bytes]]:
    """The latest record of each job of one host, as (job id, value); deleted ones left out.

    Through a consumer named and filtered in its create subject, the only kind an agent
    may make (bus/authorization.py): a key-value watch makes one whose filter its
    permissions could not hold to its own host.
    """
    js = nc.jetstream()
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    try:
        info = await js.add_consumer(
            JOBS_STREAM,
            ConsumerConfig(
                name=f"list-{host_id}-{secrets.token_hex(6)}",
                deliver_subject=inbox,
                filter_subject=host_keys(host_id),
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=LISTING_IDLE,
                mem_storage=True,
            ),
        )
        prefix = host_keys(host_id)[:-1]
        found = []
        for _ in range(info.num_pending or 0):
            msg = await sub.next_msg(timeout=timeout)
            if msg.data:
                found.append((msg.subject[len(prefix) :], msg.data))
        return found
    finally:
        await sub.unsubscribe()
