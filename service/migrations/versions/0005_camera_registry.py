"""The camera registry.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 12:23:22.290000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cameras",
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("camera_id", name=op.f("pk_cameras")),
    )


def downgrade() -> None:
    op.drop_table("cameras")
