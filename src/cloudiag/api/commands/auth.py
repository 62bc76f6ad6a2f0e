"""login and logout: session authentication as CloudStack's UI and cloudmonkey use it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cloudiag.api.context import RequestContext
from cloudiag.api.errors import ApiError
from cloudiag.api.registry import REGISTRY, ROLE_TYPES, Command, Param, ResponseField
from cloudiag.services import accounts, throttle

log = logging.getLogger(__name__)

SESSION_COOKIE = "JSESSIONID"
SESSIONKEY_COOKIE = "sessionkey"


async def login(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Check username and password; open a session (cookie + session key)."""
    timeout = ctx.app.settings.session_timeout
    username, source = params["username"], ctx.client_ip
    attempt = await throttle.begin_attempt(ctx.app.db, username, source)
    if attempt.locked_for:
        log.warning("login refused: locked out user=%s from=%s", username, source)
        raise ApiError.account(
            f"Too many failed login attempts for {username}; try again in {attempt.locked_for} s",
        )
    async with ctx.app.db() as db:
        user = await accounts.check_password(db, username, params["password"])
    if user is None:
        log.warning("login failed user=%s from=%s", username, source)
        # Slower with every failure: guessing gets expensive before the lockout.
        await asyncio.sleep(attempt.delay)
        raise ApiError.account(
            f"Failed to authenticate user {username} in domain {params.get('domain', '/')}; "
            "please provide valid credentials",
        )
    await throttle.record_success(ctx.app.db, attempt)
    async with ctx.app.db.begin() as db:
        session_id, session_key = await accounts.open_session(
            db, user, timeout, ctx.app.settings.session_lifetime
        )
    log.info("login user=%s from=%s", user.username, ctx.client_ip)
    ctx.cookies += [
        (SESSION_COOKIE, session_id, timeout),
        (SESSIONKEY_COOKIE, session_key, timeout),
    ]
    return {
        "username": user.username,
        "userid": user.id,
        "domainid": user.domain_id,
        "timeout": str(timeout),
        "account": user.username,
        "firstname": user.username,
        "lastname": "",
        "type": str(ROLE_TYPES[user.role]),
        "role": user.role,
        "registered": "false",
        "sessionkey": session_key,
    }


async def logout(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """End the caller's session and expire its cookies."""
    if ctx.session_cookie:
        async with ctx.app.db.begin() as db:
            await accounts.close_session(db, ctx.session_cookie)
    ctx.cookies += [(SESSION_COOKIE, "", 0), (SESSIONKEY_COOKIE, "", 0)]
    return {"description": "success"}


REGISTRY.add(
    Command(
        "login",
        "Logs a user into the CloudStack. A successful login attempt will generate a JSESSIONID "
        "cookie value that can be passed in subsequent Query command calls until the "
        '"logout" command has been issued or the session has expired.',
        login,
        params=(
            Param("username", "string", "Username", required=True),
            Param("password", "string", "Password", required=True),
            Param("domain", "string", "Path of the domain that the user belongs to; / is ROOT"),
            Param("domainId", "long", "ID of the domain that the user belongs to"),
        ),
        response=(
            ResponseField("username", "string", "Username"),
            ResponseField("userid", "string", "User ID"),
            ResponseField("sessionkey", "string", "Session key to send with every call"),
            ResponseField("timeout", "int", "the time period before the session has expired"),
            ResponseField(
                "type", "string", "the account type (admin, domain-admin, read-only-admin, user)"
            ),
        ),
        needs_auth=False,
        post_only=True,
        cmd_class="org.apache.cloudstack.api.command.admin.user.LoginCmd",
    )
)
REGISTRY.add(
    Command(
        "logout",
        "Logs out the user",
        logout,
        response=(ResponseField("description", "string", "success if the session ended"),),
        cmd_class="org.apache.cloudstack.api.command.admin.user.LogoutCmd",
    )
)
