"""Observations of kind ``patrol``: a township patrol's own report of a fire from the field (巡查发现).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 08:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _kinds(values: str) -> None:
    with op.batch_alter_table("observations", recreate="auto") as batch_op:
        batch_op.drop_constraint(op.f("ck_observations_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_observations_kind"), f"kind IN ({values})")


def upgrade() -> None:
    _kinds("'drone', 'triangulated', 'satellite', 'camera', 'patrol'")


def downgrade() -> None:
    # The nearest older meaning: a point fix by the township's own team (the example rules count drones as the
    # township patrol's). The row keeps its details (reporter_unit included, so the self-found credit stands) and its
    # incident keeps its observation; a patrol report's key ("patrol:…") cannot collide with a drone sighting's.
    op.execute("UPDATE observations SET kind = 'drone' WHERE kind = 'patrol'")
    op.execute("UPDATE incidents SET location_kind = 'drone' WHERE location_kind = 'patrol'")
    _kinds("'drone', 'triangulated', 'satellite', 'camera'")
