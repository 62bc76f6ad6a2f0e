"""The JetStream stream that keeps job output lines, so a late viewer sees them from the start."""

from __future__ import annotations

import logging

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError, ServiceUnavailableError

from cloudiag.bus import subjects

log = logging.getLogger(__name__)

#: Output is for watching a run and re-opening it soon after; the job row keeps the result.
OUTPUT_MAX_AGE = 3600.0
OUTPUT_MAX_BYTES = 256 * 1024 * 1024


def output_stream_config() -> StreamConfig:
    """Memory storage, one hour, bounded: old lines go first."""
    return StreamConfig(
        name=subjects.OUTPUT_STREAM,
        subjects=[subjects.OUTPUT_SUBJECTS],
        storage=StorageType.MEMORY,
        max_age=OUTPUT_MAX_AGE,
        max_bytes=OUTPUT_MAX_BYTES,
        discard=DiscardPolicy.OLD,
    )


async def ensure_output_stream(nc: Client) -> JetStreamContext | None:
    """Create or update the output stream; None when the NATS server has no JetStream."""
    js = nc.jetstream()
    config = output_stream_config()
    try:
        try:
            await js.stream_info(subjects.OUTPUT_STREAM)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)
    except (ServiceUnavailableError, BadRequestError, TimeoutError) as exc:
        log.warning(
            "JetStream unavailable (%s): live output works, replay for late viewers does not", exc
        )
        return None
    return js
