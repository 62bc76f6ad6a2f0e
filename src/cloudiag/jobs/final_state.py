"""The final state of a job's row, from how the job ended: status, result code, jobresult."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloudiag import parsers
from cloudiag.bus.messages import RunResult
from cloudiag.domain import INTERNAL_ERROR_CODE, JobStatus

#: Who a shutdown's cancel requests name, and the errortext of every job a shutdown ends.
SHUTDOWN_BY = "management server shutdown"
SHUTDOWN_TEXT = "The management server shut down during the job; run the diagnostic again"
#: The same for the jobs a restarted server finds its previous run left on the agents.
RESTART_BY = "management server restart"
RESTARTED = "The management server stopped while the job ran; run the diagnostic again"
#: Who stopped a job, by the errortext it ends with.
_STOPPED_TEXT = {SHUTDOWN_BY: SHUTDOWN_TEXT, RESTART_BY: RESTARTED}


@dataclass(frozen=True)
class FinalState:
    """What a job's row holds once it has ended, and a few words on it for logs and events."""

    status: JobStatus
    code: int
    payload: dict[str, Any]
    summary: str

    @property
    def outcome(self) -> str:
        """How the job ended, in one word (the metrics' label): succeeded, timedout,
        cancelled or failed."""
        if self.status == JobStatus.SUCCEEDED:
            timed_out = self.payload.get("diagnostics", {}).get("timedout")
            return "timedout" if timed_out else "succeeded"
        return "cancelled" if self.payload.get("cancelled") else "failed"


def failed(errortext: str) -> FinalState:
    """A job that ended without a result."""
    return FinalState(
        JobStatus.FAILED,
        INTERNAL_ERROR_CODE,
        {"errorcode": INTERNAL_ERROR_CODE, "errortext": errortext},
        f"failed: {errortext}",
    )


def of_result(
    type_name: str, result: RunResult, host_name: str, target: str | None = None
) -> FinalState:
    """A job whose agent sent a result: succeeded, or failed with the output so far; or
    failed with the agent's reason when it did not run the job. ``target`` is the job's
    destination as asked for (the parsed summary names it)."""
    if result.refused:
        return failed(f"The agent for host {host_name} refused the job: {result.refused}")
    diagnostics: dict[str, Any] = {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "exitcode": result.exitcode,
        "timedout": result.timed_out,
        "truncated": result.truncated,
        "durationms": round(result.duration * 1000),
    }
    parsed = parsers.parse(type_name, result.stdout, result.stderr, result.exitcode, target=target)
    if parsed is not None:
        diagnostics["parsed"] = parsed
    if result.cancelled_by or result.error:
        # Failed as far as CloudStack clients know, with what the tool printed so far.
        if result.error:
            error = result.error
        else:
            error = _STOPPED_TEXT.get(result.cancelled_by, f"Cancelled by {result.cancelled_by}")
        payload = {
            "errorcode": INTERNAL_ERROR_CODE,
            "errortext": error,
            "cancelled": bool(result.cancelled_by),
            "diagnostics": diagnostics,
        }
        return FinalState(JobStatus.FAILED, INTERNAL_ERROR_CODE, payload, f"failed: {error}")
    summary = f"exit code {result.exitcode}" + (" (timed out)" if result.timed_out else "")
    return FinalState(JobStatus.SUCCEEDED, 0, {"diagnostics": diagnostics}, summary)


def of_data_result(result: RunResult, host_name: str, url: str) -> FinalState:
    """A getDiagnosticsData job whose agent sent a result: its zip's download URL (`url`,
    '' when there is no zip to offer), or why it failed."""
    if result.refused:
        return failed(f"The agent for host {host_name} refused the job: {result.refused}")
    if not url:
        why = result.error or _STOPPED_TEXT.get(result.cancelled_by, "")
        if not why and result.cancelled_by:
            why = f"Cancelled by {result.cancelled_by}"
        detail = result.stderr.strip()
        return failed(why or f"The VM sent no diagnostics data{': ' + detail if detail else ''}")
    return FinalState(
        JobStatus.SUCCEEDED,
        0,
        {"diagnostics": {"url": url}},
        f"diagnostics data, {result.archive_size} bytes",
    )
