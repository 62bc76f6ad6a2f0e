"""The CloudStack-compatible HTTP API at /client/api (GET and form POST)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import cloudiag.api.commands  # noqa: F401  (registers every command)
from cloudiag.api import signing
from cloudiag.api.commands.auth import SESSION_COOKIE
from cloudiag.api.context import AppState, Caller, RequestContext
from cloudiag.api.errors import ApiError
from cloudiag.api.registry import REGISTRY, Command
from cloudiag.api.render import error_payload, render
from cloudiag.services import accounts

log = logging.getLogger(__name__)

_NOT_ALLOWED = (
    "The user is not allowed to request the API command or the API command does not exist"
)
_BAD_CREDENTIALS = "unable to verify user credentials and/or request signature"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _read_params(request: Request) -> list[tuple[str, str]]:
    """Query string and form body merged, in order; `+` decodes to a space as clients expect."""
    params = parse_qsl(request.url.query, keep_blank_values=True)
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(_FORM_TYPES[0]):
            body = (await request.body()).decode("utf-8", errors="replace")
            params += parse_qsl(body, keep_blank_values=True)
        elif ctype.startswith(_FORM_TYPES[1]):
            form = await request.form()
            params += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    return params


async def _authenticate(
    state: AppState, request: Request, params: list[tuple[str, str]], values: dict[str, str]
) -> tuple[Caller, str]:
    """The caller by API signature or by session (cookie AND session key); else 401."""
    api_key = signing.find_param(params, "apiKey")
    if api_key is not None:
        signature = signing.find_param(params, "signature")
        if not signature:
            raise ApiError.unauthorized(_BAD_CREDENTIALS)
        expiry_error = signing.check_expiry(params, datetime.now(UTC))
        if expiry_error:
            raise ApiError.unauthorized(expiry_error)
        async with state.db() as db:
            user = await accounts.user_by_api_key(db, api_key)
        if user is None or not signing.verify_signature(params, signature, user.secret_key):
            raise ApiError.unauthorized(_BAD_CREDENTIALS)
        return accounts.caller_of(user), ""
    session_id = request.cookies.get(SESSION_COOKIE, "")
    # The key must come as a parameter or header, never from a cookie alone: a cross-site
    # request carries the cookies but cannot know the key.
    session_key = values.get("sessionkey") or request.headers.get("sessionkey", "")
    if session_id and session_key:
        async with state.db.begin() as db:
            user = await accounts.session_user(
                db, session_id, session_key, state.settings.session_timeout
            )
        if user is not None:
            return accounts.caller_of(user), session_id
        raise ApiError.unauthorized("Your session has expired or is not valid; log in again")
    raise ApiError.unauthorized(_BAD_CREDENTIALS)


def _respond(
    command: str | None, payload: dict[str, object], fmt: str, status: int = 200
) -> Response:
    body, content_type = render(command, payload, fmt)
    return Response(body, status_code=status, headers={"content-type": content_type})


async def api_endpoint(request: Request) -> Response:
    """One API call: parse, authenticate, authorize, validate, run, render."""
    state: AppState = request.app.state.cloudiag
    params = await _read_params(request)
    values: dict[str, str] = {}
    for key, value in params:
        values.setdefault(key.lower(), value)
    fmt = "json" if values.get("response", "").lower() == "json" else "xml"
    name = values.get("command", "")
    command: Command | None = REGISTRY.get(name) if name else None
    envelope = command.name if command else None
    ctx = RequestContext(
        app=state, caller=None, client_ip=request.client.host if request.client else ""
    )
    try:
        if command is not None and not command.needs_auth:
            if command.post_only and request.method != "POST":
                raise ApiError(405, "Please use HTTP POST to authenticate using this API")
        else:
            ctx.caller, ctx.session_cookie = await _authenticate(state, request, params, values)
            if command is None or ctx.caller.role not in command.roles:
                raise ApiError.forbidden(_NOT_ALLOWED)
        validated = command.validate(values)
        payload = await command.handler(ctx, validated)
    except ApiError as err:
        log.info("api error command=%s code=%s text=%s", name, err.errorcode, err.errortext)
        response = _respond(envelope, error_payload(err), fmt, err.errorcode)
        response.headers["X-Description"] = err.description_header
        return response
    except (OperationalError, DBAPIError, OSError) as exc:
        log.error("database unavailable during %s: %s", name, exc.__class__.__name__)
        down = ApiError.internal("The database is unavailable; try again shortly")
        return _respond(envelope, error_payload(down), fmt, down.errorcode)
    response = _respond(command.name, payload, fmt)
    for cookie, value, max_age in ctx.cookies:
        response.set_cookie(
            cookie, value, max_age=max_age, path="/", httponly=True, samesite="strict"
        )
    return response


def create_app(state: AppState) -> Starlette:
    """The ASGI app serving the API for one server process."""
    app = Starlette(routes=[Route("/client/api", api_endpoint, methods=["GET", "POST"])])
    app.state.cloudiag = state
    return app
