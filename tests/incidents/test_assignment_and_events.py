"""A supervisor's reassignment against later observations, the county that follows a township, and the
"observation" event of a batch landing on the incident the observation joined."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import shapely
from sqlalchemy import select
from sqlalchemy.engine import Engine

from service.auth.service import Principal
from service.config import Settings
from service.db import make_session_factory, transaction
from service.demo import demo_units
from service.flows import ingest_observations, reassign_incident
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.states import Role
from service.incidents.tables import Incident, IncidentEvent
from service.regions.crs import SourceCRS
from service.regions.loader import ReadReport
from service.regions.service import RegionIndexCache, import_units
from service.regions.types import RegionLevel, RegionUnit

SUPERVISOR = Principal("boss", Role.ADMIN)
T = datetime(2025, 10, 20, 5, 30, tzinfo=UTC)
FIRE = (125.55, 44.33)  # in 北岗镇 (DEMO01), county DEMO00


def pixel(lon: float, lat: float, key: str, minutes: int = 0) -> ObservationIn:
    box = shapely.box(lon - 0.004, lat - 0.003, lon + 0.004, lat + 0.003)
    return ObservationIn(ObservationKind.SATELLITE, key, T + timedelta(minutes=minutes), lat, lon, box, 0.9)


def two_counties(session: object) -> None:
    """The demo county and townships, plus a second county DEMO90 with its township DEMO91 east of them."""
    county, townships = demo_units()
    other = shapely.box(126.0, 44.1, 126.2, 44.3)
    crs, report = SourceCRS("wgs84"), ReadReport("test")
    counties = [county, RegionUnit("DEMO90", "另一县 (DEMO)", RegionLevel.COUNTY, other)]
    towns = [*townships, RegionUnit("DEMO91", "另一镇 (DEMO)", RegionLevel.TOWNSHIP, other, "DEMO90")]
    import_units(session, counties, level=RegionLevel.COUNTY, crs=crs, report=report)  # type: ignore[arg-type]
    import_units(session, towns, level=RegionLevel.TOWNSHIP, crs=crs, report=report)  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_reassignment_takes_the_townships_county_and_outlives_later_observations(engine: Engine) -> None:
    factory = make_session_factory(engine)
    settings, indexes = Settings(), RegionIndexCache(500)
    with transaction(factory) as session:
        two_counties(session)
        [number] = ingest_observations(
            session, [pixel(*FIRE, "s1")], indexes=indexes, settings=settings, actor=SUPERVISOR
        ).new_incidents
        incident = session.get(Incident, number)
        assert incident is not None
        assert (incident.township_code, incident.county_code) == ("DEMO01", "DEMO00")
        # The team of the other county's township knows this field: the supervisor moves the fire there.
        reassign_incident(session, incident, SUPERVISOR, township_code="DEMO91", county_code=None, note="ours")
        assert (incident.township_code, incident.county_code) == ("DEMO91", "DEMO90")
    with transaction(factory) as session:
        # The next satellite pass over the same fire joins the incident; its unit stays.
        summary = ingest_observations(
            session, [pixel(FIRE[0] + 0.001, FIRE[1], "s2", minutes=90)], indexes=indexes, settings=settings,
            actor=SUPERVISOR,
        )  # fmt: skip
        assert summary.updated_incidents == [number]
        incident = session.get(Incident, number)
        assert incident is not None
        assert (incident.township_code, incident.county_code, incident.assignment_status) == (
            "DEMO91",
            "DEMO90",
            "manual",
        )
        assert incident.last_observed_at == T + timedelta(minutes=90)  # the observation did join it


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_each_observation_event_names_the_incident_it_joined(engine: Engine) -> None:
    factory = make_session_factory(engine)
    settings, indexes = Settings(), RegionIndexCache(500)
    with transaction(factory) as session:
        two_counties(session)
        [first] = ingest_observations(
            session, [pixel(*FIRE, "a1")], indexes=indexes, settings=settings, actor=SUPERVISOR
        ).new_incidents
    with transaction(factory) as session:
        # One batch: a pixel joining the first fire, and a pixel of a new fire 20 km away.
        summary = ingest_observations(
            session, [pixel(FIRE[0] + 0.001, FIRE[1], "a2", 30), pixel(FIRE[0] + 0.25, FIRE[1], "b1", 30)],
            indexes=indexes, settings=settings, actor=SUPERVISOR,
        )  # fmt: skip
        [second] = summary.new_incidents
        events = session.execute(
            select(IncidentEvent.incident_id, IncidentEvent.kind, IncidentEvent.data).where(
                IncidentEvent.kind.in_(("observation", "created"))
            )
        ).all()
    by_key = {json.loads(data)["source_key"]: (incident_id, kind) for incident_id, kind, data in events}
    assert by_key == {"a1": (first, "created"), "a2": (first, "observation"), "b1": (second, "created")}


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_the_county_is_the_chosen_townships_own(engine: Engine) -> None:
    """A pixel 40 % in county X's one township and 30 % + 30 % in two townships of county Y: township by largest
    share is X's, county by largest share Y. The county now follows the township, so X's supervisors see it."""
    factory = make_session_factory(engine)
    crs, report = SourceCRS("wgs84"), ReadReport("test")
    x, y = shapely.box(125.0, 44.0, 125.1, 44.1), shapely.box(125.1, 44.0, 125.2, 44.1)
    with transaction(factory) as session:
        counties = [
            RegionUnit("DEMO70", "X县", RegionLevel.COUNTY, x),
            RegionUnit("DEMO80", "Y县", RegionLevel.COUNTY, y),
        ]
        towns = [
            RegionUnit("DEMO71", "X镇", RegionLevel.TOWNSHIP, x, "DEMO70"),
            RegionUnit("DEMO81", "Y北镇", RegionLevel.TOWNSHIP, shapely.box(125.1, 44.05, 125.2, 44.1), "DEMO80"),
            RegionUnit("DEMO82", "Y南镇", RegionLevel.TOWNSHIP, shapely.box(125.1, 44.0, 125.2, 44.05), "DEMO80"),
        ]
        import_units(session, counties, level=RegionLevel.COUNTY, crs=crs, report=report)
        import_units(session, towns, level=RegionLevel.TOWNSHIP, crs=crs, report=report)
        straddling = shapely.box(125.096, 44.045, 125.106, 44.055)
        observation = ObservationIn(ObservationKind.SATELLITE, "edge", T, 44.05, 125.101, straddling, 0.9)
        [number] = ingest_observations(
            session, [observation], indexes=RegionIndexCache(500), settings=Settings(), actor=SUPERVISOR
        ).new_incidents
        incident = session.get(Incident, number)
        assert incident is not None
        assert (incident.township_code, incident.county_code) == ("DEMO71", "DEMO70")


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_fire_placed_long_ago_is_still_placed_for_fusion(engine: Engine) -> None:
    """Pixel A places fire X; a tower's wedge joins X five hours later; pixel B, 8 km further along the wedge, comes
    seven hours after A. Fusion loaded only observations within its 6 h window, so X looked unplaced and B joined
    it through the wedge: the merge the wedge rule exists to prevent."""
    factory = make_session_factory(engine)
    settings, indexes = Settings(), RegionIndexCache(500)
    wedge = shapely.Polygon([(125.50, 44.326), (125.70, 44.328), (125.70, 44.332), (125.50, 44.334)])
    camera = ObservationIn(ObservationKind.CAMERA, "cam", T + timedelta(hours=5), 44.33, 125.551, wedge, 0.7)
    with transaction(factory) as session:
        two_counties(session)
        [fire_x] = ingest_observations(
            session, [pixel(125.55, 44.33, "a")], indexes=indexes, settings=settings, actor=SUPERVISOR
        ).new_incidents
        joined = ingest_observations(session, [camera], indexes=indexes, settings=settings, actor=SUPERVISOR)
        assert joined.updated_incidents == [fire_x]
        later = ingest_observations(
            session, [pixel(125.65, 44.33, "b", minutes=7 * 60)], indexes=indexes, settings=settings, actor=SUPERVISOR
        )
    assert len(later.new_incidents) == 1  # another fire
    assert later.updated_incidents == []
