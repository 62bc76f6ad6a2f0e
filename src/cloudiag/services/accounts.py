"""Users, API keys and login sessions."""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.accounts import passwords
from cloudiag.accounts.secret_box import SecretBox, SecretBoxError, is_sealed
from cloudiag.db.models import Session, User, utcnow
from cloudiag.domain import Caller

log = logging.getLogger(__name__)

ROLES = {"admin": "Admin", "domainadmin": "DomainAdmin", "user": "User"}
#: All users live in the ROOT domain for now; its id is fixed so clients can rely on it.
ROOT_DOMAIN_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "cloudiag:domain:ROOT"))


@dataclass(frozen=True)
class NewUser:
    """What `user create` prints: the only time the password and secret are shown."""

    username: str
    role: str
    password: str
    apikey: str
    secretkey: str
    id: str


def caller_of(user: User) -> Caller:
    """The request-scoped view of a user."""
    return Caller(user.id, user.username, user.role, user.account_id, user.domain_id)


def normalize_role(role: str) -> str:
    """`admin`, `Admin`, `domainadmin`… → the canonical role name, or ValueError."""
    try:
        return ROLES[role.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown role {role!r}; choose admin, domainadmin or user") from None


async def create_user(
    db: AsyncSession, username: str, role: str, password: str | None = None, *, box: SecretBox
) -> NewUser:
    """Create a user with fresh API keys (the secret sealed by `box`); the password is
    generated unless given."""
    role = normalize_role(role)
    if not username or len(username) > 255 or not username.isprintable() or " " in username:
        raise ValueError("a username is 1-255 printable characters without spaces")
    if (await db.execute(select(User.id).where(User.username == username))).first():
        raise ValueError(f"user {username!r} already exists")
    password = password or passwords.generate_password()
    api_key, secret = passwords.generate_api_key(), passwords.generate_secret_key()
    user = User(
        username=username,
        role=role,
        password_hash=await passwords.hash_password_async(password),
        api_key=api_key,
        secret_key=box.seal(secret, bound_to=api_key),
        domain_id=ROOT_DOMAIN_ID,
    )
    db.add(user)
    await db.flush()
    return NewUser(username, role, password, api_key, secret, user.id)


#: Made once: every signed call asks it (building it costs more than running it).
_BY_API_KEY = select(User).where(User.api_key == bindparam("api_key"))


async def user_by_api_key(db: AsyncSession, api_key: str) -> User | None:
    """The owner of an API key."""
    return (await db.execute(_BY_API_KEY, {"api_key": api_key})).scalar_one_or_none()


def signing_secret(user: User, box: SecretBox) -> str | None:
    """The clear secret key a user signs with, or None when it does not open (logged)."""
    try:
        return box.open(user.secret_key, bound_to=user.api_key)
    except SecretBoxError as exc:
        log.error("secret key of %s: %s", user.username, exc)
        return None


async def seal_clear_secrets(db: AsyncSession, box: SecretBox) -> int:
    """Seal the secret keys an older version stored in clear; how many there were.

    Raises SecretBoxError when a sealed one does not open: the server was given another
    key file than the one its database was sealed with, and no signature would verify.
    """
    clear = 0
    for user in (await db.execute(select(User))).scalars():
        if is_sealed(user.secret_key):
            box.open(user.secret_key, bound_to=user.api_key)
        else:
            user.secret_key = box.seal(user.secret_key, bound_to=user.api_key)
            clear += 1
    return clear


async def check_password(db: AsyncSession, username: str, password: str) -> User | None:
    """The user if the password is right, else None (same cost whether or not the user exists).

    A right password whose stored hash was made with older parameters is hashed again
    with the current ones (the only moment the password is at hand to do it).
    """
    user = (await db.execute(select(User).where(User.username == username))).scalar_one_or_none()
    if user is None:
        await passwords.verify_password_async(None, password)  # Same cost as a real check.
        return None
    if not await passwords.verify_password_async(user.password_hash, password):
        return None
    if passwords.needs_rehash(user.password_hash):
        await _rehash(db, user, password)
    return user


async def _rehash(db: AsyncSession, user: User, password: str) -> None:
    old = user.password_hash
    new = await passwords.hash_password_async(password)
    try:
        # A transaction of its own: the caller's session may never commit (login only
        # reads). Only if the hash is still the one checked: a password change wins.
        async with AsyncSession(db.bind) as own, own.begin():
            await own.execute(
                update(User)
                .where(User.id == user.id, User.password_hash == old)
                .values(password_hash=new)
            )
    except (OSError, DBAPIError):
        log.warning("could not store the upgraded password hash of %s", user.username)
        return
    log.info("password hash of %s upgraded to the current parameters", user.username)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def open_session(
    db: AsyncSession, user: User, timeout: int, lifetime: int
) -> tuple[str, str]:
    """Start a login session; returns (cookie id, session key), stored only as hashes."""
    session_id = passwords.generate_session_key()
    session_key = passwords.generate_session_key()
    now = utcnow()
    db.add(
        Session(
            id_hash=_digest(session_id),
            key_hash=_digest(session_key),
            user_id=user.id,
            created=now,
            expires=now + timedelta(seconds=min(timeout, lifetime)),
        )
    )
    await db.flush()
    return session_id, session_key


async def session_user(
    db: AsyncSession,
    session_id: str,
    session_key: str,
    timeout: int,
    lifetime: int,
) -> User | None:
    """The user of a live session when both the cookie and the key match.

    Each use renews the idle timeout, never past `lifetime` seconds after the login.
    """
    row = await db.get(Session, _digest(session_id))
    if row is None or not hmac.compare_digest(row.key_hash, _digest(session_key)):
        return None
    now = utcnow()
    end = row.created + timedelta(seconds=lifetime)
    if row.expires <= now or end <= now:
        await db.delete(row)
        return None
    row.expires = min(now + timedelta(seconds=timeout), end)
    return await db.get(User, row.user_id)


async def close_session(db: AsyncSession, session_id: str) -> None:
    """End a session (logout)."""
    await db.execute(delete(Session).where(Session.id_hash == _digest(session_id)))


async def ensure_admin(db: AsyncSession, *, box: SecretBox) -> NewUser | None:
    """Create the `admin` user on the first start; None when users already exist."""
    if (await db.execute(select(User.id).limit(1))).first():
        return None
    return await create_user(db, "admin", "admin", box=box)


async def reset_password(db: AsyncSession, username: str, password: str | None = None) -> str:
    """Give a user a new password (generated unless given) and end its sessions; the password.

    The API keys stay: scripts that sign with them keep working.
    """
    user = (await db.execute(select(User).where(User.username == username))).scalar_one_or_none()
    if user is None:
        raise ValueError(f"no user {username!r}")
    password = password or passwords.generate_password()
    user.password_hash = await passwords.hash_password_async(password)
    await db.execute(delete(Session).where(Session.user_id == user.id))
    return password


async def reset_credentials(db: AsyncSession, username: str, *, box: SecretBox) -> NewUser:
    """New password and API keys for an existing user (the demo's way back in)."""
    user = (await db.execute(select(User).where(User.username == username))).scalar_one_or_none()
    if user is None:
        raise ValueError(f"no user {username!r}")
    password = passwords.generate_password()
    user.password_hash = await passwords.hash_password_async(password)
    user.api_key, secret = passwords.generate_api_key(), passwords.generate_secret_key()
    user.secret_key = box.seal(secret, bound_to=user.api_key)
    await db.execute(delete(Session).where(Session.user_id == user.id))
    return NewUser(user.username, user.role, password, user.api_key, secret, user.id)
