"""hosts.report_hash: the fingerprint of the report a host's row was last made from

A heartbeat that repeats it (the usual case: nothing changed on the host) only refreshes
last_heartbeat, in one UPDATE for many hosts at once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.add_column(sa.Column("report_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hosts") as batch:
        batch.drop_column("report_hash")
