"""Typed records for administrative units and assignment results (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import shapely

# Column widths of unit codes and names (regions, incidents, users, recipients): the loader refuses longer ones, which
# SQLite would store and PostgreSQL's VARCHAR refuse.
MAX_CODE_CHARS = 32
MAX_NAME_CHARS = 200


class RegionLevel(StrEnum):
    """Administrative level of a unit. Any level can be imported and assigned to."""

    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"  # 区县 (district, county, county-level city)
    TOWNSHIP = "township"  # 乡镇/街道
    VILLAGE = "village"  # 村/社区
    GRID = "grid"  # 网格 (patrol grid cell)


class AssignStatus(StrEnum):
    """How a place was assigned: inside a unit, to the nearest unit within tolerance, or to none."""

    INSIDE = "inside"
    NEAREST = "nearest"
    OUTSIDE = "outside"


@dataclass(frozen=True, slots=True)
class RegionUnit:
    """One administrative unit with its boundary in WGS-84 lon/lat."""

    code: str
    name: str
    level: RegionLevel
    geometry: shapely.Polygon | shapely.MultiPolygon
    parent_code: str | None = None
    cropland_ha: float | None = None


@dataclass(frozen=True, slots=True)
class PointAssignment:
    """Where one point went. ``distance_m`` is 0 inside, geodesic metres otherwise (None if not measured)."""

    code: str | None
    name: str | None
    status: AssignStatus
    distance_m: float | None


@dataclass(frozen=True, slots=True)
class UnitShare:
    """One unit's part of a footprint: ``share`` of the footprint's area (0–1) and that area in m²."""

    code: str
    name: str
    share: float
    area_m2: float


@dataclass(frozen=True, slots=True)
class FootprintAssignment:
    """Every unit a footprint touches, largest share first, plus the part outside all units.

    ``status`` follows the footprint's centre (:meth:`service.regions.index.RegionIndex.assign_footprint`):
    ``nearest`` with shares is a footprint at the edge, its centre outside every unit. ``distance_m``: 0 inside;
    for ``nearest``, the centre's geodesic distance to the nearest unit when the footprint overlaps one, else the
    footprint's own distance to the unit; None outside."""

    status: AssignStatus
    shares: tuple[UnitShare, ...]
    outside_share: float
    distance_m: float | None = None

    @property
    def primary(self) -> UnitShare | None:
        """The unit responsible for the footprint: the largest share (ties go to the lower code)."""
        return self.shares[0] if self.shares else None
