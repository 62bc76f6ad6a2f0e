"""The agent protocol as the job engine speaks it: hand a job to its host's agent through
the request stream, ask what became of it, withdraw it, cancel it.

Requests go through JetStream (stored on the bus until the agent takes them, each at most
once); results come back through the results stream (jobs/result_intake.py). Cancel and
the agent's status are live request/reply: they matter only while the agent is there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from cloudiag.backoff import Backoff
from cloudiag.bus import job_records, streams, subjects
from cloudiag.bus.messages import CancelReply, CancelRequest, JobRecord, RunResult
from cloudiag.jobs import whereabouts
from cloudiag.jobs.diagnostics_job import DiagnosticsJob, JobFailed
from cloudiag.jobs.whereabouts import Whereabouts

log = logging.getLogger(__name__)

#: Slack beyond a job's time limit for the agent to kill the tool and send what it has.
RESULT_GRACE = 10.0
#: How long a cancel or a status request waits for the agent.
ANSWER_TIMEOUT = 5.0
PUBLISH_TIMEOUT = 5.0
RETRY_FIRST = 0.2
RETRY_MAX = 2.0
#: The errortext of a job the server withdrew because no agent took it in time.
WITHDRAWN = "withdrawn by the management server"


class AgentClient:
    """Speaks to the hosts' agents for the job engine."""

    def __init__(self, nc: Client, bus: Callable[[], tuple[JetStreamContext, KeyValue]]) -> None:
        self.nc = nc
        self._bus = bus

    async def send(self, job: DiagnosticsJob) -> None:
        """Put the job's request in the stream, trying again while the bus is away; JobFailed
        once its deadline to start has passed without the stream taking it."""
        req = job.request
        backoff = Backoff(first=RETRY_FIRST, longest=RETRY_MAX)
        while True:
            try:
                js, _ = self._bus()
                ack = await js.publish(
                    subjects.agent_request(job.host_id, job.job_id),
                    req.encode(),
                    timeout=PUBLISH_TIMEOUT,
                    stream=subjects.REQUESTS_STREAM,
                    headers={streams.MSG_ID: job.job_id},
                )
                log.info("request queued for host %s (seq %s)", job.host_name, ack.seq)
                return
            except (NatsError, TimeoutError, OSError) as exc:
                delay = backoff.delay()
                if time.time() + delay > req.start_by:
                    raise JobFailed(
                        f"The message bus did not take the job before its deadline to start "
                        f"({exc}); run it again"
                    ) from None
                log.warning(
                    "the request stream did not take the job (%s); again in %g s", exc, delay
                )
            await asyncio.sleep(delay)

    async def whereabouts(self, job: DiagnosticsJob) -> Whereabouts:
        """What became of the job, as the bus knows it."""
        try:
            js, kv = self._bus()
        except RuntimeError:
            return Whereabouts("unreachable")
        return await whereabouts.find(js, kv, job.host_id, job.job_id)

    async def withdraw(self, job: DiagnosticsJob, why: str) -> bool:
        """Make sure no agent will run the job: True once that is so, False when its agent
        has taken it already (it is the agent's then) or the bus cannot be reached.

        The server writes the job's record in the agents' table itself: the table's
        create-once is the arbiter between the agent taking the request and the server
        giving up on it. The request is then deleted from the stream, if still there.
        """
        tombstone = JobRecord(state="finished", result=RunResult.refusal(job.job_id, why))
        try:
            js, kv = self._bus()
            try:
                await kv.create(subjects.job_key(job.host_id, job.job_id), tombstone.encode())
            except KeyWrongLastSequenceError:
                found = await job_records.read(kv, job.host_id, job.job_id)
                return found is not None and found.session == ""
            try:
                msg = await job_records.queued_request(js, job.host_id, job.job_id)
                if msg is not None and msg.seq is not None:
                    await js.delete_msg(subjects.REQUESTS_STREAM, msg.seq)
            except NatsError:
                pass  # Gone already; an agent that has it finds the record and skips it.
            return True
        except (NatsError, TimeoutError, OSError, RuntimeError) as exc:
            log.warning("could not withdraw the request (%s)", exc)
            return False

    async def agent_present(self, host_id: str, timeout: float = ANSWER_TIMEOUT) -> bool | None:
        """Whether the host's agent is connected now: True, False (nobody answers its
        subject), or None (it did not answer in time, or the bus cannot tell now)."""
        try:
            await self.nc.request(subjects.agent_status(host_id), b"", timeout=timeout)
        except NoRespondersError:
            return False
        except (NatsError, TimeoutError):
            return None
        return True

    async def cancel(
        self, job_id: str, host_id: str, by: str, timeout: float = ANSWER_TIMEOUT
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
