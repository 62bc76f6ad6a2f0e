"""The CloudStack-compatible HTTP API at /client/api (GET and form POST)."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

import cloudiag.api.commands  # noqa: F401  (registers every command)
from cloudiag.api.auth import (
    SignedUse,
    authenticate,
    give_back_signature,
    keep_signature,
    param_values,
    read_params,
    spend_signature,
    used_text,
)
from cloudiag.api.context import AppState, RequestContext
from cloudiag.api.download import download_endpoint
from cloudiag.api.errors import ApiError
from cloudiag.api.metrics import metrics_endpoint
from cloudiag.api.registry import REGISTRY, Command
from cloudiag.api.render import error_payload, render
from cloudiag.api.stream import stream_endpoint
from cloudiag.db.transient import is_transient
from cloudiag.domain import DomainError, InvalidInput
from cloudiag.jobs.data_archive import URL_PATH
from cloudiag.metrics import database as database_metrics
from cloudiag.services.used_signatures import SignatureUsed, Use
from cloudiag.ui import UiFiles

log = logging.getLogger(__name__)

#: Names the parameter an error concerns (the UI shows the text beside that field).
PARAM_HEADER = "X-Cloudiag-Param"

#: The errortext while the database cannot be reached (or is starting, or full): temporary.
DATABASE_UNAVAILABLE = "The database is unavailable; try again shortly"
#: The errortext of a database error that is no outage (trying again would not help).
DATABASE_ERROR = "Internal error: the database refused the command (see the server's log)"

_NOT_ALLOWED = (
    "The user is not allowed to request the API command or the API command does not exist"
)


def _respond(
    command: str | None, payload: dict[str, object], fmt: str, status: int = 200
) -> Response:
    body, content_type = render(command, payload, fmt)
    return Response(body, status_code=status, headers={"content-type": content_type})


async def api_endpoint(request: Request) -> Response:
    """One API call: parse, authenticate, authorize, validate, run, render."""
    state: AppState = request.app.state.cloudiag
    params = await read_params(request)
    values = param_values(params)
    fmt = "json" if values.get("response", "").lower() == "json" else "xml"
    name = values.get("command", "")
    command: Command | None = REGISTRY.get(name) if name else None
    envelope = command.name if command else None
    ctx = RequestContext(
        app=state,
        caller=None,
        client_ip=request.client.host if request.client else "",
        base_url=str(request.base_url).rstrip("/"),
    )
    signed: SignedUse | None = None  # The signature the caller came with, if any.
    try:
        if command is not None and not command.needs_auth:
            if command.post_only and request.method != "POST":
                raise ApiError.method_not_allowed(
                    "Please use HTTP POST to authenticate using this API"
                )
        else:
            auth = await authenticate(state, request, params, values)
            ctx.caller, ctx.session_cookie, signed = (
                auth.caller,
                auth.session_cookie,
                auth.signature,
            )
            if not name:
                raise ApiError.no_command()
            if command is None or ctx.caller.role not in command.roles:
                raise ApiError.forbidden(_NOT_ALLOWED)
        validated = command.validate(values)
        # A once-only signature is spent here, so its handler runs at most once: after the
        # signature authenticated a caller who may call the command with these parameters,
        # right before the handler. Refused earlier (bad parameters, wrong role), nothing
        # ran, so the signature is not spent: a copy can at most run the call once, as its
        # client meant, and a client that retries hears the real reason again rather than
        # "already used". The insert that spends it lets one of any number of concurrent
        # copies through. A handler's refusal for its input (431: the address, the type,
        # the options, checked with the system VM's rules) changed nothing by definition,
        # and gives the signature back. Any other refusal (a quota, a stopped VM) does not:
        # the handler may have acted, and a copy replayed once the quota frees would run a
        # call its client has, by then, likely signed and sent again.
        # A command that spends it itself does so in the transaction of what it does: the
        # use counts exactly when that is committed (and a refusal not for its input is
        # spent here after, as any other command's is kept).
        once = signed if command.changes_state else None
        in_handler = once is not None and command.spends_signature
        if once is not None and not in_handler:
            await spend_signature(state, command.name, once)
        if in_handler and once is not None:
            ctx.signature = Use(once.digest, once.expires)
        try:
            payload = await command.handler(ctx, validated)
        except SignatureUsed:
            raise ApiError.unauthorized(used_text(command.name)) from None
        except DomainError as refusal:
            if once is not None and isinstance(refusal, InvalidInput):
                if not in_handler:
                    await give_back_signature(state, once)
            elif once is not None and in_handler:
                await keep_signature(state, once)
            raise ApiError.from_domain(refusal) from refusal
    except ApiError as err:
        log.info("api error command=%s code=%s text=%s", name, err.errorcode, err.errortext)
        response = _respond(envelope, error_payload(err), fmt, err.errorcode)
        response.headers["X-Description"] = err.description_header
        if err.parameter:
            response.headers[PARAM_HEADER] = err.parameter
        return response
    except (SQLAlchemyError, OSError) as exc:
        database_metrics.caught(exc)
        if is_transient(exc):
            log.error("database unavailable during %s: %s", name, exc.__class__.__name__)
            down = ApiError.internal(DATABASE_UNAVAILABLE)
            return _respond(envelope, error_payload(down), fmt, down.errorcode)
        # A fault of the statement, not an outage: trying again would fail the same way.
        log.exception("database error during %s", name)
        bug = ApiError.internal(DATABASE_ERROR)
        return _respond(envelope, error_payload(bug), fmt, bug.errorcode)
    response = _respond(command.name, payload, fmt)
    for cookie, value, max_age in ctx.cookies:
        response.set_cookie(
            cookie, value, max_age=max_age, path="/", httponly=True, samesite="strict"
        )
    return response


def create_app(state: AppState) -> Starlette:
    """The ASGI app serving the API for one server process."""
    app = Starlette(
        routes=[
            Route("/client/api", api_endpoint, methods=["GET", "POST"]),
            Route("/client/stream", stream_endpoint, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route(f"{URL_PATH}/{{name}}", download_endpoint, methods=["GET"]),
            # The web UI: static files, a client of /client/api like any other.
            Mount("/", app=UiFiles(), name="ui"),
        ]
    )
    app.state.cloudiag = state
    return app
