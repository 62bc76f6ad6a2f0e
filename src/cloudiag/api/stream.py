"""Live output of jobs as Server-Sent Events: GET /client/stream?jobid=…

Same authentication as /client/api (a session key with its cookie, or a signed API-key
request). Events: `line` ({"seq", "stream", "text"}) for every line as the tool prints it,
replayed from the first when JetStream keeps the output, then one `end` carrying the job as
queryAsyncJobResult shows it.

One connection can follow several jobs (a browser opens at most 6 HTTP/1.1 connections to
an origin): `jobid=a,b,c`, or jobid repeated. Then each `line` also carries its "jobid"
(`end` always does), and the stream closes once every job has had its `end`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import DeliverPolicy
from pydantic import ValidationError
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from cloudiag.api.auth import authenticate, param_values, read_params
from cloudiag.api.commands.jobs import JOBID, job_view
from cloudiag.api.context import AppState
from cloudiag.api.errors import ApiError
from cloudiag.api.render import error_payload, render
from cloudiag.bus import subjects
from cloudiag.bus.messages import OutputLine
from cloudiag.db.models import AsyncJob
from cloudiag.domain import Caller, JobStatus
from cloudiag.logs import job_id_var

log = logging.getLogger(__name__)

#: How often a stream looks at its jobs' rows, and sends a comment to keep proxies open.
POLL_INTERVAL = 0.25
KEEPALIVE = 15.0
#: After a job is final, lines still in flight get this long to arrive before its `end`.
SETTLE = 0.3
#: The most jobs one stream follows (each is a subscription on the bus).
MAX_STREAM_JOBS = 100


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@dataclass
class _Followed:
    """Where a stream is in one job's output."""

    last_seq: int = 0
    last_line: float = 0.0
    final_since: float | None = None


