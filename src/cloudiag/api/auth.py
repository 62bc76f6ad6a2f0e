"""Who is calling: request parameters, API-key signatures and login sessions."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from cloudiag.api import signing
from cloudiag.api.commands.auth import SESSION_COOKIE
from cloudiag.api.context import AppState
from cloudiag.api.errors import PARAM_ERROR, ApiError
from cloudiag.api.registry import REGISTRY
from cloudiag.api.render import render_error
from cloudiag.db.engine import reading
from cloudiag.domain import Caller
from cloudiag.services import accounts, used_signatures

_BAD_CREDENTIALS = "unable to verify user credentials and/or request signature"
_USED = (
    "this signed request was already used: {command} accepts a signature once; "
    "sign it again with a new expires (or, without expires, change a parameter)"
)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
#: Largest request body read. Every parameter of every command fits in a few KiB, and the
#: body is read before the caller is authenticated, so anyone could send it.
MAX_BODY = 64 * 1024
#: Most parameters a request may carry, query string and body together (Jetty's default
#: maxFormKeys, under which CloudStack runs).
MAX_FIELDS = 1000
PAYLOAD_TOO_LARGE = 413


class RequestRefused(HTTPException):
    """A request refused while its parameters are read, with CloudStack's error body.

    An HTTPException because it happens before any command runs: Starlette answers it
    with the body, status and headers given here.
    """

    def __init__(self, params: list[tuple[str, str]], errorcode: int, text: str) -> None:
        err = ApiError(errorcode, text)
        name = signing.find_param(params, "command")
        command = REGISTRY.get(name) if name else None
        body, content_type = render_error(
            command.name if command else None, err, signing.find_param(params, "response")
        )
        super().__init__(
            errorcode,
            body.decode("utf-8"),
            headers={"content-type": content_type, "X-Description": err.description_header},
        )


def _too_large(params: list[tuple[str, str]], text: str) -> NoReturn:
    raise RequestRefused(params, PAYLOAD_TOO_LARGE, text)


def _too_many_fields(params: list[tuple[str, str]]) -> NoReturn:
    _too_large(params, f"The request has more than {MAX_FIELDS} parameters, the most allowed")


async def _read_body(request: Request, params: list[tuple[str, str]]) -> bytes:
    """The body, refused (413) as soon as it is known to be larger than MAX_BODY."""
    too_large = f"The request body is larger than {MAX_BODY} bytes, the most allowed"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        _too_large(params, too_large)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:  # Sent without a length, or longer than it said.
            _too_large(params, too_large)
        chunks.append(chunk)
    return b"".join(chunks)


async def _once(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


def param_values(params: list[tuple[str, str]]) -> dict[str, str]:
    """Parameters by lower-cased name; the first of a repeated name wins."""
    values: dict[str, str] = {}
    for key, value in params:
        values.setdefault(key.lower(), value)
    return values


async def read_params(request: Request) -> list[tuple[str, str]]:
    """Query string and form body merged, in order; `+` decodes to a space as clients expect.

    Raises RequestRefused (413) for a body over MAX_BODY or more than MAX_FIELDS parameters.
    """
    query = request.url.query
    try:
        params = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        # The first MAX_FIELDS parameters say how to answer (command, response format).
        head = "&".join(query.split("&", MAX_FIELDS)[:MAX_FIELDS])
        _too_many_fields(parse_qsl(head, keep_blank_values=True))
    if request.method != "POST":
        return params
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith(_FORM_TYPES):
        return params
    body = await _read_body(request, params)
    room = MAX_FIELDS - len(params)
    if ctype.startswith(_FORM_TYPES[0]):
        text = body.decode("utf-8", errors="replace")
        try:
            params += parse_qsl(text, keep_blank_values=True, max_num_fields=room) if text else []
        except ValueError:
            _too_many_fields(params)
        return params
    parser = MultiPartParser(request.headers, _once(body), max_files=room, max_fields=room)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if exc.message.startswith("Too many"):
            _too_many_fields(params)
        raise RequestRefused(params, PARAM_ERROR, f"Malformed form body: {exc.message}") from None
    params += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    await form.close()  # Files are no parameters: dropped.
    return params


@dataclass(frozen=True)
class SignedUse:
    """A verified signature: what identifies a use of it, and until when it is accepted."""

    digest: str
    #: None: for good (no signatureVersion=3 and expires).
    expires: datetime | None


@dataclass(frozen=True)
class Authenticated:
    """Who calls, and how: by a signature, or by a session (its cookie, for logout)."""

    caller: Caller
    session_cookie: str = ""
    signature: SignedUse | None = None


async def authenticate(
    state: AppState, request: Request, params: list[tuple[str, str]], values: dict[str, str]
) -> Authenticated:
    """The caller by API signature or by session (cookie AND session key); else 401.

    A signature's expires is held to the settings (signature_max_lifetime, require_expires).
    """
    api_key = signing.find_param(params, "apiKey")
    if api_key is not None:
        signature = signing.find_param(params, "signature")
        if not signature:
            raise ApiError.unauthorized(_BAD_CREDENTIALS)
        expiry_error = signing.check_expiry(
            params,
            datetime.now(UTC),
            max_lifetime=timedelta(seconds=state.settings.signature_max_lifetime),
            require=state.settings.require_expires,
        )
        if expiry_error:
            raise ApiError.unauthorized(expiry_error)
        async with reading(state.db) as db:
            user = await accounts.user_by_api_key(db, api_key)
        secret = accounts.signing_secret(user, state.secrets) if user is not None else None
        if (
            user is None
            or secret is None
            or not signing.verify_signature(params, signature, secret)
        ):
            raise ApiError.unauthorized(_BAD_CREDENTIALS)
        used = SignedUse(signing.signature_digest(signature), signing.valid_until(params))
        return Authenticated(accounts.caller_of(user), signature=used)
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
                db,
                session_id,
                session_key,
                state.settings.session_timeout,
                state.settings.session_lifetime,
            )
        if user is not None:
            return Authenticated(accounts.caller_of(user), session_id)
        raise ApiError.unauthorized("Your session has expired or is not valid; log in again")
    raise ApiError.unauthorized(_BAD_CREDENTIALS)


async def give_back_signature(state: AppState, used: SignedUse) -> None:
    """Undo spend_signature: the call was refused for its input and changed nothing."""
    await used_signatures.give_back(state.db, used.digest)


def used_text(command: str) -> str:
    """The errortext of a once-only signature used again."""
    return _USED.format(command=command)


async def spend_signature(state: AppState, command: str, used: SignedUse) -> None:
    """Count this use of a once-only signature (see Command.changes_state); 401 if it was
    used before, on any server of the database."""
    if not await used_signatures.use(state.db, used.digest, used.expires):
        raise ApiError.unauthorized(used_text(command))


async def keep_signature(state: AppState, used: SignedUse) -> None:
    """Count this use after a refusal of a handler that spends it itself (its transaction
    did not keep it): the handler may have acted. Used already by a copy: so be it."""
    await used_signatures.use(state.db, used.digest, used.expires)
