"""Whether the database answers, which backend it is, and its schema's Alembic revision."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class DatabaseHealth:
    """What `cloudiag status` says of the database."""

    backend: str
    #: The URL without its password.
    url: str
    reachable: bool
    #: The schema's revision (None before the first migration); "" when unreachable.
    revision: str | None
    #: The newest revision this version of cloudiag knows (what `serve` upgrades to).
    head: str
    error: str = ""


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest migration shipped with this version."""
    from alembic.script import ScriptDirectory

    from cloudiag.db.migrate import alembic_config

    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


async def check(engine: AsyncEngine) -> DatabaseHealth:
    """Connect and read the schema revision; an unreachable database is said, not raised."""
    backend = engine.dialect.name
    url = engine.url.render_as_string(hide_password=True)
    head = head_revision()
    try:
        async with engine.connect() as conn:
            revision = await conn.run_sync(_current)
    except Exception as exc:
        return DatabaseHealth(backend, url, False, "", head, f"{type(exc).__name__}: {exc}")
    return DatabaseHealth(backend, url, True, revision, head)
