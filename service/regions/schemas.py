"""API shapes of the regions domain."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.regions.types import AssignStatus, RegionLevel


class RegionRead(BaseModel):
    """A unit without its boundary."""

    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    level: RegionLevel
    parent_code: str | None
    area_ha: float
    cropland_ha: float | None


class PointIn(BaseModel):
    """A WGS-84 point."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class AssignRequest(BaseModel):
    """Points (and/or footprints as GeoJSON polygons) to assign at one level."""

    level: RegionLevel | None = Field(None, description="default: the finest level loaded")
    points: list[PointIn] = Field(default_factory=list, max_length=100_000)
    footprints: list[dict[str, Any]] = Field(
        default_factory=list, max_length=1_000, description="GeoJSON Polygon/MultiPolygon geometries, WGS-84"
    )


class PointAssignmentOut(BaseModel):
    """Where one point went."""

    latitude: float
    longitude: float
    region_code: str | None
    region_name: str | None
    status: AssignStatus
    distance_m: float | None


class ShareOut(BaseModel):
    """One unit's part of a footprint."""

    region_code: str
    region_name: str
    share: float
    area_m2: float


class FootprintAssignmentOut(BaseModel):
    """Every unit a footprint overlaps, largest first."""

    status: AssignStatus
    shares: list[ShareOut]
    outside_share: float
    distance_m: float | None


class AssignResponse(BaseModel):
    """Assignments in request order."""

    level: RegionLevel
    points: list[PointAssignmentOut]
    footprints: list[FootprintAssignmentOut]
