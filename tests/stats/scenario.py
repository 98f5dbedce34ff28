"""A recorded scenario built with the real service functions, whose statistics and scores are hand-computed.

Three townships in two counties of a made-up city 229900 (codes follow GB/T 2260, so the prefix rule applies):

* 229901 甲县: 229901001 东镇 (1,000 ha cropland), 229901002 西镇 (2,000 ha cropland)
* 229902 乙县: 229902001 南乡 (no cropland figure: density falls back to its area)

Fires (T0 = 2025-11-03 10:00 Beijing time; minutes after notification in brackets):

====  ======  =======================  =====================================================================
fire  unit    seen by (first first)    record
====  ======  =======================  =====================================================================
A     东镇    satellite                notified, ack [10], en route, on site [40], out [60], feedback 500 m²,
                                       verified, closed [140]
B     东镇    camera, then satellite   notified, ack [20], on site [60], out [75], feedback 100 m²
C     东镇    drone                    notified, ack [3], on site [8], out [18], feedback 50 m²
D     西镇    camera                   notified, false alarm industrial_heat [10], closed [60]
E     西镇    satellite                notified, ack [10], on site [30], false alarm permitted_burn
F     西镇    camera                   notified, escalated by the system [31], nothing else
G     南乡    satellite                notified, false alarm non_straw_fire [10], reopened, ack, on site [90],
                                       out [100], feedback 200 m²
H     东镇    satellite                notified, false alarm duplicate by 甲县's supervisor (not a fire point)
J     南乡    camera                   first seen 2025-11-01 00:30 local (Oct 31 UTC): in November; never notified
K     南乡    camera                   first seen 2025-10-31 23:30 local: not in November
====  ======  =======================  =====================================================================

乙县 (229902) sets its own acknowledge deadline of 5 min, so G's 10-minute answer is late there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.auth.service import SYSTEM, Principal, create_user
from service.config import Settings
from service.db import transaction
from service.flows import ingest_observations
from service.incidents import service as incidents
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.states import FalseAlarmReason, IncidentState, Role
from service.incidents.tables import Incident
from service.regions.crs import SourceCRS
from service.regions.loader import ReadReport
from service.regions.service import RegionIndexCache, import_units
from service.regions.types import RegionLevel, RegionUnit
from service.stats import service
from service.stats.areas import Area
from service.stats.periods import Period
from service.stats.queries import load_units
from service.stats.response import Deadline, DeadlinePolicy
from service.stats.rules import RuleBook
from service.stats.scoring import ScoreBoard

T0 = datetime(2025, 11, 3, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
AS_OF = datetime(2025, 12, 15, tzinfo=UTC)
CITY, COUNTY_A, COUNTY_B = "229900", "229901", "229902"
EAST, WEST, SOUTH = "229901001", "229901002", "229902001"
DEADLINES = DeadlinePolicy(per_county={COUNTY_B: Deadline(acknowledge=timedelta(minutes=5))})
SETTINGS_OVERRIDES: dict[str, Any] = {
    "alerts": {"run_worker": False, "county_deadlines": {COUNTY_B: {"acknowledge_min": 5}}}
}

ADMIN = Principal("admin", Role.ADMIN)
PATROL = {code: Principal(f"patrol-{code}", Role.PATROL, code) for code in (EAST, WEST, SOUTH)}
SUPERVISOR = {code: Principal(f"sup-{code}", Role.SUPERVISOR, code) for code in (COUNTY_A, COUNTY_B)}
S = IncidentState
K = ObservationKind


def units() -> tuple[list[RegionUnit], list[RegionUnit]]:
    """The two counties and three townships (boxes sharing borders)."""
    counties = [
        RegionUnit(COUNTY_A, "甲县", RegionLevel.COUNTY, shapely.box(125.0, 44.0, 125.2, 44.1), CITY),
        RegionUnit(COUNTY_B, "乙县", RegionLevel.COUNTY, shapely.box(125.2, 44.0, 125.3, 44.1), CITY),
    ]
    townships = [
        RegionUnit(EAST, "东镇", RegionLevel.TOWNSHIP, shapely.box(125.0, 44.0, 125.1, 44.1), COUNTY_A, 1000.0),
        RegionUnit(WEST, "西镇", RegionLevel.TOWNSHIP, shapely.box(125.1, 44.0, 125.2, 44.1), COUNTY_A, 2000.0),
        RegionUnit(SOUTH, "南乡", RegionLevel.TOWNSHIP, shapely.box(125.2, 44.0, 125.3, 44.1), COUNTY_B, None),
    ]
    return counties, townships


def _obs(key: str, kind: ObservationKind, lon: float, lat: float, at: datetime) -> ObservationIn:
    half = 0.003 if kind is K.SATELLITE else 0.001
    region = shapely.box(lon - half, lat - half, lon + half, lat + half)
    return ObservationIn(kind, key, at, lat, lon, region, 0.8)


def minutes(m: float) -> timedelta:
    return timedelta(minutes=m)


# (fire, observations [(kind, lon, lat, at)], steps [(minutes after notification, state, actor, extra)])
Step = tuple[float, IncidentState, Principal, dict[str, Any]]
FIRES: dict[str, tuple[list[tuple[ObservationKind, float, float, datetime]], datetime | None, list[Step]]] = {
    "A": (
        [(K.SATELLITE, 125.05, 44.05, T0)],
        T0 + minutes(0),
        [
            (10, S.ACKNOWLEDGED, PATROL[EAST], {}),
            (25, S.EN_ROUTE, PATROL[EAST], {}),
            (40, S.ON_SITE, PATROL[EAST], {}),
            (60, S.EXTINGUISHED, PATROL[EAST], {}),
            (80, S.FEEDBACK, PATROL[EAST], {"feedback": {"cause": "straw", "burned_area_m2": 500}}),
            (110, S.VERIFIED, SUPERVISOR[COUNTY_A], {}),
            (140, S.CLOSED, SUPERVISOR[COUNTY_A], {}),
        ],
    ),
    "B": (
        [(K.CAMERA, 125.02, 44.02, T0 + minutes(60)), (K.SATELLITE, 125.021, 44.021, T0 + minutes(90))],
        T0 + minutes(65),
        [
            (20, S.ACKNOWLEDGED, PATROL[EAST], {}),
            (60, S.ON_SITE, PATROL[EAST], {}),
            (75, S.EXTINGUISHED, PATROL[EAST], {}),
            (95, S.FEEDBACK, PATROL[EAST], {"feedback": {"cause": "straw", "burned_area_m2": 100}}),
        ],
    ),
    "C": (
        [(K.DRONE, 125.08, 44.08, T0 + minutes(180))],
        T0 + minutes(182),
        [
            (3, S.ACKNOWLEDGED, PATROL[EAST], {}),
            (8, S.ON_SITE, PATROL[EAST], {}),
            (18, S.EXTINGUISHED, PATROL[EAST], {}),
            (28, S.FEEDBACK, PATROL[EAST], {"feedback": {"cause": "straw", "burned_area_m2": 50}}),
        ],
    ),
    "D": (
        [(K.CAMERA, 125.15, 44.05, T0 + minutes(240))],
        T0 + minutes(245),
        [
            (10, S.FALSE_ALARM, PATROL[WEST], {"reason": FalseAlarmReason.INDUSTRIAL_HEAT}),
            (60, S.CLOSED, SUPERVISOR[COUNTY_A], {}),
        ],
    ),
    "E": (
        [(K.SATELLITE, 125.18, 44.08, T0 + minutes(300))],
        T0 + minutes(310),
        [
            (10, S.ACKNOWLEDGED, PATROL[WEST], {}),
            (30, S.ON_SITE, PATROL[WEST], {}),
            (40, S.FALSE_ALARM, PATROL[WEST], {"reason": FalseAlarmReason.PERMITTED_BURN}),
        ],
    ),
    "F": (
        [(K.CAMERA, 125.12, 44.02, T0 + minutes(360))],
        T0 + minutes(360),
        [(31, S.ESCALATED, SYSTEM, {})],
    ),
    "G": (
        [(K.SATELLITE, 125.25, 44.05, T0 + timedelta(days=1))],
        T0 + timedelta(days=1),
        [
            (10, S.FALSE_ALARM, PATROL[SOUTH], {"reason": FalseAlarmReason.NON_STRAW_FIRE}),
            (60, S.REOPENED, SUPERVISOR[COUNTY_B], {}),
            (70, S.ACKNOWLEDGED, PATROL[SOUTH], {}),
            (90, S.ON_SITE, PATROL[SOUTH], {}),
            (100, S.EXTINGUISHED, PATROL[SOUTH], {}),
            (120, S.FEEDBACK, PATROL[SOUTH], {"feedback": {"cause": "straw", "burned_area_m2": 200}}),
        ],
    ),
    "H": (
        [(K.SATELLITE, 125.03, 44.09, T0 + minutes(480))],
        T0 + minutes(480),
        [(5, S.FALSE_ALARM, SUPERVISOR[COUNTY_A], {"reason": FalseAlarmReason.DUPLICATE})],
    ),
    "J": ([(K.CAMERA, 125.28, 44.02, datetime(2025, 10, 31, 16, 30, tzinfo=UTC))], None, []),
    "K": ([(K.CAMERA, 125.22, 44.08, datetime(2025, 10, 31, 15, 30, tzinfo=UTC))], None, []),
}


class Clock:
    """The server clock the incident service reads, set by the scenario."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def frozen(clock: Clock) -> Iterator[None]:
    """Make the incident service's event timestamps follow ``clock`` (events record server time)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(incidents, "utcnow", clock)
        yield


def import_regions(session: Session) -> None:
    counties, townships = units()
    crs = SourceCRS("wgs84")
    import_units(session, counties, level=RegionLevel.COUNTY, crs=crs, report=ReadReport("scenario"))
    import_units(session, townships, level=RegionLevel.TOWNSHIP, crs=crs, report=ReadReport("scenario"))


def build(factory: sessionmaker[Session], *, regions: bool = True) -> dict[str, int]:
    """Record the scenario; returns each fire's incident id."""
    if regions:
        with transaction(factory) as session:
            import_regions(session)
    clock = Clock()
    ids: dict[str, int] = {}
    indexes = RegionIndexCache(500)
    with frozen(clock):
        for name, (observations, notified, steps) in FIRES.items():
            with transaction(factory) as session:
                batch = [_obs(f"{name}-{i}", kind, lon, lat, at) for i, (kind, lon, lat, at) in enumerate(observations)]
                clock.now = max(o.observed_at for o in batch)
                summary = ingest_observations(session, batch, indexes=indexes, settings=Settings(), actor=ADMIN)
                assert len(summary.new_incidents) == 1, (name, summary)
                incident = session.get_one(Incident, summary.new_incidents[0])
                ids[name] = incident.id
                if notified is None:
                    continue
                clock.now = notified
                incidents.transition(session, incident, S.NOTIFIED, SYSTEM, at=notified)
                for after, state, actor, extra in steps:
                    clock.now = notified + minutes(after)
                    incidents.transition(session, incident, state, actor, at=clock.now, **extra)
    return ids


