"""GET /client/diagnosticsdata/<job id>.zip: a getDiagnosticsData zip, for its user only.

The link's own signature (``user``, ``until``, ``token``: jobs/data_archive.py) must be
valid and unexpired (else 401), and the request must be authenticated as the API is (an API
key's signature over the link's parameters, or the session cookie with its ``sessionkey``)
as the user the link is for (else 401 without credentials, 432 for another user).
"""

from __future__ import annotations

import logging
import time
import uuid

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from cloudiag.api.auth import authenticate, param_values, read_params
from cloudiag.api.context import AppState
from cloudiag.api.errors import ApiError
from cloudiag.api.render import error_payload, render
from cloudiag.logs import job_id_var

log = logging.getLogger(__name__)


def _error(err: ApiError) -> Response:
    body, content_type = render(None, error_payload(err), "json")
    response = Response(body, status_code=err.errorcode, headers={"content-type": content_type})
    response.headers["X-Description"] = err.description_header
    return response


async def download_endpoint(request: Request) -> Response:
    """Serve one zip to the user it was made for."""
    state: AppState = request.app.state.cloudiag
    name = request.path_params["name"]
    try:
        job_id = str(uuid.UUID(name.removesuffix(".zip")))
    except ValueError:
        return _error(ApiError(404, "No such diagnostics data"))
    token = job_id_var.set(job_id)
    try:
        return await _serve(state, request, job_id)
    except ApiError as err:
        log.info("diagnostics data refused (%s): %s", err.errorcode, err.errortext)
        return _error(err)
    finally:
        job_id_var.reset(token)


async def _serve(state: AppState, request: Request, job_id: str) -> Response:
    archives = state.archives
    if archives is None:
        raise ApiError(404, "This management server keeps no diagnostics data")
    params = await read_params(request)
    values = param_values(params)
    user_id = values.get("user", "")
    why = archives.refusal(
        job_id, user_id, values.get("until", ""), values.get("token", ""), time.time()
    )
    if why:
        raise ApiError.unauthorized(why)
    caller = (await authenticate(state, request, params, values)).caller
    if caller.id != user_id:
        raise ApiError.forbidden("The diagnostics data belongs to another user")
    path = archives.path(job_id)
    if not path.is_file():
        raise ApiError(404, "The diagnostics data was deleted (diagnostics.data.max.file.age)")
    log.info("diagnostics data downloaded by %s", caller.username)
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"diagnostics-data-{job_id}.zip",
        headers={"Cache-Control": "no-store"},
    )
