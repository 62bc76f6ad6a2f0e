"""The streams and the job table cloudiag keeps on the bus: made once, kept as configured,
and a clear refusal from a NATS server without JetStream."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.api import RetentionPolicy, StorageType

from cloudiag.bus import pull, subjects
from cloudiag.bus.streams import JetStreamUnavailable, ensure_jetstream, stream_configs
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


async def test_an_older_store_is_moved_to_the_subjects_that_name_the_host(bus: Client) -> None:
    """Streams, the results consumer and the job table as an older version made them."""
    js = bus.jetstream()
    older = {
        subjects.RESULTS_STREAM: "cloudiag.job.*.result",
        subjects.OUTPUT_STREAM: "cloudiag.job.*.output",
    }
    for config in stream_configs():
        if config.name in older:
            await js.delete_stream(config.name)
            await js.add_stream(config.evolve(subjects=[older[config.name]]))
    old = pull.durable_config(subjects.RESULTS_CONSUMER, "cloudiag.job.*.result", 30, 10)
    await js.add_consumer(subjects.RESULTS_STREAM, old)
    jobs = await js.stream_info(f"KV_{subjects.JOBS_BUCKET}")
    jobs.config.allow_direct = False
    await js.update_stream(jobs.config)

    await ensure_jetstream(bus)
    new = pull.durable_config(subjects.RESULTS_CONSUMER, subjects.RESULTS_SUBJECTS, 30, 10)
    await js.add_consumer(subjects.RESULTS_STREAM, new)  # What pull.consume does at bind.

    results = await js.stream_info(subjects.RESULTS_STREAM)
    assert results.config.subjects == [subjects.RESULTS_SUBJECTS]
    output = await js.stream_info(subjects.OUTPUT_STREAM)
    assert output.config.subjects == [subjects.OUTPUT_SUBJECTS]
    consumer = await js.consumer_info(subjects.RESULTS_STREAM, subjects.RESULTS_CONSUMER)
    assert consumer.config.filter_subject == subjects.RESULTS_SUBJECTS
    assert (await js.stream_info(f"KV_{subjects.JOBS_BUCKET}")).config.allow_direct
