"""An index for the latest observation time per kind (the system status read all observations for it).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_observations_kind_observed", "observations", ["kind", "observed_at"])


def downgrade() -> None:
    op.drop_index("ix_observations_kind_observed", table_name="observations")
