"""repeat_at_site: the earlier incident a new fire at the same place repeats.

On SQLite the column is added with a plain ``ALTER TABLE … ADD COLUMN … REFERENCES`` (allowed for a nullable
column): batch mode would copy and drop ``incidents``, which ``PRAGMA foreign_keys=ON`` refuses once observations
and events reference it. Going down on SQLite uses batch mode (SQLite cannot drop a column that is in a foreign
key): env.py turns foreign keys off around the steps and checks them after each (``service.db``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_FK = "fk_incidents_repeat_of_incident_id_incidents"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            f"ALTER TABLE incidents ADD COLUMN repeat_of_incident_id INTEGER CONSTRAINT {_FK} REFERENCES incidents (id)"
        )
        return
    op.add_column("incidents", sa.Column("repeat_of_incident_id", sa.Integer(), nullable=True))
    op.create_foreign_key(op.f(_FK), "incidents", "incidents", ["repeat_of_incident_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        if op.get_bind().dialect.name != "sqlite":
            batch_op.drop_constraint(op.f(_FK), type_="foreignkey")
        batch_op.drop_column("repeat_of_incident_id")
