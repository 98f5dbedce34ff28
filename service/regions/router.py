"""HTTP API of the regions domain."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from fastapi import APIRouter
from shapely.geometry import mapping, shape

from service.deps import CurrentPrincipal, RegionIndexesDep, SessionDep
from service.errors import InputError, NotFoundError
from service.regions import service
from service.regions.schemas import (
    AssignRequest,
    AssignResponse,
    FootprintAssignmentOut,
    PointAssignmentOut,
    RegionRead,
    ShareOut,
)
from service.regions.types import RegionLevel

# Any signed-in user or device may read boundaries and assign places (devices do, to label their sightings).
router = APIRouter(prefix="/api/v1/regions", tags=["regions"])


@router.get("")
def list_regions(
    principal: CurrentPrincipal, session: SessionDep, level: RegionLevel | None = None
) -> list[RegionRead]:
    """Units, optionally of one level, ordered by level and code."""
    return [RegionRead.model_validate(r) for r in service.list_regions(session, level)]


@router.get("/geojson")
def regions_geojson(principal: CurrentPrincipal, session: SessionDep, level: RegionLevel) -> dict[str, Any]:
    """A FeatureCollection of one level's units (WGS-84), for maps."""
    features = []
    for row in service.list_regions(session, level):
        geometry = shapely.from_wkb(row.geometry_wkb)
        features.append(
            {
                "type": "Feature",
                "geometry": mapping(geometry),
                "properties": RegionRead.model_validate(row).model_dump(mode="json"),
            }
        )
    return {"type": "FeatureCollection", "features": features}


@router.get("/{level}/{code}")
def get_region(principal: CurrentPrincipal, session: SessionDep, level: RegionLevel, code: str) -> dict[str, Any]:
    """One unit as a GeoJSON Feature."""
    row, unit = service.get_region(session, level, code)
    return {
        "type": "Feature",
        "geometry": mapping(unit.geometry),
        "properties": RegionRead.model_validate(row).model_dump(mode="json"),
    }


@router.post("/assign")
def assign(
    body: AssignRequest, principal: CurrentPrincipal, session: SessionDep, indexes: RegionIndexesDep
) -> AssignResponse:
    """Assign points and footprints to the units of one level."""
    level = body.level
    if level is None:
        levels = service.loaded_levels(session)
        if not levels:
            raise NotFoundError("no regions have been imported")
        level = levels[0]
    index = indexes.get(session, level)
    points: list[PointAssignmentOut] = []
    if body.points:
        lon = np.array([p.longitude for p in body.points])
        lat = np.array([p.latitude for p in body.points])
        result = index.assign_points(lon, lat, measure_outside=True)
        for i, p in enumerate(body.points):
            a = index.describe(result, i)
            points.append(
                PointAssignmentOut(
                    latitude=p.latitude,
                    longitude=p.longitude,
                    region_code=a.code,
                    region_name=a.name,
                    status=a.status,
                    distance_m=a.distance_m,
                )
            )
    footprints: list[FootprintAssignmentOut] = []
    for i, geojson in enumerate(body.footprints):
        try:
            geometry = shape(geojson)
        except Exception as exc:  # shapely raises several types for malformed GeoJSON
            raise InputError(f"unreadable GeoJSON geometry: {exc}", location=f"footprints[{i}]") from exc
        if not isinstance(geometry, shapely.Polygon | shapely.MultiPolygon) or not geometry.is_valid:
            raise InputError("a footprint must be a valid Polygon or MultiPolygon", location=f"footprints[{i}]")
        try:
            f = index.assign_footprint(geometry)
        except ValueError as exc:  # empty, or a vertex that is no longitude/latitude (was a 500 or nonsense shares)
            raise InputError(str(exc), location=f"footprints[{i}]") from exc
        footprints.append(
            FootprintAssignmentOut(
                status=f.status,
                outside_share=f.outside_share,
                distance_m=f.distance_m,
                shares=[
                    ShareOut(region_code=s.code, region_name=s.name, share=s.share, area_m2=s.area_m2) for s in f.shares
                ],
            )
        )
    return AssignResponse(level=level, points=points, footprints=footprints)
