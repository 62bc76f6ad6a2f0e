"""Sending a job's result: cut to fit the bus, and delivered until the results stream has it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from cloudiag.agent.job_table import JobTable
from cloudiag.agent.result_spool import ResultSpool
from cloudiag.backoff import Backoff
from cloudiag.bus import streams, subjects
from cloudiag.bus.messages import RunResult

log = logging.getLogger(__name__)

#: Room left in a message for its headers and subject.
RESULT_HEADROOM = 1024
PUBLISH_TIMEOUT = 5.0
#: Back-off between attempts while the bus is away.
RETRY_FIRST = 0.2
RETRY_MAX = 5.0


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


class ResultSender:
    """Puts results in the results stream, each until the stream has it; then records it.

    Publishing waits for JetStream's acknowledgement (the result is stored on the bus) and
    carries the job id as message id, so the stream drops a second result of the same job
    within its duplicate window: that is what makes the order safe. An agent that dies
    before the stream has the result leaves the job `running` in its table, and its next
    process sends "the agent restarted during the job"; one that dies after, but before the
    table says so, sends the same, which the stream drops as a duplicate of the real one.
    While the bus is away the result is tried again with back-off, as long as the agent runs.
    """

    def __init__(
        self,
        js: Callable[[], JetStreamContext],
        table: JobTable,
        max_payload: Callable[[], int],
        spool: ResultSpool | None = None,
    ) -> None:
        self._js = js
        self._table = table
        self._max_payload = max_payload
        #: Where results wait on disk for the stream (None: in memory only).
        self._spool = spool

    async def send(self, result: RunResult) -> None:
        """Deliver the result to the results stream, then record it in the job table.

        It is written to disk while it is published, not before: the disk is there for a
        result the stream cannot take now, and the agent dying meanwhile loses no more
        than it would while the file was being written first (the job table says the job
        was running, and the next agent process says so).
        """
        fitted = fit_result(result, self._max_payload() - RESULT_HEADROOM)
        if fitted is not result:
            log.warning("output cut to fit the bus's max_payload")
        kept = asyncio.create_task(self._keep(fitted)) if self._spool is not None else None
        try:
            await self._retry("send the result", lambda: self._publish(fitted))
        finally:
            # Its file is complete before it is removed (or kept, if the send was cancelled).
            if kept is not None:
                await asyncio.shield(kept)
        await self._retry("record the result", lambda: self._table.finish(fitted))
        if self._spool is not None:
            try:
                await self._spool.done(fitted.job_id)
            except OSError as exc:
                log.warning("could not remove the delivered result from disk: %s", exc)

    async def _keep(self, result: RunResult) -> None:
        assert self._spool is not None
        try:
            await self._spool.keep(result)
        except OSError as exc:  # A full disk must not cost the result: it can still go.
            log.error("could not keep the result on disk: %s", exc)

    async def _publish(self, result: RunResult) -> None:
        await self._js().publish(
            subjects.job_result(self._table.host_id, result.job_id),
            result.encode(),
            timeout=PUBLISH_TIMEOUT,
            stream=subjects.RESULTS_STREAM,
            headers={streams.MSG_ID: result.job_id},
        )

    async def _retry(self, what: str, attempt: Callable[[], Awaitable[object]]) -> None:
        backoff = Backoff(first=RETRY_FIRST, longest=RETRY_MAX)
        while True:
            try:
                await attempt()
                return
            except (NatsError, OSError, TimeoutError) as exc:
                delay = backoff.delay()
                log.warning("could not %s (%s); again in %g s", what, exc, delay)
            await asyncio.sleep(delay)
