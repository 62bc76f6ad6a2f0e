"""Live output of a job as Server-Sent Events: GET /client/stream?jobid=…

Same authentication as /client/api (a session key with its cookie, or a signed API-key
request). Events: `line` ({"seq", "stream", "text"}) for every line as the tool prints it,
replayed from the first when JetStream keeps the output, then one `end` carrying the job as
queryAsyncJobResult shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import DeliverPolicy
from pydantic import ValidationError
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
from cloudiag.domain import Caller

log = logging.getLogger(__name__)

#: How often an idle stream looks at the job row, and sends a comment to keep proxies open.
POLL_INTERVAL = 0.25
KEEPALIVE = 15.0
#: After the job is final, lines still in flight get this long to arrive before `end`.
SETTLE = 0.3


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _load_job(state: AppState, job_id: str) -> AsyncJob | None:
    async with state.db() as db:
        return await db.get(AsyncJob, job_id)


async def _subscribe(state: AppState, job_id: str) -> Any:
    subject = subjects.job_output(job_id)
    if state.js is not None:
        return await state.js.subscribe(
            subject,
            stream=subjects.OUTPUT_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
        )
    return await state.nc.subscribe(subject)


async def _events(state: AppState, job_id: str) -> AsyncIterator[bytes]:
    sub = await _subscribe(state, job_id)
    loop = asyncio.get_running_loop()
    last_seq = 0
    final_since: float | None = None
    quiet_since = loop.time()
    try:
        yield b": stream open\n\n"
        while True:
            try:
                msg = await sub.next_msg(timeout=POLL_INTERVAL)
            except NatsTimeout:
                msg = None
            if msg is not None:
                with contextlib.suppress(ValidationError):
                    line = OutputLine.model_validate_json(msg.data)
                    if line.seq > last_seq:  # Ordered; a replay after a reconnect repeats.
                        last_seq = line.seq
                        yield _event(
                            "line", {"seq": line.seq, "stream": line.stream, "text": line.text}
                        )
                continue
            job = await _load_job(state, job_id)
            if job is None:
                return
            if job.status != 0:
                final_since = final_since if final_since is not None else loop.time()
                if loop.time() - final_since >= SETTLE:
                    yield _event("end", job_view(job))
                    return
            elif loop.time() - quiet_since >= KEEPALIVE:
                quiet_since = loop.time()
                yield b": keepalive\n\n"
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def stream_endpoint(request: Request) -> Response:
    """Authenticate, check the job is the caller's (or the caller is an admin), stream."""
    state: AppState = request.app.state.cloudiag
    params = await read_params(request)
    values = param_values(params)
    fmt = "json" if values.get("response", "json").lower() == "json" else "xml"
    try:
        caller, _ = await authenticate(state, request, params, values)
        job_id = _job_id(values)
        job = await _load_job(state, job_id)
        if job is None or not _may_see(caller, job):
            raise ApiError.param(f"Unable to find a job with id {job_id}")
    except ApiError as err:
        body, ctype = render("stream", error_payload(err), fmt)
        return Response(body, status_code=err.errorcode, headers={"content-type": ctype})
    return StreamingResponse(
        _events(state, job_id),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


def _job_id(values: dict[str, str]) -> str:
    """The jobid parameter, checked as every API command checks its declared parameters."""
    raw = values.get("jobid", "")
    if not raw.strip():
        raise ApiError.param("Unable to stream: missing parameter jobid")
    return str(JOBID.convert("stream", raw))


def _may_see(caller: Caller, job: AsyncJob) -> bool:
    return caller.is_admin or job.user_id == caller.id
