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
from pyproj import Geod
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth.service import SYSTEM, Principal, create_user
from service.auth.tables import User
from service.config import Settings
from service.flows import ingest_observations
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.service import transition
from service.incidents.states import FalseAlarmReason, IncidentState, Role
from service.incidents.tables import Incident
from service.regions.crs import SourceCRS
from service.regions.loader import ReadReport
from service.regions.service import RegionIndexCache, import_units
from service.regions.tables import Region
from service.regions.types import RegionLevel, RegionUnit
from video.camera import sector_polygon

_GEOD = Geod(ellps="WGS84")
S = IncidentState

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


# Printed by `strawfire demo load` and only ever set on the generated DEMO users of an empty database.
DEMO_PASSWORD = "demo-password"  # noqa: S105
DEMO_USERS = (
    ("demo-admin", Role.ADMIN, None),
    ("demo-supervisor", Role.SUPERVISOR, DEMO_COUNTY_CODE),
    ("demo-patrol", Role.PATROL, "DEMO01"),
)
_DEMO_TOWER = (44.16, 125.51)  # lat, lon: a tower at the county's south-west corner


def _observation(point: DemoFirePoint, index: int) -> ObservationIn:
    lat, lon = point.latitude, point.longitude
    if point.source == "satellite":
        region: shapely.Geometry = shapely.box(lon - 0.006, lat - 0.0045, lon + 0.006, lat + 0.0045)  # ~1 km pixel
        kind, details = ObservationKind.SATELLITE, {"product": "DEMO", "demo": True}
    elif point.source == "drone":
        region = shapely.buffer(shapely.Point(lon, lat), 0.00015)  # ~15 m
        kind, details = ObservationKind.DRONE, {"drone_id": "DEMO-drone", "demo": True}
    else:
        azimuth, _, _ = _GEOD.inv(_DEMO_TOWER[1], _DEMO_TOWER[0], lon, lat)
        region = sector_polygon(_DEMO_TOWER[0], _DEMO_TOWER[1], azimuth - 1.0, azimuth + 1.0, 30_000.0, 300.0)
        kind, details = ObservationKind.CAMERA, {"camera_id": "DEMO-tower", "demo": True}
    return ObservationIn(kind, f"demo-{index}", point.observed_at, lat, lon, region, point.confidence, details=details)


# Who makes a step of the demo's plans: the service, the fire's township team, or the county.
_SERVICE, _TEAM, _COUNTY = "service", "team", "county"


def _actor(who: str, incident: Incident, people: dict[Role, Principal]) -> Principal:
    """The DEMO user who may make a step on ``incident`` under the real permission model.

    The township team's steps are demo-patrol's only on its own township's fires (DEMO01): it had acted on fires
    of DEMO04 and on one outside every township, which no patrol user could even see. The demo has no team for
    the other townships, so there the county supervisor, whom the lifecycle lets make field moves in its county,
    works the fire (and the statistics count the township as not having answered); a fire outside the county is
    the admin's, the only user who sees it.
    """
    if who == _SERVICE:
        return SYSTEM
    patrol, supervisor = people[Role.PATROL], people[Role.SUPERVISOR]
    if who == _TEAM and incident.township_code == patrol.unit_code:
        return patrol
    return supervisor if supervisor.can_see(incident) else people[Role.ADMIN]


def load_demo_scenario(session: Session, settings: Settings, indexes: RegionIndexCache) -> tuple[int, list[str]]:
    """The DEMO scenario: incidents from the generated fire points (some already acted on) and DEMO users.

    Only on a database without incidents and, for the users, without users. Returns (incidents created, users
    created).
    """
    users: list[str] = []
    if session.scalar(select(User.id).limit(1)) is None:
        for name, role, unit in DEMO_USERS:
            create_user(session, name, DEMO_PASSWORD, role, unit)
            users.append(name)
    if session.scalar(select(Incident.id).limit(1)) is not None:
        return 0, users
    points = demo_scenario()
    summary = ingest_observations(
        session, [_observation(p, i) for i, p in enumerate(points)], indexes=indexes, settings=settings, actor=SYSTEM
    )
    incidents = session.scalars(
        select(Incident).where(Incident.id.in_(summary.new_incidents)).order_by(Incident.first_observed_at)
    ).all()
    people = {role: Principal(name, role, unit) for name, role, unit in DEMO_USERS}
    # The two oldest have been handled end to end, the next two are being worked on; the rest are waiting.
    plans: list[list[tuple[IncidentState, str]]] = [
        [
            (S.NOTIFIED, _SERVICE),
            (S.ACKNOWLEDGED, _TEAM),
            (S.EN_ROUTE, _TEAM),
            (S.ON_SITE, _TEAM),
            (S.EXTINGUISHED, _TEAM),
            (S.FEEDBACK, _TEAM),
            (S.VERIFIED, _COUNTY),
            (S.CLOSED, _COUNTY),
        ],
        [(S.NOTIFIED, _SERVICE), (S.ACKNOWLEDGED, _TEAM), (S.FALSE_ALARM, _TEAM), (S.CLOSED, _COUNTY)],
        [(S.NOTIFIED, _SERVICE), (S.ACKNOWLEDGED, _TEAM), (S.ON_SITE, _TEAM)],
        [(S.NOTIFIED, _SERVICE)],
    ]
    for incident, plan in zip(incidents, plans, strict=False):
        at = incident.first_observed_at
        for step, (target, who) in enumerate(plan):
            at = at + timedelta(minutes=4 + 3 * step)
            transition(
                session,
                incident,
                target,
                _actor(who, incident, people),
                at=at,
                note="DEMO",
                reason=FalseAlarmReason.NON_STRAW_FIRE if target is S.FALSE_ALARM else None,
                feedback={"cause": "DEMO: straw burning", "burned_area_m2": 800} if target is S.FEEDBACK else None,
            )
    return len(incidents), users
