"""The agent protocol: ask a host's agent to run or stop a job, and follow it to its result.

Over NATS: a request to the host's agent, which accepts or refuses; then the job's output
lines and its result on the job's subjects; meanwhile a status request now and then tells
whether the agent still runs the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import ValidationError

from cloudiag.bus import subjects
from cloudiag.bus.messages import (
    CancelReply,
    CancelRequest,
    OutputLine,
    RunAccepted,
    RunResult,
    StatusReply,
)
from cloudiag.jobs.diagnostics_job import DiagnosticsJob, JobFailed

log = logging.getLogger(__name__)

#: How long a connected agent has to accept a request before the job fails. An agent that
#: is gone is known at once (no responders); this only bounds a busy one, whose event loop
#: can lag seconds behind when hundreds of tools start at once on a small host.
ACCEPT_TIMEOUT = 15.0
#: While waiting for a result, check this often that the agent still runs the job.
LIVENESS_INTERVAL = 3.0
#: Slack beyond the time limit for the agent to kill the tool and send what it has.
RESULT_GRACE = 10.0
#: After the agent says it is not running the job, its result may already be queued here
#: (NATS keeps one connection's messages in order: the result came before the reply).
LOST_GRACE = 1.0


class AgentClient:
    """Speaks to the hosts' agents for the job engine."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc

    async def run(self, job: DiagnosticsJob) -> RunResult:
        """Have the job run on its host's agent; its result, or JobFailed saying why not."""
        # Subscribe before asking, so not even the first output line can be missed.
        sub = await self.nc.subscribe(subjects.job_all(job.job_id))
        try:
            await self._ask(job)
            return await self._follow(job, sub)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def cancel(
        self, job_id: str, host_id: str, by: str, timeout: float = ACCEPT_TIMEOUT
    ) -> str:
        """Ask the agent running the job to stop it; '' when it will, else why not."""
        try:
            reply = await self.nc.request(
                subjects.agent_cancel(host_id),
                CancelRequest(job_id=job_id, by=by).encode(),
                timeout=timeout,
            )
        except NoRespondersError:
            return "the agent of the VM's host is not connected"
        except NatsTimeout:
            return "the agent of the VM's host did not answer"
        except NatsError as exc:
            return f"the message bus is unavailable ({exc})"
        try:
            answer = CancelReply.model_validate_json(reply.data)
        except ValidationError:
            return "the agent sent a malformed answer"
        return "" if answer.cancelled else f"the agent is not running it ({answer.error})"

    async def _ask(self, job: DiagnosticsJob) -> None:
        host = f"{job.host_name} ({job.host_id})"
        try:
            reply = await self.nc.request(
                subjects.agent_run(job.host_id), job.request.encode(), timeout=ACCEPT_TIMEOUT
            )
        except NoRespondersError:
            raise JobFailed(f"The agent for host {host} is not connected") from None
        except NatsTimeout:
            raise JobFailed(
                f"The agent for host {host} did not answer within {ACCEPT_TIMEOUT:g} s"
            ) from None
        except NatsError as exc:
            raise JobFailed(f"The message bus is unavailable ({exc}); run it again") from None
        try:
            accepted = RunAccepted.model_validate_json(reply.data)
        except ValidationError:
            raise JobFailed(f"The agent for host {host} sent a malformed answer") from None
        if not accepted.accepted:
            raise JobFailed(f"The agent for host {host} refused the job: {accepted.error}")
        log.info("accepted by agent of %s", host)

    async def _follow(self, job: DiagnosticsJob, sub: Any) -> RunResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + job.request.time_limit + RESULT_GRACE
        lines = 0
        #: Why the agent will send nothing more, once we know; the result may still be in
        #: flight (it finished just before we asked), so it gets LOST_GRACE to arrive.
        lost: str = ""
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise JobFailed(
                    lost
                    or f"No result from the agent of host {job.host_name} within the time "
                    f"limit of {job.request.time_limit:g} s"
                )
            try:
                msg = await sub.next_msg(timeout=min(LIVENESS_INTERVAL, remaining))
            except NatsTimeout:
                if not lost:
                    lost = await self._check_alive(job)
                    if lost:
                        deadline = min(deadline, loop.time() + LOST_GRACE)
                continue
            if msg.subject == subjects.job_result(job.job_id):
                try:
                    result = RunResult.model_validate_json(msg.data)
                except ValidationError:
                    raise JobFailed("The agent sent a malformed result") from None
                log.info("result exitcode=%s lines=%d", result.exitcode, lines)
                return result
            with contextlib.suppress(ValidationError):
                OutputLine.model_validate_json(msg.data)
                lines += 1

    async def _check_alive(self, job: DiagnosticsJob) -> str:
        """Why the agent will never send a result (gone, or not running the job), or ''."""
        try:
            reply = await self.nc.request(subjects.agent_status(job.host_id), b"", timeout=2)
        except NoRespondersError:
            return f"The agent for host {job.host_name} ({job.host_id}) disconnected during the job"
        except (NatsTimeout, NatsError):
            # Busy, slow, or the bus is reconnecting: the overall deadline bounds the wait.
            return ""
        with contextlib.suppress(ValidationError):
            status = StatusReply.model_validate_json(reply.data)
            if job.job_id not in status.running:
                return (
                    f"The agent for host {job.host_name} is no longer running the job "
                    "(it restarted or lost it)"
                )
        return ""
