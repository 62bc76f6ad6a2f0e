"""getDiagnosticsData's zips on the management server.

The agent puts a job's zip on the bus in chunks (bus/archives.py) before its result; the
server that stores the result takes the zip into its
data directory (checked against the result's size and SHA-256), deletes it from the bus and
stores the job's download URL. The URL is signed (HMAC-SHA256 with a key derived from the
server's secrets key, the same on every server of one key file), expires with the file
(diagnostics.data.max.file.age) and is bound to the user who ran the job: the download
must come from that user too (api/download.py). Zips past that age are deleted by the
garbage collector (diagnostics.data.gc.enable, …gc.interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from nats.js import JetStreamContext

from cloudiag.bus import archives as bus_archives
from cloudiag.bus.messages import RunResult
from cloudiag.jobs import final_state
from cloudiag.jobs.diagnostics_job import DiagnosticsJob
from cloudiag.jobs.final_state import FinalState
from cloudiag.sysvm import collect

log = logging.getLogger(__name__)

#: The data directory's folder of zips.
FOLDER = "diagnostics-data"
#: Where the zips are served: /client/diagnosticsdata/<job id>.zip?user=…&until=…&token=…
URL_PATH = "/client/diagnosticsdata"


class ArchiveMissing(Exception):
    """The zip of a job cannot be had (not on the bus, or not what the result says)."""


@dataclass(frozen=True)
class DataArchives:
    """The zips this server keeps, and how their URLs are signed and checked."""

    directory: Path
    key: bytes
    #: diagnostics.data.max.file.age: a zip is kept, and its URL valid, this long (s).
    max_age: int

    def path(self, job_id: str) -> Path:
        """Where the job's zip is kept (job_id is a uuid: no path can come of it)."""
        return self.directory / f"{uuid.UUID(job_id)}.zip"

    def token(self, job_id: str, user_id: str, until: int) -> str:
        """The URL's signature of the job's zip for that user until then (Unix time)."""
        text = f"{job_id}\n{user_id}\n{until}".encode()
        return hmac.new(self.key, text, hashlib.sha256).hexdigest()

    def url(self, job_id: str, user_id: str, now: float | None = None) -> str:
        """The job's download URL for its user, from the server's root, valid max_age s."""
        until = int((now if now is not None else time.time()) + self.max_age)
        query = urlencode(
            {"user": user_id, "until": until, "token": self.token(job_id, user_id, until)}
        )
        return f"{URL_PATH}/{job_id}.zip?{query}"

    def refusal(self, job_id: str, user_id: str, until: str, token: str, now: float) -> str:
        """Why this URL is not (or no longer) valid, or ''."""
        if not until.isdigit():
            return "The download link is not valid"
        want = self.token(job_id, user_id, int(until))
        if not hmac.compare_digest(want, token):
            return "The download link is not valid"
        if int(until) < now:
            return "The download link has expired"
        return ""

    async def take(
        self, js: JetStreamContext, host_id: str, job_id: str, result: RunResult
    ) -> None:
        """Move the job's zip from the bus into the data directory; ArchiveMissing if the
        bus does not have it as the result describes it (and this server has no copy)."""
        path = self.path(job_id)
        data = await bus_archives.take(js, host_id, job_id, result.archive_size)
        if data is None:
            # A second copy of the result, after this server took the zip already.
            if await asyncio.to_thread(_matches, path, result.archive_sha256):
                return
            raise ArchiveMissing("the zip is not on the message bus any more")
        if len(data) != result.archive_size or (
            hashlib.sha256(data).hexdigest() != result.archive_sha256
        ):
            raise ArchiveMissing("the zip on the message bus is not the one the agent sent")
        await asyncio.to_thread(_write, path, data)
        with contextlib.suppress(Exception):
            await bus_archives.drop(js, host_id, job_id)
        log.info("diagnostics data stored: %s, %d bytes", path.name, len(data))

    def collect_garbage(self, now: float | None = None) -> int:
        """Delete the zips older than max_age; how many. Blocking: use a thread."""
        limit = (now if now is not None else time.time()) - self.max_age
        removed = 0
        if not self.directory.is_dir():
            return 0
        for path in self.directory.glob("*.zip"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
        return removed


def _matches(path: Path, sha256: str) -> bool:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False


def _write(path: Path, data: bytes) -> None:
    """Write the zip atomically (0600, in a 0700 folder)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    part = path.with_suffix(".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    part.replace(path)


async def final_of(
    job: DiagnosticsJob, result: RunResult, js: JetStreamContext, archives: DataArchives | None
) -> FinalState:
    """The job's final state from its agent's result; a getDiagnosticsData job's zip is
    taken into the data directory first, and its URL is the job's result."""
    if job.request.type != collect.TYPE_NAME:
        return final_state.of_result(job.request.type, result, job.host_name, job.request.address)
    if result.refused or result.error or result.cancelled_by or not result.archive_size:
        return final_state.of_data_result(result, job.host_name, "")
    if archives is None:
        return final_state.failed("This management server keeps no diagnostics data")
    try:
        await archives.take(js, job.host_id, job.job_id, result)
    except ArchiveMissing as exc:
        return final_state.failed(f"The diagnostics data was lost: {exc}")
    return final_state.of_data_result(result, job.host_name, archives.url(job.job_id, job.user_id))
