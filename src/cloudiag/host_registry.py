"""Adding and removing hosts for the bus: the database row, the agent's config file, and
the bus's authorization made again, for the private nats-server (reloaded at once) or
for an external NATS (a file for its operator to install)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cloudiag.agent import config_file
from cloudiag.bus.embedded import AUTHORIZATION_FILE, reload_private
from cloudiag.bus.nkey_files import load_or_create_seed, public_key
from cloudiag.services import agent_keys
from cloudiag.settings import Settings


@dataclass(frozen=True)
class BusUpdate:
    """Where the bus's authorization went and whether a running nats-server read it."""

    authorization: Path
    reloaded: bool
    #: False: an external NATS, whose operator installs the file.
    private: bool


def authorization_path(settings: Settings, given: Path | None = None) -> Path:
    """Where the authorization goes: the private nats-server's file, else `given` or one in
    the data directory for an external NATS's operator."""
    if not settings.nats_url:
        return settings.data_dir / AUTHORIZATION_FILE
    return given or settings.data_dir / "nats-authorization.external.conf"


async def update_bus(
    db: AsyncSession, settings: Settings, authorization: Path | None = None
) -> BusUpdate:
    """Write the authorization of the managers' key and every registered agent; the private
    nats-server, when one runs, reads it at once (and drops revoked agents)."""
    seed = await asyncio.to_thread(load_or_create_seed, settings.resolved_nkey_seed_file())
    path = authorization_path(settings, authorization)
    await agent_keys.publish_authorization(db, path, [public_key(seed)])
    private = not settings.nats_url
    reloaded = private and await asyncio.to_thread(reload_private, settings.data_dir)
    return BusUpdate(path, reloaded, private)


async def add_host(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    name: str,
    out: Path,
    *,
    nats_url: str,
    host_id: str | None = None,
    authorization: Path | None = None,
    agent: Mapping[str, object] | None = None,
) -> tuple[config_file.AgentConfig, BusUpdate]:
    """Register the host, write its agent's config to `out` (0600) and update the bus.

    `agent`: more of the config (inventory, lab_prefix, tls_ca…). Raises InvalidInput.
    """
    async with sessions.begin() as db:
        registered = await agent_keys.register(db, name, host_id)
        config = config_file.AgentConfig.model_validate(
            {
                "nats_url": nats_url,
                "nkey_seed": registered.seed,
                "host_id": registered.host_id,
                "host_name": name,
                **{k: v for k, v in (agent or {}).items() if v is not None},
            }
        )
        # Written before the row is committed: a host is never registered without a file.
        await asyncio.to_thread(config_file.write, out, config)
    async with sessions() as db:
        update = await update_bus(db, settings, authorization)
    return config, update


async def remove_host(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    name_or_id: str,
    authorization: Path | None = None,
) -> tuple[str | None, BusUpdate | None]:
    """Revoke a host's agent; its host id (None: not registered) and the bus's update."""
    async with sessions.begin() as db:
        host_id = await agent_keys.revoke(db, name_or_id)
    if host_id is None:
        return None, None
    async with sessions() as db:
        return host_id, await update_bus(db, settings, authorization)


async def local_agent(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    out: Path,
    *,
    name: str,
    host_id: str,
    nats_url: str,
    agent: Mapping[str, object] | None = None,
) -> config_file.AgentConfig:
    """The config of the demo's own agent (the lab's host): registered as any host, once;
    its file kept in `out` and pointed at today's `nats_url` (the private NATS's port
    changes from one start to the next). Registered again when the file is gone."""
    try:
        kept: config_file.AgentConfig | None = await asyncio.to_thread(config_file.load, out)
    except config_file.ConfigFileError:
        kept = None
    async with sessions() as db:
        keys = {user.host_id: user.public_key for user in await agent_keys.agent_users(db)}
    if (
        kept is not None
        and (kept.host_id, kept.host_name) == (host_id, name)
        and keys.get(host_id) == public_key(kept.nkey_seed)
    ):
        config = kept.model_copy(update={"nats_url": nats_url})
        await asyncio.to_thread(config_file.write, out, config)
        return config
    async with sessions.begin() as db:
        await agent_keys.revoke(db, host_id)
        await agent_keys.revoke(db, name)
    config, _ = await add_host(
        sessions, settings, name, out, nats_url=nats_url, host_id=host_id, agent=agent
    )
    return config
