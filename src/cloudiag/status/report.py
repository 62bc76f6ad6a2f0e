"""What `cloudiag status` finds: read from the database and the bus, never from a server.

Every part is looked at on its own: a database that does not answer still leaves the bus
to report, and the other way round.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import nats

from cloudiag.bus import health as bus_health
from cloudiag.bus.access import BusAccess
from cloudiag.bus.embedded import CONFIG_FILE as PRIVATE_CONFIG
from cloudiag.bus.embedded import redact, server_urls
from cloudiag.db import health as db_health
from cloudiag.db.engine import create_engine, session_factory
from cloudiag.db.models import utcnow
from cloudiag.services import fleet
from cloudiag.settings import Settings

#: How long the bus may take to answer, at most, before it is reported unreachable.
NATS_TIMEOUT = 5


@dataclass
class NatsStatus:
    """The bus: reachable or not, the round trip, and what waits in each stream."""

    url: str
    reachable: bool = False
    #: The NATS server the status connected to (host:port), and the cluster's others.
    server: str = ""
    discovered: list[str] = field(default_factory=list)
    rtt_ms: float | None = None
    streams: list[bus_health.StreamDepth] = field(default_factory=list)
    error: str = ""


@dataclass
class Report:
    """The fleet as seen at `checked`."""

    checked: datetime
    database: db_health.DatabaseHealth
    nats: NatsStatus | None
    servers: list[fleet.ServerRow] = field(default_factory=list)
    agents: list[fleet.AgentRow] = field(default_factory=list)
    jobs_pending: int | None = None

    @property
    def healthy(self) -> bool:
        """The database answers with the newest schema, the bus answers, a management
        server is Up, and every agent is Up. (A server that stopped for good stays listed,
        Stopped: it makes nothing unhealthy while another is Up.)"""
        return (
            self.database.reachable
            and self.database.revision == self.database.head
            and self.nats is not None
            and self.nats.reachable
            and any(s.state == "Up" for s in self.servers)
            and all(a.state == "Up" for a in self.agents)
        )

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON values (times in ISO 8601)."""
        data: dict[str, Any] = _plain(dataclasses.asdict(self))
        data["healthy"] = self.healthy
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


async def gather(settings: Settings) -> Report:
    """Look at the database and the bus (at once) and report what they say."""
    url = settings.nats_url or await asyncio.to_thread(private_nats_url, settings)
    (database, servers, agents, pending), bus = await asyncio.gather(
        _database(settings), _nats(url, _access(settings))
    )
    return Report(utcnow(), database, bus, servers, agents, pending)


async def _database(
    settings: Settings,
) -> tuple[db_health.DatabaseHealth, list[fleet.ServerRow], list[fleet.AgentRow], int | None]:
    engine = create_engine(settings.resolved_database_url())
    try:
        health = await db_health.check(engine)
        if not health.reachable or health.revision is None:
            return health, [], [], None
        async with session_factory(engine)() as db:
            servers = await fleet.servers(db)
            agents = await fleet.agents(db, settings.heartbeat_interval)
            pending = await fleet.pending_jobs(db)
        return health, servers, agents, pending
    finally:
        await engine.dispose()


def private_nats_url(settings: Settings) -> str | None:
    """The URL of the private nats-server `serve` runs for this data directory (its config
    says where it listens), when no NATS URL is set; None without one."""
    try:
        text = (settings.data_dir / PRIVATE_CONFIG).read_text()
    except OSError:
        return None
    found = re.search(r'^listen: "([^"]+)"$', text, re.MULTILINE)
    return f"nats://{found.group(1)}" if found else None


def _access(settings: Settings) -> BusAccess:
    """The status's credentials on the bus: the configured ones, else the management
    servers' seed in the data directory when it is readable (an authorized bus admits
    nobody else)."""
    access = settings.bus_access()
    if access.nkey_seed_file is None and settings.resolved_nkey_seed_file().is_file():
        access = dataclasses.replace(access, nkey_seed_file=settings.resolved_nkey_seed_file())
    return access


async def _quiet(_exc: Exception) -> None:
    """nats-py logs every failed attempt with a traceback; the report says it once."""


async def _nats(url: str | None, access: BusAccess) -> NatsStatus | None:
    if not url:
        return None
    status = NatsStatus(redact(url))
    try:
        # One attempt per server of the URL (allow_reconnect=False can hang nats-py's
        # first connect), bounded as a whole.
        nc = await asyncio.wait_for(
            nats.connect(
                server_urls(url),
                name="cloudiag-status",
                connect_timeout=NATS_TIMEOUT,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                error_cb=_quiet,
                **access.options(),
            ),
            NATS_TIMEOUT * 2,
        )
    except Exception as exc:
        status.error = f"{type(exc).__name__}: {exc}"
        return status
    try:
        status.reachable = True
        status.server = bus_health.server_of(nc)
        status.discovered = sorted(f"{u.hostname}:{u.port}" for u in nc.discovered_servers)
        status.rtt_ms = round(await nc.rtt(timeout=NATS_TIMEOUT) * 1000, 3)
        status.streams = await bus_health.streams(nc.jetstream(timeout=NATS_TIMEOUT))
    except Exception as exc:
        status.error = f"{type(exc).__name__}: {exc}"
    finally:
        await nc.close()
    return status
