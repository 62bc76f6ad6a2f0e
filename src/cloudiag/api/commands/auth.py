"""login and logout: session authentication as CloudStack's UI and cloudmonkey use it."""

from __future__ import annotations

from typing import Any

from cloudiag.api.context import RequestContext
from cloudiag.api.registry import REGISTRY, ROLE_TYPES, Command, Param, ResponseField
from cloudiag.services import sessions

SESSION_COOKIE = "JSESSIONID"
SESSIONKEY_COOKIE = "sessionkey"


async def login(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """Check username and password; open a session (cookie + session key)."""
    timeout = ctx.app.settings.session_timeout
    done = await sessions.log_in(
        ctx.app.db,
        params["username"],
        params["password"],
        source=ctx.client_ip,
        domain=params.get("domain", "/"),
        timeout=timeout,
        lifetime=ctx.app.settings.session_lifetime,
    )
    ctx.cookies += [
        (SESSION_COOKIE, done.session_id, timeout),
        (SESSIONKEY_COOKIE, done.session_key, timeout),
    ]
    user = done.user
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
        "sessionkey": done.session_key,
    }


async def logout(ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
    """End the caller's session and expire its cookies."""
    if ctx.session_cookie:
        await sessions.log_out(ctx.app.db, ctx.session_cookie)
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
        # Not changes_state: it ends only the session the call came with, and a signed call
        # comes with none, so a replayed signed logout changes nothing.
        cmd_class="org.apache.cloudstack.api.command.admin.user.LogoutCmd",
    )
)
