"""Regions: administrative units of any level and the history of their imports.

Revision ID: 0001
Revises:
Create Date: 2026-11-29 11:13:48.123122
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "region_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("crs", sa.String(length=32), nullable=False),
        sa.Column("unit_count", sa.Integer(), nullable=False),
        sa.Column("repaired_count", sa.Integer(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "level IN ('province', 'city', 'county', 'township', 'village', 'grid')",
            name=op.f("ck_region_imports_level"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_region_imports")),
    )
    op.create_table(
        "regions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("parent_code", sa.String(length=32), nullable=True),
        sa.Column("geometry_wkb", sa.LargeBinary(), nullable=False),
        sa.Column("area_ha", sa.Double(), nullable=False),
        sa.Column("cropland_ha", sa.Double(), nullable=True),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "level IN ('province', 'city', 'county', 'township', 'village', 'grid')",
            name=op.f("ck_regions_level"),
        ),
        sa.ForeignKeyConstraint(["import_id"], ["region_imports.id"], name=op.f("fk_regions_import_id_region_imports")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_regions")),
        sa.UniqueConstraint("level", "code", name="level_code"),
    )
    with op.batch_alter_table("regions", schema=None) as batch_op:
        batch_op.create_index("ix_regions_code", ["code"], unique=False)
        batch_op.create_index(batch_op.f("ix_regions_parent_code"), ["parent_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("regions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_regions_parent_code"))
        batch_op.drop_index("ix_regions_code")

    op.drop_table("regions")
    op.drop_table("region_imports")
