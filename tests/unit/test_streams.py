"""The streams and the job table cloudiag keeps on the bus: made once, kept as configured,
and a clear refusal from a NATS server without JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import RetentionPolicy, StorageType

from cloudiag.bus import subjects
from cloudiag.bus.embedded import NatsServerError, find_nats_server, free_port
from cloudiag.bus.streams import JetStreamUnavailable, ensure_jetstream


@contextlib.asynccontextmanager
async def nats_server(tmp_path: Path, *, jetstream: bool) -> AsyncIterator[Client]:
    """A client of a nats-server of the test's own, with or without JetStream."""
    try:
        binary = find_nats_server()
    except NatsServerError as exc:
        pytest.skip(str(exc))
    port = free_port()
    lines = [f"listen: {json.dumps(f'127.0.0.1:{port}')}"]
    if jetstream:
        lines.append(f"jetstream {{ store_dir: {json.dumps(str(tmp_path / 'js'))} }}")
    config = tmp_path / "nats.conf"
    config.write_text("\n".join(lines) + "\n")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-c",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        nc: Client | None = None
        for _ in range(250):
            try:
                nc = await nats.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False)
                break
            except Exception:
                await asyncio.sleep(0.02)
        assert nc is not None, "nats-server did not start"
        try:
            yield nc
        finally:
            await nc.close()
    finally:
        proc.terminate()
        await proc.wait()


async def test_requests_and_results_are_durable_work_queues(tmp_path: Path) -> None:
    async with nats_server(tmp_path, jetstream=True) as nc:
        js, kv = await ensure_jetstream(nc)
        await ensure_jetstream(nc)  # A second server (or agent) finds them made.
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
