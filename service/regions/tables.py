"""Tables of the regions domain: administrative units and the record of each import."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, UTCDateTime, utcnow
from service.regions.types import MAX_CODE_CHARS, MAX_NAME_CHARS, RegionLevel

LEVELS_SQL = ", ".join(f"'{level.value}'" for level in RegionLevel)


class RegionImport(Base):
    """One import of a level: where it came from, its CRS, what was repaired (append-only history)."""

    __tablename__ = "region_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    level: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(500))
    crs: Mapped[str] = mapped_column(String(32))
    unit_count: Mapped[int]
    repaired_count: Mapped[int]
    report: Mapped[str] = mapped_column(Text, default="")  # JSON: repairs and warnings
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint(f"level IN ({LEVELS_SQL})", name="level"),)


class Region(Base):
    """An administrative unit of any level, its boundary as WKB in WGS-84."""

    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(MAX_CODE_CHARS))
    name: Mapped[str] = mapped_column(String(MAX_NAME_CHARS))
    level: Mapped[str] = mapped_column(String(16))
    parent_code: Mapped[str | None] = mapped_column(String(MAX_CODE_CHARS), index=True)
    geometry_wkb: Mapped[bytes] = mapped_column(LargeBinary)
    area_ha: Mapped[float]
    cropland_ha: Mapped[float | None]
    import_id: Mapped[int] = mapped_column(ForeignKey("region_imports.id"))

    __table_args__ = (
        UniqueConstraint("level", "code", name="level_code"),
        CheckConstraint(f"level IN ({LEVELS_SQL})", name="level"),
        Index("ix_regions_code", "code"),
    )
