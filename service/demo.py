"""A generated demo region and scenario, so a newcomer sees strawfire working without any real data.

Everything here is synthetic and labelled DEMO: a county ``DEMO00`` ("演示县 DEMO") east of Changchun split into
four townships, and a reproducible set of fire points from the three kinds of source. It never reads
``../shared/data``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.regions.crs import SourceCRS
from service.regions.loader import ReadReport
from service.regions.service import import_units
from service.regions.tables import Region
from service.regions.types import RegionLevel, RegionUnit

DEMO_LABEL = "DEMO"
DEMO_COUNTY_CODE = "DEMO00"
_WEST, _SOUTH, _EAST, _NORTH = 125.50, 44.15, 125.80, 44.40
_CENTRE = (125.66, 44.27)  # off-centre on purpose: townships of different sizes


@dataclass(frozen=True, slots=True)
class DemoFirePoint:
    """One synthetic observation of the demo scenario."""

    observed_at: datetime
    latitude: float
    longitude: float
    source: str  # satellite | camera | drone
    confidence: float


def demo_units() -> tuple[RegionUnit, list[RegionUnit]]:
    """The demo county and its four townships (sharing exact borders)."""
    county = RegionUnit(
        DEMO_COUNTY_CODE, "演示县 (DEMO)", RegionLevel.COUNTY, shapely.box(_WEST, _SOUTH, _EAST, _NORTH)
    )
    cx, cy = _CENTRE
    mid_n, mid_s, mid_w, mid_e = (cx + 0.01, _NORTH), (cx - 0.01, _SOUTH), (_WEST, cy), (_EAST, cy - 0.01)
    quads = {
        "DEMO01": ("北岗镇 (DEMO)", [(_WEST, _NORTH), mid_n, _CENTRE, mid_w]),
        "DEMO02": ("东河乡 (DEMO)", [mid_n, (_EAST, _NORTH), mid_e, _CENTRE]),
        "DEMO03": ("南屯镇 (DEMO)", [_CENTRE, mid_e, (_EAST, _SOUTH), mid_s]),
        "DEMO04": ("西坡乡 (DEMO)", [mid_w, _CENTRE, mid_s, (_WEST, _SOUTH)]),
    }
    townships = [
        RegionUnit(code, name, RegionLevel.TOWNSHIP, shapely.Polygon(ring).normalize(), DEMO_COUNTY_CODE)
        for code, (name, ring) in quads.items()
    ]
    return county, townships


def demo_scenario(now: datetime | None = None, *, seed: int = 2022) -> list[DemoFirePoint]:
    """A reproducible day of demo fire points in and just around the demo county."""
    rng = random.Random(seed)  # noqa: S311  (reproducible demo data, not security)
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    points = []
    for i in range(12):
        source = ("satellite", "camera", "drone")[i % 3]
        points.append(
            DemoFirePoint(
                observed_at=now - timedelta(minutes=rng.randint(5, 24 * 60)),
                latitude=round(rng.uniform(_SOUTH - 0.01, _NORTH + 0.01), 5),
                longitude=round(rng.uniform(_WEST - 0.01, _EAST + 0.01), 5),
                source=source,
                confidence=round(rng.uniform(0.4, 0.98), 2),
            )
        )
    return sorted(points, key=lambda p: p.observed_at)


def load_demo(session: Session) -> bool:
    """Import the demo region unless real regions are present; True when it was (re)loaded."""
    real = session.scalar(select(Region.id).where(~Region.code.startswith(DEMO_LABEL)).limit(1))
    if real is not None:
        return False
    county, townships = demo_units()
    crs = SourceCRS("wgs84")
    import_units(session, [county], level=RegionLevel.COUNTY, crs=crs, report=ReadReport("demo (generated)"))
    import_units(session, townships, level=RegionLevel.TOWNSHIP, crs=crs, report=ReadReport("demo (generated)"))
    return True
