"""nats-servers of a test's own, configured as the test needs."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from cloudiag.bus.embedded import NatsServerError, find_nats_server, free_port
from cloudiag.bus.streams import ensure_jetstream


@contextlib.asynccontextmanager
async def nats_process(
    tmp_path: Path, *lines: str, jetstream: bool = True, scheme: str = "nats"
) -> AsyncIterator[str]:
    """A nats-server of the test's own on loopback with these extra config lines (and
    JetStream, or not), its config in `tmp_path`; its URL. Stopped at the end."""
    try:
        binary = find_nats_server()
    except NatsServerError as exc:
        pytest.skip(str(exc))
    port = free_port()
    config = tmp_path / "nats.conf"
    text = [f"listen: {json.dumps(f'127.0.0.1:{port}')}", *lines]
    if jetstream:
        text.append(f"jetstream {{ store_dir: {json.dumps(str(tmp_path / 'js'))} }}")
    config.write_text("\n".join(text) + "\n")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-c",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if proc.returncode is not None:
                raise RuntimeError(f"nats-server exited with {proc.returncode} (its config?)")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            break
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


@contextlib.asynccontextmanager
async def nats_server(
    tmp_path: Path, max_payload: int = 0, *, jetstream: bool = True
) -> AsyncIterator[Client]:
    """A client of a nats-server of the test's own on loopback, with only that max_payload
    (0: nats-server's default), with JetStream and cloudiag's streams made (or without)."""
    extra = [f"max_payload: {max_payload}"] if max_payload else []
    async with nats_process(tmp_path, *extra, jetstream=jetstream) as url:
        nc = await nats.connect(url, allow_reconnect=False)
        try:
            if jetstream:
                await ensure_jetstream(nc)
            yield nc
        finally:
            await nc.close()