async def _subscribe(state: AppState, job_id: str, host_id: str) -> Any:
    """Every output line of the job from its host's agent, from the first when JetStream
    keeps them (another host's agent cannot publish there)."""
    subject = subjects.job_output(host_id, job_id)
    if state.js is not None:
        return await state.js.subscribe(
            subject,
            stream=subjects.OUTPUT_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
    return await state.nc.subscribe(subject)


#: Lines by job id; an empty line is a wake-up: the job may be final.
Inbox = asyncio.Queue[tuple[str, bytes]]


async def _pump(sub: Any, job_id: str, inbox: Inbox) -> None:
    """Move one job's lines into the stream's inbox, tagged with the job's id."""
    job_id_var.set(job_id)  # This task's own context: its log lines name the job.
    while True:
        try:
            msg = await sub.next_msg(timeout=KEEPALIVE)
        except NatsTimeout:
            continue
        except NatsError as exc:  # Unsubscribed or closed: the stream is ending anyway.
            log.debug("output no longer followed: %s", exc)
            return
        inbox.put_nowait((job_id, msg.data))


async def _wake_when_final(state: AppState, job_id: str, inbox: Inbox) -> None:
    """Put a wake-up (no data) in the inbox when this server stores the job's outcome, so
    the stream looks at the job then rather than at its next poll."""
    if state.runner is None:  # (Some tests serve the API without a job engine.)
        return
    with state.runner.finals.watching(job_id) as stored:
        await stored
    inbox.put_nowait((job_id, b""))


async def _statuses(state: AppState, job_ids: list[str]) -> dict[str, int]:
    """The status of each job still there, by id (only the status: results can be large)."""
    async with state.db() as db:
        rows = await db.execute(
            select(AsyncJob.id, AsyncJob.status).where(AsyncJob.id.in_(job_ids))
        )
        return {job_id: status for job_id, status in rows}


async def _load_job(state: AppState, job_id: str) -> AsyncJob | None:
    async with state.db() as db:
        return await db.get(AsyncJob, job_id)


async def _events(
    state: AppState, job_hosts: dict[str, str | None], tagged: bool
) -> AsyncIterator[bytes]:
    """The stream of the jobs (id: host, None for a parent job, which has no output)."""
    job_ids = list(job_hosts)
    inbox: Inbox = asyncio.Queue()
    subs: list[Any] = []
    pumps: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    followed = {job_id: _Followed() for job_id in job_ids}
    try:
        for job_id, host_id in job_hosts.items():
            if host_id is not None:
                subs.append(sub := await _subscribe(state, job_id, host_id))
                pumps.append(asyncio.create_task(_pump(sub, job_id, inbox)))
            pumps.append(asyncio.create_task(_wake_when_final(state, job_id, inbox)))
        yield b": stream open\n\n"
        last_sent = next_check = loop.time()
        while followed:
            try:
                async with asyncio.timeout(max(0.0, next_check - loop.time())):
                    job_id, data = await inbox.get()
            except TimeoutError:
                pass
            else:
                line = _line(data, followed.get(job_id)) if data else None
                if line is not None:
                    last_sent = loop.time()
                    yield _event("line", {**line, "jobid": job_id} if tagged else line)
                if data and loop.time() < next_check:  # Busy streams still look at their jobs.
                    continue
            now = loop.time()
            next_check = now + POLL_INTERVAL
            statuses = await _statuses(state, list(followed))
            for job_id, follow in list(followed.items()):
                if job_id not in statuses:  # Deleted: nothing more will come.
                    del followed[job_id]
                    continue
                if statuses[job_id] == JobStatus.PENDING:
                    continue
                follow.final_since = follow.final_since or now
                # Looked at again as soon as its lines can have settled, not a poll later.
                settled = max(follow.final_since + SETTLE, follow.last_line + POLL_INTERVAL)
                next_check = min(next_check, settled)
                if now >= settled:
                    del followed[job_id]
                    job = await _load_job(state, job_id)
                    if job is not None:
                        last_sent = now
                        yield _event("end", job_view(job))
            if followed and now - last_sent >= KEEPALIVE:
                last_sent = now
                yield b": keepalive\n\n"
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        for sub in subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


def _line(data: bytes, follow: _Followed | None) -> dict[str, Any] | None:
    """A line event's data, or None for a line already sent, a malformed one, or a job done."""
    if follow is None:
        return None
    try:
        line = OutputLine.model_validate_json(data)
    except ValidationError:
        return None
    if line.seq <= follow.last_seq:  # Ordered; a replay after a reconnect repeats.
        return None
    follow.last_seq, follow.last_line = line.seq, asyncio.get_running_loop().time()
    return {"seq": line.seq, "stream": line.stream, "text": line.text}


async def stream_endpoint(request: Request) -> Response:
    """Authenticate, check each job is the caller's (or the caller is an admin), stream."""
    state: AppState = request.app.state.cloudiag
    params = await read_params(request)
    values = param_values(params)
    fmt = "json" if values.get("response", "json").lower() == "json" else "xml"
    try:
        caller = (await authenticate(state, request, params, values)).caller
        job_hosts: dict[str, str | None] = {}
        for job_id in _job_ids(params):
            job = await _load_job(state, job_id)
            if job is None or not _may_see(caller, job):
                raise ApiError.param(f"Unable to find a job with id {job_id}")
            job_hosts[job_id] = job.host_id
    except ApiError as err:
        body, ctype = render("stream", error_payload(err), fmt)
        return Response(body, status_code=err.errorcode, headers={"content-type": ctype})
    return StreamingResponse(
        _events(state, job_hosts, tagged=len(job_hosts) > 1),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


def _job_ids(params: list[tuple[str, str]]) -> list[str]:
    """Every jobid value (repeated, or comma-separated), each checked as every API command
    checks its declared parameters; in order, once each."""
    raws = [value for key, value in params if key.lower() == "jobid"]
    if not any(raw.strip() for raw in raws):
        raise ApiError.param("Unable to stream: missing parameter jobid")
    ids = dict.fromkeys(
        str(JOBID.convert("stream", part)) for raw in raws for part in raw.split(",")
    )
    if len(ids) > MAX_STREAM_JOBS:
        raise ApiError.param(f"Unable to stream more than {MAX_STREAM_JOBS} jobs at once")
    return list(ids)


def _may_see(caller: Caller, job: AsyncJob) -> bool:
    return caller.is_admin or job.user_id == caller.id
