"""index async_jobs by user and creation time

listAsyncJobs (a user's jobs, newest first) and the per-user rate limit of runDiagnostics
(a user's jobs since a moment) both filter on user_id and range over created; without this
index each scanned every job of the table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("async_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_async_jobs_user_created", ["user_id", "created"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("async_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_async_jobs_user_created")
