"""getDiagnosticsData zips on the bus: the agent publishes a job's zip in chunks on its own
host's subjects (bus/subjects.job_data), the server that stores the job's result reads
them back by subject and purges them.

Chunks on per-host subjects rather than an object store, so that the bus's permissions
(bus/authorization.py) let an agent write its own host's zips only, and read none.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from cloudiag.bus import subjects
from cloudiag.bus.streams import MSG_ID

#: Bytes per chunk: well under nats-server's default max_payload (1 MiB).
CHUNK_SIZE = 256 * 1024


def chunks(size: int) -> int:
    """How many chunks a zip of ``size`` bytes travels in (at least one)."""
    return max(1, -(-size // CHUNK_SIZE))


async def put(js: JetStreamContext, host_id: str, job_id: str, data: bytes) -> None:
    """Publish a job's zip, chunk by chunk, each acknowledged by the stream (a copy sent
    twice, on a retry, is dropped by its message id)."""
    for index in range(chunks(len(data))):
        piece = data[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]
        await js.publish(
            subjects.job_data(host_id, job_id, index),
            piece,
            stream=subjects.DATA_STREAM,
            headers={MSG_ID: f"{job_id}.{index}"},
        )


async def take(js: JetStreamContext, host_id: str, job_id: str, size: int) -> bytes | None:
    """A job's zip of ``size`` bytes as its agent published it; None if a chunk is gone."""
    parts = []
    for index in range(chunks(size)):
        try:
            msg = await js.get_last_msg(
                subjects.DATA_STREAM, subjects.job_data(host_id, job_id, index)
            )
        except NotFoundError:
            return None
        parts.append(msg.data or b"")
    return b"".join(parts)


async def drop(js: JetStreamContext, host_id: str, job_id: str) -> None:
    """Remove a job's chunks from the bus (taken, or no longer wanted)."""
    await js.purge_stream(subjects.DATA_STREAM, subject=subjects.job_data(host_id, job_id, "*"))
