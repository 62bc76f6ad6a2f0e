"""Sending a job's result: cut to fit the bus, and an error result if it cannot go."""

from __future__ import annotations

import logging
from typing import Protocol

from nats.errors import Error as NatsError

from cloudiag.bus import subjects
from cloudiag.bus.messages import RunResult

log = logging.getLogger(__name__)


class Bus(Protocol):
    """What the agent's jobs need of a NATS connection."""

    @property
    def max_payload(self) -> int:
        """The largest message the server accepts."""
        ...

    async def publish(self, subject: str, payload: bytes) -> None:
        """Send one message."""
        ...


def fit_result(result: RunResult, max_payload: int) -> RunResult:
    """The result, its output cut (and marked truncated) until its message fits max_payload.

    Both streams are cut in proportion, keeping their beginnings, and a note is added to
    stderr. JSON escaping makes the encoded size of a text hard to predict, so the message
    is measured and cut again until it fits; past a few rounds it goes without output.
    """
    if len(result.encode()) <= max_payload:
        return result
    note = f"\n[cloudiag] output cut to fit the message bus's limit of {max_payload} bytes\n"
    bare = result.model_copy(update={"stdout": "", "stderr": note, "truncated": True})
    framing = len(bare.encode())
    stdout, stderr = result.stdout, result.stderr
    for _ in range(8):
        if framing >= max_payload:
            break
        fitted = result.model_copy(
            update={"stdout": stdout, "stderr": stderr + note, "truncated": True}
        )
        text = len(fitted.encode()) - framing  # What the two streams take, escaped.
        if text <= max_payload - framing:
            return fitted
        ratio = (max_payload - framing) / text * 0.95
        stdout, stderr = stdout[: int(len(stdout) * ratio)], stderr[: int(len(stderr) * ratio)]
    return bare


async def send_result(bus: Bus, result: RunResult) -> None:
    """Publish a job's result, cut to fit the bus; if it still fails, say so instead.

    A result that never arrives leaves the job pending until the server gives up on it.
    """
    fitted = fit_result(result, bus.max_payload)
    if fitted is not result:
        log.warning("output cut to fit the bus's max_payload of %d bytes", bus.max_payload)
    try:
        await bus.publish(subjects.job_result(result.job_id), fitted.encode())
        return
    except NatsError as exc:
        log.error("could not send the result: %s", exc)
        reason = f"The agent could not send the result over the message bus ({exc})"
    failed = RunResult(
        job_id=result.job_id,
        stdout="",
        stderr="",
        exitcode=result.exitcode,
        duration=result.duration,
        error=reason,
    )
    try:
        await bus.publish(subjects.job_result(result.job_id), failed.encode())
    except NatsError as exc:
        log.error("could not send the failure either: %s", exc)
