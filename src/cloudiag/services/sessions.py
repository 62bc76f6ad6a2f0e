"""Logging in and out: a password checked under the login throttle opens a session."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.db.models import User
from cloudiag.domain import AuthenticationFailed
from cloudiag.services import accounts, throttle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoggedIn:
    """A new session: its user, the cookie's id and the key every call must also send."""

    user: User
    session_id: str
    session_key: str


async def log_in(
    sessions: async_sessionmaker[AsyncSession],
    username: str,
    password: str,
    *,
    source: str,
    domain: str,
    timeout: int,
    lifetime: int,
) -> LoggedIn:
    """Check the password (unless `source` is locked out for the user); open a session.

    AuthenticationFailed when locked out or the password is wrong; a wrong one is answered
    more slowly with every failure, so that guessing gets expensive before the lockout.
    """
    attempt = await throttle.begin_attempt(sessions, username, source)
    if attempt.locked_for:
        log.warning("login refused: locked out user=%s from=%s", username, source)
        raise AuthenticationFailed(
            f"Too many failed login attempts for {username}; try again in {attempt.locked_for} s"
        )
    async with sessions() as db:
        user = await accounts.check_password(db, username, password)
    if user is None:
        log.warning("login failed user=%s from=%s", username, source)
        await asyncio.sleep(attempt.delay)
        raise AuthenticationFailed(
            f"Failed to authenticate user {username} in domain {domain}; "
            "please provide valid credentials"
        )
    await throttle.record_success(sessions, attempt)
    async with sessions.begin() as db:
        session_id, session_key = await accounts.open_session(db, user, timeout, lifetime)
    log.info("login user=%s from=%s", user.username, source)
    return LoggedIn(user, session_id, session_key)


async def log_out(sessions: async_sessionmaker[AsyncSession], session_id: str) -> None:
    """End a session."""
    async with sessions.begin() as db:
        await accounts.close_session(db, session_id)