def incident_ids(factory: sessionmaker[Session]) -> list[int]:
    with factory() as session:
        return list(session.scalars(select(Incident.id).order_by(Incident.id)))


def regions_and_users(factory: sessionmaker[Session], *principals: Principal) -> None:
    """The scenario's regions, and a user for each principal: their moves then name the unit they answer for
    (``Transition.actor_in_unit``)."""
    with transaction(factory) as session:
        import_regions(session)
        for principal in principals:
            create_user(session, principal.username, "a-long-password", principal.role, principal.unit_code)


def notified_fire(
    session: Session, key: str, lon: float = 125.15, lat: float = 44.05, *, at: datetime = T0
) -> Incident:
    """A camera fire seen ``at`` (by default T0), ingested the production way (by default in 西镇) and notified
    then."""
    (number,) = ingest_observations(
        session,
        [_obs(key, K.CAMERA, lon, lat, at)],
        indexes=RegionIndexCache(500),
        settings=Settings(),
        actor=SYSTEM,
    ).new_incidents
    incident = session.get_one(Incident, number)
    incidents.transition(session, incident, S.NOTIFIED, SYSTEM, at=at)
    return incident


def city_scores(session: Session, period: Period) -> ScoreBoard:
    """The city's score board for ``period`` under the shipped example rules (./rules), default deadlines."""
    units = load_units(session)
    rules = RuleBook.load(Path(__file__).resolve().parents[2] / "rules").select(period)
    board, _ = service.score_board(session, period, Area.of(CITY, units), units, rules, DeadlinePolicy(), AS_OF)
    return board
