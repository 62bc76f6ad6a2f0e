"""The private nats-server: restarted on its port with its streams, and gone with its parent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest
from nats.js.api import StorageType

from cloudiag.bus.embedded import EmbeddedNats, NatsServerError, find_nats_server
from cloudiag.bus.nkey_files import new_seed, public_key
from cloudiag.supervisor import Backoff
from tests.processes import alive


@pytest.fixture(autouse=True)
def _nats_server_installed() -> None:
    try:
        find_nats_server()
    except NatsServerError as exc:
        pytest.skip(str(exc))


def _wait_gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


async def test_a_killed_server_is_restarted_on_its_port_with_its_streams(tmp_path: Path) -> None:
    seed = new_seed()
    server = EmbeddedNats(tmp_path / "nats", public_key(seed), backoff=Backoff(first=0.05))
    url = await server.start()
    try:
        nc = await nats.connect(
            url, max_reconnect_attempts=-1, reconnect_time_wait=0.1, nkeys_seed_str=seed
        )
        try:
            js = nc.jetstream()
            await js.add_stream(name="KEPT", subjects=["kept.>"], storage=StorageType.FILE)
            await js.publish("kept.one", b"survives")
            first = server.pid
            assert first is not None
            os.kill(first, signal.SIGKILL)
            async with asyncio.timeout(30):
                while server.pid == first or not nc.is_connected:
                    await asyncio.sleep(0.05)
                info = await js.stream_info("KEPT")
            assert server.url == url  # Same port.
            assert info.state.messages == 1
            assert (await js.get_msg("KEPT", 1)).data == b"survives"
        finally:
            await nc.close()
    finally:
        await server.stop()
    assert server.pid is not None and not alive(server.pid)


_PARENT = """
import asyncio, sys
from pathlib import Path
from cloudiag.bus.embedded import EmbeddedNats
from cloudiag.bus.nkey_files import new_seed, public_key

async def main() -> None:
    server = EmbeddedNats(Path(sys.argv[1]), public_key(new_seed()))
    await server.start()
    print(server.pid, flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


def test_the_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    # As a SIGKILLed `cloudiag serve`: no cleanup runs, the kernel's parent-death signal must.
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path / "nats")], stdout=subprocess.PIPE, text=True
    )
    pid = 0
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert alive(pid)
        parent.kill()
        parent.wait()
        assert _wait_gone(pid), "nats-server outlived its parent"
    finally:
        parent.kill()
        parent.wait()
        if pid and alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
