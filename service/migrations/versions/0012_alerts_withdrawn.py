"""Alerts can be ``withdrawn``: not sent because the incident moved on before they could go out.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 12:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _statuses(values: str) -> None:
    with op.batch_alter_table("alerts", recreate="auto") as batch_op:
        batch_op.drop_constraint(op.f("ck_alerts_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_alerts_status"), f"status IN ({values})")


def upgrade() -> None:
    _statuses("'pending', 'sent', 'failed', 'withdrawn'")


def downgrade() -> None:
    op.execute("UPDATE alerts SET status = 'failed' WHERE status = 'withdrawn'")  # the nearest older meaning
    _statuses("'pending', 'sent', 'failed'")
