"""PostgreSQL: TRUNCATE of ``incident_events`` (or of ``incidents`` with CASCADE) refused too.

Row triggers (migration 0002) do not fire on TRUNCATE, so it emptied the append-only record. SQLite has no
TRUNCATE (its ``DELETE FROM`` without WHERE fires the row trigger already refused).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER incident_events_no_truncate BEFORE TRUNCATE ON incident_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION incident_events_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS incident_events_no_truncate ON incident_events")
