"""Hotspot history: FIRMS archive pixels kept as evidence for the persistence rule only (``strawfire firms history``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hotspot_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("acq_utc", sa.DateTime(timezone=True), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("satellite", sa.String(length=16), nullable=False),
        sa.Column("instrument", sa.String(length=8), nullable=False),
        sa.Column("daynight", sa.String(length=1), nullable=False),
        sa.Column("source_file", sa.String(length=200), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hotspot_history")),
        sa.UniqueConstraint("source_key", name=op.f("uq_hotspot_history_source_key")),
    )
    with op.batch_alter_table("hotspot_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hotspot_history_acq_utc"), ["acq_utc"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hotspot_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hotspot_history_acq_utc"))
    op.drop_table("hotspot_history")
