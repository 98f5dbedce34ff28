"""Satellite ingest across overlapping FIRMS windows: a pass that comes back grown is not a second fire point."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.engine import Engine

from satellite.firms import read_firms_csv
from service.auth.service import Principal
from service.config import Settings
from service.db import make_session_factory, transaction
from service.demo import load_demo
from service.flows import ingest_hotspots
from service.incidents.service import IngestSummary, transition
from service.incidents.states import IncidentState, Role
from service.incidents.tables import Incident, Observation
from service.regions.service import RegionIndexCache

ADMIN = Principal("admin", Role.ADMIN)
HEADER = (
    "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,bright_ti5,"
    "frp,daynight\n"
)
# Two adjacent VIIRS pixels of one NOAA-20 pass inside the demo county; the second, hotter one was published a
# granule later, so only the second poll's window holds it.
FIRST = "44.33000,125.55000,330.1,0.39,0.36,2025-10-20,510,N20,VIIRS,n,2.0NRT,295.0,5.0,D\n"
LATER = "44.33300,125.55000,345.2,0.39,0.36,2025-10-20,511,N20,VIIRS,n,2.0NRT,296.0,14.0,D\n"


class DemoCounty:
    """A database with the demo county, fed FIRMS CSV text the production way (one transaction per ingest)."""

    def __init__(self, engine: Engine) -> None:
        self.factory = make_session_factory(engine)
        with transaction(self.factory) as session:
            load_demo(session)
        self.indexes, self.settings = RegionIndexCache(500), Settings()

    def ingest(self, csv: str) -> IngestSummary:
        with transaction(self.factory) as session:
            hotspots = read_firms_csv(csv).hotspots
            return ingest_hotspots(session, hotspots, indexes=self.indexes, settings=self.settings, actor=ADMIN)


def test_a_pass_that_comes_back_with_a_hotter_pixel_adds_no_fire_point(engine: Engine) -> None:
    demo = DemoCounty(engine)
    first = demo.ingest(HEADER + FIRST)
    second = demo.ingest(HEADER + FIRST + LATER)
    assert (first.fire_points, first.repeats, len(first.new_incidents)) == (1, 0, 1)
    assert (second.new, second.duplicates) == (1, 1)
    assert (second.fire_points, second.repeats, len(second.new_incidents)) == (0, 1, 0)
    with demo.factory() as session:
        assert session.scalar(select(Incident.id).where(Incident.id.not_in(first.new_incidents))) is None
        points = {o.source_key: json.loads(o.details)["fire_point"] for o in session.scalars(select(Observation))}
    later = next(point for key, point in points.items() if "+4433300" in key)
    assert later["representative"]
    assert later["repeat_of"] == points[next(key for key in points if "+4433000" in key)]["key"]


# One fire seen by three VIIRS passes (NOAA-20, S-NPP 52 min later, NOAA-21 50 min after that), each pixel a few
# hundred metres from the last: 375 m footprints that do not touch, which the clustering calls repeats.
PASSES = (
    "44.33000,125.55000,330.1,0.39,0.36,2025-10-20,510,N20,VIIRS,n,2.0NRT,295.0,5.0,D\n",
    "44.33550,125.55000,331.0,0.39,0.36,2025-10-20,602,N,VIIRS,n,2.0NRT,295.0,6.0,D\n",
    "44.33000,125.55600,332.0,0.39,0.36,2025-10-20,652,N21,VIIRS,n,2.0NRT,295.0,7.0,D\n",
)
# A different fire 3 km away in the same hour: a fire point of its own, an incident of its own.
ELSEWHERE = "44.36000,125.55000,333.0,0.39,0.36,2025-10-20,602,N,VIIRS,n,2.0NRT,295.0,8.0,D\n"


def test_the_same_fire_in_later_passes_is_one_incident_whether_polled_or_in_one_file(engine: Engine) -> None:
    """The clustering called the later passes repeats (one fire point), but fusion, linking only overlapping
    footprints, opened an incident for each: three alerts and three counted fires for one fire."""
    demo = DemoCounty(engine)
    polled = [demo.ingest(HEADER + rows) for rows in (PASSES[0], PASSES[1] + ELSEWHERE, PASSES[2])]  # one per pass
    assert [(s.fire_points, s.repeats) for s in polled] == [(1, 0), (1, 1), (0, 1)]
    assert [len(s.new_incidents) for s in polled] == [1, 1, 0]  # the second: the fire 3 km away only
    with demo.factory() as session:
        by_incident: dict[int, list[str]] = {}
        for observation in session.scalars(select(Observation)):
            assert observation.incident_id is not None
            by_incident.setdefault(observation.incident_id, []).append(observation.source_key)
    assert sorted(len(keys) for keys in by_incident.values()) == [1, 3]


def test_the_same_fire_in_three_passes_of_one_file_is_one_incident(engine: Engine) -> None:
    whole = DemoCounty(engine).ingest(HEADER + "".join(PASSES) + ELSEWHERE)
    assert (whole.fire_points, whole.repeats) == (2, 2)
    assert len(whole.new_incidents) == 2


# The same fire in two passes either side of the border of 北岗镇 (DEMO01) and 东河乡 (DEMO02), which crosses
# latitude 44.33 at longitude 125.6646: the first pixel ~250 m inside DEMO01, the next pass's, hotter, ~270 m
# inside DEMO02; 520 m apart, a repeat to the clustering, footprints that do not touch.
WEST_OF_BORDER = "44.33000,125.66150,330.1,0.39,0.36,2025-10-20,510,N20,VIIRS,n,2.0NRT,295.0,5.0,D\n"
EAST_OF_BORDER = "44.33000,125.66800,331.0,0.39,0.36,2025-10-20,602,N,VIIRS,n,2.0NRT,295.0,9.0,D\n"


def test_a_repeat_across_a_township_border_does_not_take_the_fire_from_the_team_that_acknowledged_it(
    engine: Engine,
) -> None:
    """same_fire_as joined the next pass's pixel to the incident across the border; being hotter it became the
    incident's location, and the incident moved to the other township: 北岗镇's team, which had acknowledged it and
    was on its way, could no longer see or report it, and 东河乡 got a new-fire alert for an acknowledged incident.
    An equally precise pass is no reason to hand a fire over (before the repeat link it opened an incident in its
    own township, as it does again): each township keeps the fire seen on its side."""
    demo = DemoCounty(engine)
    first = demo.ingest(HEADER + WEST_OF_BORDER)
    [acknowledged] = first.new_incidents
    with transaction(demo.factory) as session:
        transition(
            session,
            session.get_one(Incident, acknowledged),
            IncidentState.ACKNOWLEDGED,
            Principal("p", Role.PATROL, "DEMO01"),
        )
    second = demo.ingest(HEADER + EAST_OF_BORDER)
    assert second.repeats == 1  # still the same fire to the clustering
    assert second.reassigned_incidents == []
    assert len(second.new_incidents) == 1
    with demo.factory() as session:
        kept = session.get_one(Incident, acknowledged)
        assert (kept.township_code, kept.state) == ("DEMO01", IncidentState.ACKNOWLEDGED.value)
        assert session.get_one(Incident, second.new_incidents[0]).township_code == "DEMO02"


def test_a_repeat_on_the_same_side_of_the_border_still_joins(engine: Engine) -> None:
    near = "44.33000,125.65500,331.0,0.39,0.36,2025-10-20,602,N,VIIRS,n,2.0NRT,295.0,9.0,D\n"  # 520 m west: DEMO01
    whole = DemoCounty(engine).ingest(HEADER + WEST_OF_BORDER + near)
    assert (whole.fire_points, whole.repeats, len(whole.new_incidents)) == (1, 1, 1)
