"""The streams and the job table cloudiag keeps on the bus: made once, kept as configured,
and a clear refusal from a NATS server without JetStream."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.api import RetentionPolicy, StorageType

from cloudiag.bus import subjects
from cloudiag.bus.streams import JetStreamUnavailable, ensure_jetstream
from tests.unit.nats_servers import nats_server


async def test_requests_and_results_are_durable_work_queues(bus: Client) -> None:
    js, kv = await ensure_jetstream(bus)  # The fixture made them: a second maker finds them.
    for name in (subjects.REQUESTS_STREAM, subjects.RESULTS_STREAM):
        config = (await js.stream_info(name)).config
        assert config.storage == StorageType.FILE
        assert config.retention == RetentionPolicy.WORK_QUEUE
        assert config.duplicate_window and config.duplicate_window >= 60
    assert (await js.stream_info(subjects.OUTPUT_STREAM)).config.storage == StorageType.MEMORY
    status = await kv.status()
    assert status.bucket == subjects.JOBS_BUCKET and status.history == 1


async def test_a_nats_server_without_jetstream_is_a_clear_error(tmp_path: Path) -> None:
    async with nats_server(tmp_path, jetstream=False) as nc:
        with pytest.raises(JetStreamUnavailable, match="run nats-server with -js"):
            await ensure_jetstream(nc)
