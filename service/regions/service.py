"""Persistence of administrative units: atomic imports per level and cached indexes for assignment."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import shapely
from pyproj import Geod
from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from service.errors import NotFoundError
from service.regions.crs import SourceCRS
from service.regions.index import RegionIndex
from service.regions.loader import ReadReport
from service.regions.tables import Region, RegionImport
from service.regions.types import RegionLevel, RegionUnit

_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """The outcome of one import."""

    import_id: int
    level: RegionLevel
    unit_count: int
    replaced: int
    repaired: int
    warnings: tuple[str, ...]


def _ring_area_m2(ring: shapely.LinearRing) -> float:
    lon, lat = ring.xy
    area, _ = _GEOD.polygon_area_perimeter(lon, lat)
    return abs(area)


def geodesic_area_ha(geometry: shapely.Geometry) -> float:
    """Area on the WGS-84 ellipsoid in hectares: every part's exterior less its holes.

    Ring by ring with absolute values, because ``Geod.geometry_area_perimeter`` adds *signed* ring areas: a hole
    wound like its exterior (GeoJSON that ignores the right-hand rule; shapely finds it valid) was added, and
    parts wound in opposite directions cancelled each other out.
    """
    total_m2 = 0.0
    for part in shapely.get_parts(geometry):
        if isinstance(part, shapely.Polygon) and not part.is_empty:
            total_m2 += _ring_area_m2(part.exterior) - sum(_ring_area_m2(hole) for hole in part.interiors)
    return total_m2 / 10_000.0


def import_units(
    session: Session, units: Sequence[RegionUnit], *, level: RegionLevel, crs: SourceCRS, report: ReadReport
) -> ImportSummary:
    """Replace every unit of ``level`` with ``units`` inside the caller's transaction (all or nothing).

    Imports are serialised: on PostgreSQL a second import's DELETE did not see the first's uncommitted rows, so two
    imports of a level committed one after the other left the units of both files. The table lock lets readers
    (the serving service) through; SQLite's single writer lock, taken by the DELETE, does the same there.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE regions IN SHARE ROW EXCLUSIVE MODE"))
    deleted = session.execute(delete(Region).where(Region.level == level.value))
    replaced = cast("CursorResult[Any]", deleted).rowcount or 0
    record = RegionImport(
        level=level.value,
        source=report.source[-500:],
        crs=str(crs),
        unit_count=len(units),
        repaired_count=len(report.repairs),
        report=json.dumps(
            {
                "repairs": [{"feature": r.row, "code": r.code, "reason": r.reason} for r in report.repairs],
                "warnings": report.warnings,
            },
            ensure_ascii=False,
        ),
    )
    session.add(record)
    session.flush()
    session.add_all(
        Region(
            code=u.code,
            name=u.name,
            level=level.value,
            parent_code=u.parent_code,
            geometry_wkb=shapely.to_wkb(u.geometry),
            area_ha=geodesic_area_ha(u.geometry),
            cropland_ha=u.cropland_ha,
            import_id=record.id,
        )
        for u in units
    )
    session.flush()
    return ImportSummary(record.id, level, len(units), replaced, len(report.repairs), tuple(report.warnings))


def _to_unit(row: Region) -> RegionUnit:
    geometry = shapely.from_wkb(row.geometry_wkb)
    assert isinstance(geometry, shapely.Polygon | shapely.MultiPolygon)
    return RegionUnit(
        code=row.code,
        name=row.name,
        level=RegionLevel(row.level),
        geometry=geometry,
        parent_code=row.parent_code,
        cropland_ha=row.cropland_ha,
    )


def list_regions(session: Session, level: RegionLevel | None = None) -> list[Region]:
    """Units ordered by level and code."""
    query = select(Region).order_by(Region.level, Region.code)
    if level is not None:
        query = query.where(Region.level == level.value)
    return list(session.scalars(query))


def get_region(session: Session, level: RegionLevel, code: str) -> tuple[Region, RegionUnit]:
    """One unit, or :class:`NotFoundError`."""
    row = session.scalar(select(Region).where(Region.level == level.value, Region.code == code))
    if row is None:
        raise NotFoundError(f"no {level.value} with code {code}")
    return row, _to_unit(row)


def load_units(session: Session, level: RegionLevel) -> list[RegionUnit]:
    """Every unit of a level as typed records."""
    return [_to_unit(row) for row in list_regions(session, level)]


def loaded_levels(session: Session) -> list[RegionLevel]:
    """Levels that have units, finest first (grid, village, township, county…)."""
    present = set(session.scalars(select(Region.level).distinct()))
    return [level for level in reversed(RegionLevel) if level.value in present]


def units_coverage(session: Session, indexes: RegionIndexCache) -> list[shapely.Polygon | shapely.MultiPolygon] | None:
    """The imported units' area widened by the assignment tolerance, or None when no units are imported.

    The coarsest level covers the whole area; its cached index keeps the widened outline between calls.
    """
    levels = loaded_levels(session)
    if not levels:
        return None
    return indexes.get(session, levels[-1]).coverage()


class RegionIndexCache:
    """One :class:`RegionIndex` per level, rebuilt only when that level was re-imported.

    The version of a level is the id of its latest import, so a re-import anywhere (another process, the
    CLI) is noticed on the next request without any messaging.
    """

    def __init__(self, tolerance_m: float) -> None:
        self._tolerance_m = tolerance_m
        self._lock = threading.Lock()
        self._indexes: dict[RegionLevel, tuple[int, RegionIndex]] = {}

    def get(self, session: Session, level: RegionLevel) -> RegionIndex:
        """The index of ``level``; :class:`NotFoundError` when the level has no units."""
        version = session.scalar(select(func.max(Region.import_id)).where(Region.level == level.value))
        if version is None:
            raise NotFoundError(f"no {level.value} units have been imported")
        with self._lock:
            cached = self._indexes.get(level)
            if cached is not None and cached[0] == version:
                return cached[1]
        index = RegionIndex(load_units(session, level), tolerance_m=self._tolerance_m)
        with self._lock:
            self._indexes[level] = (version, index)
        return index
