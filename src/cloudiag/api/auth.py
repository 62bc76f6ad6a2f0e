"""Who is calling: request parameters, API-key signatures and login sessions."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qsl

from starlette.requests import Request

from cloudiag.api import signing
from cloudiag.api.commands.auth import SESSION_COOKIE
from cloudiag.api.context import AppState, Caller
from cloudiag.api.errors import ApiError
from cloudiag.services import accounts

_BAD_CREDENTIALS = "unable to verify user credentials and/or request signature"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_params(request: Request) -> list[tuple[str, str]]:
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


async def authenticate(
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
    if session_id and not session_key:
        raise ApiError.unauthorized(
            "The session cookie came without its session key: send sessionkey as a "
            "parameter or a header (the cookie alone is refused, against cross-site requests)"
        )
    if session_id and session_key:
        async with state.db.begin() as db:
            user = await accounts.session_user(
                db, session_id, session_key, state.settings.session_timeout
            )
        if user is not None:
            return accounts.caller_of(user), session_id
        raise ApiError.unauthorized("Your session has expired or is not valid; log in again")
    raise ApiError.unauthorized(_BAD_CREDENTIALS)
