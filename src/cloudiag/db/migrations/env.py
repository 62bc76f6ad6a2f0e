"""Alembic environment: runs on the connection cloudiag hands over (see db/migrate.py)."""

from __future__ import annotations

from alembic import context

from cloudiag.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by a bare `alembic` call
    raise RuntimeError(
        "migrations run when cloudiag serve or cloudiag user starts "
        "(cloudiag.db.migrate.upgrade), which supplies the connection"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
