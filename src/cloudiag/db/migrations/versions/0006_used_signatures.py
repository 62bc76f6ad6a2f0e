"""used signatures, for replay protection

A signed request of a command that changes something is accepted once: its signature's
digest is kept until the signature expires.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "used_signatures",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_used_signatures_expires", "used_signatures", ["expires"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_used_signatures_expires", table_name="used_signatures")
    op.drop_table("used_signatures")
