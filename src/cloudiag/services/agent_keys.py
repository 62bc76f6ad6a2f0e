"""Hosts registered for the bus: `cloudiag host add` gives a host's agent an nkey, `host
remove` takes it back; the bus's authorization is made from what is stored here."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cloudiag.bus.authorization import AgentUser, write_authorization
from cloudiag.bus.nkey_files import new_seed, public_key
from cloudiag.db.models import AgentKey
from cloudiag.domain import InvalidInput

#: A host id is a token of every subject about its host: no dot, no wildcard, no space.
HOST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


@dataclass(frozen=True)
class Registered:
    """A host just registered, with its agent's seed (shown once, for its config file)."""

    host_id: str
    name: str
    seed: str


async def register(db: AsyncSession, name: str, host_id: str | None = None) -> Registered:
    """Register a host and make its agent's nkey; InvalidInput for a bad or taken
    name or id."""
    host_id = host_id or str(uuid.uuid4())
    if not HOST_NAME.match(name):
        raise InvalidInput(f"invalid host name {name!r}: letters, digits, '.', '_', '-'")
    if not HOST_ID.match(host_id):
        raise InvalidInput(f"invalid host id {host_id!r}: letters, digits, '_', '-'")
    taken = await db.scalar(
        select(AgentKey.host_id).where(or_(AgentKey.name == name, AgentKey.host_id == host_id))
    )
    if taken is not None:
        raise InvalidInput(f"host {name!r} or id {host_id} is registered already")
    seed = new_seed()
    db.add(AgentKey(host_id=host_id, name=name, public_key=public_key(seed)))
    await db.flush()
    return Registered(host_id, name, seed)


async def revoke(db: AsyncSession, name_or_id: str) -> str | None:
    """Remove a host's registration by name or id; its host id, or None if none."""
    found = await db.scalar(
        select(AgentKey.host_id).where(
            or_(AgentKey.name == name_or_id, AgentKey.host_id == name_or_id)
        )
    )
    if found is None:
        return None
    await db.execute(delete(AgentKey).where(AgentKey.host_id == found))
    return found


async def agent_users(db: AsyncSession) -> list[AgentUser]:
    """Every registered agent, as the bus's authorization lists it."""
    rows = (await db.execute(select(AgentKey.host_id, AgentKey.public_key))).all()
    return [AgentUser(host_id, key) for host_id, key in rows]


async def publish_authorization(db: AsyncSession, path: Path, managers: list[str]) -> Path:
    """Write the bus's authorization for the managers' keys and every registered agent."""
    users = await agent_users(db)
    return await asyncio.to_thread(write_authorization, path, managers, users)
