"""a job may have a parent job

A run over many VMs is one parent job with a child job per VM; the parent's status follows
its children's. The index finds a parent's children.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("async_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key("fk_async_jobs_parent_id", "async_jobs", ["parent_id"], ["id"])
        batch_op.create_index("ix_async_jobs_parent_id", ["parent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("async_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_async_jobs_parent_id")
        batch_op.drop_constraint("fk_async_jobs_parent_id", type_="foreignkey")
        batch_op.drop_column("parent_id")
