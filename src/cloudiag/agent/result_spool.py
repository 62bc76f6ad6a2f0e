"""Results kept on the agent's disk until the results stream has them.

A result lives in the agent's memory between the tool's end and JetStream's
acknowledgement; while the bus is away that can be minutes, and an agent that dies then
(a host reboot, an upgrade) would lose it. So each result is written here first, one file
per job, and removed once the stream and the job table have it; a starting agent sends
whatever its predecessor left here (the stream drops a copy it already has).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from pydantic import ValidationError

from cloudiag.bus.messages import RunResult

log = logging.getLogger(__name__)


class ResultSpool:
    """One host's results not yet delivered, in a private folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    async def keep(self, result: RunResult) -> None:
        """Write the result (atomically: a crash leaves the old file or the new one)."""
        await asyncio.to_thread(self._write, result)

    async def done(self, job_id: str) -> None:
        """Forget the result: the stream has it."""
        await asyncio.to_thread(self._path(job_id).unlink, missing_ok=True)

    async def left(self) -> list[RunResult]:
        """The results an earlier agent process kept and did not deliver."""
        return await asyncio.to_thread(self._read_all)

    def _write(self, result: RunResult) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = self._path(result.job_id)
        partial = final.with_suffix(".tmp")
        # Output can say much about the network: readable by the agent's user only.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(result.encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(partial, final)

    def _read_all(self) -> list[RunResult]:
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                found.append(RunResult.model_validate_json(path.read_bytes()))
            except (OSError, ValidationError) as exc:
                log.warning("unreadable kept result %s dropped: %s", path.name, exc)
                path.unlink(missing_ok=True)
        return found
