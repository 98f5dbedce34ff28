"""The latest run of each background component (alert worker, FIRMS sources) for the system status, and an index
for the latest arrivals per observation kind.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "component_runs",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_component_runs")),
    )
    op.create_index("ix_observations_kind_received", "observations", ["kind", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_observations_kind_received", table_name="observations")
    op.drop_table("component_runs")
