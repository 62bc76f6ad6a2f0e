"""What a call can fail with: CloudStack's error answer, or a job that did not finish in time."""

from __future__ import annotations

__all__ = ["ApiCallError", "JobTimeout"]


class ApiCallError(Exception):
    """The API refused a call: CloudStack's ``errorcode`` (also the HTTP status),
    ``cserrorcode`` (absent from a 401) and ``errortext``."""

    def __init__(
        self, command: str, errorcode: int, errortext: str, cserrorcode: int | None = None
    ) -> None:
        """An error answered to ``command``."""
        super().__init__(f"{command}: {errorcode} {errortext}")
        self.command = command
        self.errorcode = errorcode
        self.errortext = errortext
        self.cserrorcode = cserrorcode


class JobTimeout(TimeoutError):
    """An async job was still pending when the caller's deadline passed."""

    def __init__(self, jobid: str, timeout: float) -> None:
        """``jobid`` was pending after ``timeout`` seconds."""
        super().__init__(f"job {jobid} still pending after {timeout:g} s")
        self.jobid = jobid
        self.timeout = timeout
