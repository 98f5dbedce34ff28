"""Edge fire points: an incident whose location lies outside every unit but within the tolerance of one (or whose
satellite pixel, centred outside, overlaps one) is assigned to that unit as ``nearest``. The statistics carry that
mark (and the unit's share of a footprint that is not wholly the unit's) into :class:`FirePoint`, count edge fire
points per unit, and score them like any other; they had looked exactly like a fire in the middle of the township.

The fires are ingested and assigned the production way, in the scenario's townships (tests/stats/scenario.py):

==============  ===========================================================================================
fire            location
==============  ===========================================================================================
inside          a satellite pixel wholly in 东镇
nearest         a satellite pixel centred 222 m south of 东镇, a sixth of it in 东镇: nearest, share 1/6
nearest_clear   a camera's footprint wholly outside, 222 m south of 东镇 (within the 500 m tolerance): share 0
across          a satellite pixel centred in 东镇 with a third of it in 西镇 (the nearest the assignment has to an
                "ambiguous" status: inside, at a certainty of 2/3)
manual          a camera fire in 西镇 that 甲县's supervisor reassigned to 东镇 by hand
==============  ===========================================================================================

Each is fed back as a straw fire by 东镇's team: every one is a violation of 东镇's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import make_session_factory, transaction
from service.flows import ingest_observations
from service.incidents import service as incidents
from service.incidents.fusion import ObservationKind
from service.incidents.states import IncidentState
from service.incidents.tables import Incident
from service.regions.service import RegionIndexCache
from service.stats.outcomes import outcome_table
from service.stats.periods import parse_period
from service.stats.queries import load_fire_points
from service.stats.records import FirePoint
from service.stats.response import GroupBy
from service.stats.schemas import UnitScoreOut
from service.stats.scoring import UnitScore
from tests.stats.patrol_found import call, patrol_app
from tests.stats.scenario import (
    ADMIN,
    COUNTY_A,
    EAST,
    PATROL,
    SUPERVISOR,
    WEST,
    Clock,
    _obs,
    city_scores,
    frozen,
    import_regions,
)

K = ObservationKind
S = IncidentState
NOVEMBER = parse_period("2025-11")
EDGE_DAY = datetime(2025, 11, 10, 2, 0, tzinfo=UTC)  # 10:00 in Beijing
EDGE_FIRES: dict[str, tuple[ObservationKind, float, float]] = {
    "inside": (K.SATELLITE, 125.05, 44.05),
    "nearest": (K.SATELLITE, 125.03, 43.998),  # the pixel (±0.003°) reaches 44.001: a sixth of it in 东镇
    "nearest_clear": (K.CAMERA, 125.07, 43.997),  # the footprint (±0.001°) ends at 43.998, 0.002° (222 m) short
    "across": (K.SATELLITE, 125.099, 44.05),  # 125.096–125.102 across the border at 125.1: 2/3 in 东镇
    "manual": (K.CAMERA, 125.15, 44.05),  # in 西镇, moved to 东镇 by hand
}


def build_edge_fires(factory: sessionmaker[Session], *, regions: bool = True) -> dict[str, int]:
    """Ingest and handle :data:`EDGE_FIRES`, a day apart; returns each fire's incident id."""
    if regions:
        with transaction(factory) as session:
            import_regions(session)
    clock = Clock()
    ids: dict[str, int] = {}
    indexes = RegionIndexCache(500)
    with frozen(clock):
        for day, (name, (kind, lon, lat)) in enumerate(EDGE_FIRES.items()):
            seen = EDGE_DAY + timedelta(days=day)
            clock.now = seen
            with transaction(factory) as session:
                observation = _obs(f"edge-{name}", kind, lon, lat, seen)
                summary = ingest_observations(session, [observation], indexes=indexes, settings=Settings(), actor=ADMIN)
                (number,) = summary.new_incidents
                incident = session.get_one(Incident, number)
                ids[name] = incident.id
                incidents.transition(session, incident, S.NOTIFIED, ADMIN, at=seen)
                if name == "manual":
                    clock.now = seen + timedelta(minutes=2)
                    incidents.reassign(
                        session, incident, SUPERVISOR[COUNTY_A], township_code=EAST, county_code=None, note="东镇的地"
                    )
                feedback: dict[str, Any] = {"feedback": {"cause": "straw", "burned_area_m2": 50}}
                for after, state, extra in [
                    (5, S.ACKNOWLEDGED, {}),
                    (20, S.ON_SITE, {}),
                    (40, S.EXTINGUISHED, {}),
                    (60, S.FEEDBACK, feedback),
                ]:
                    clock.now = seen + timedelta(minutes=after)
                    incidents.transition(session, incident, state, PATROL[EAST], at=clock.now, **extra)
    return ids


def points_by_fire(factory: sessionmaker[Session], ids: dict[str, int]) -> dict[str, FirePoint]:
    with factory() as session:
        points = {p.id: p for p in load_fire_points(session, NOVEMBER)}
    return {name: points[number] for name, number in ids.items()}


def test_the_assignment_reaches_the_fire_points(engine: Engine) -> None:
    factory = make_session_factory(engine)
    ids = build_edge_fires(factory)
    with factory() as session:  # what the assignment stored, which the fire points must carry
        stored = {
            number: (status, certainty)
            for number, status, certainty in session.execute(
                select(Incident.id, Incident.assignment_status, Incident.assignment_certainty)
            )
        }
    assert {name: stored[number][0] for name, number in ids.items()} == {
        "inside": "inside",
        "nearest": "nearest",
        "nearest_clear": "nearest",
        "across": "inside",
        "manual": "manual",
    }

    points = points_by_fire(factory, ids)
    assert {name: (p.assignment, p.edge, p.township_code) for name, p in points.items()} == {
        "inside": ("inside", False, EAST),
        "nearest": ("nearest", True, EAST),
        "nearest_clear": ("nearest", True, EAST),
        "across": ("inside", False, EAST),
        "manual": ("manual", False, EAST),
    }
    # The unit's share of the footprint, only where the footprint is not wholly the unit's.
    assert points["inside"].unit_share is None
    assert points["nearest"].unit_share == pytest.approx(1 / 6, abs=0.01)
    assert points["nearest"].unit_share == pytest.approx(stored[ids["nearest"]][1])
    assert points["nearest_clear"].unit_share == 0.0
    assert points["across"].unit_share == pytest.approx(2 / 3, abs=0.01)
    assert points["manual"].unit_share is None  # a supervisor decided it: no geometry share to show
    # How far outside the units an edge fire point lies, stored with the assignment (geodesic metres).
    distances = {name: p.edge_distance_m for name, p in points.items()}
    assert distances["nearest"] == pytest.approx(222, abs=1)  # the pixel's centre
    assert distances["nearest_clear"] == pytest.approx(222, abs=2)  # the footprint's own nearest edge
    assert [distances[name] for name in ("inside", "across", "manual")] == [None, None, None]


def items_of(unit: UnitScore, incident: int) -> list[tuple[str, float]]:
    return sorted((i.rule, i.points) for i in unit.items if i.incident_id == incident)


def test_edge_fire_points_are_counted_and_scored_like_any_other(engine: Engine) -> None:
    factory = make_session_factory(engine)
    ids = build_edge_fires(factory)
    with factory() as session:
        board = city_scores(session, NOVEMBER)
        points = load_fire_points(session, NOVEMBER)
    east = next(u for u in board.units if u.code == EAST)
    west = next(u for u in board.units if u.code == WEST)
    assert (east.fire_points, east.violations, east.edge) == (5, 5, 2)
    assert west.edge == 0
    # The edge satellite fire costs 东镇 exactly what the one squarely inside does (a satellite point, unreported).
    assert items_of(east, ids["nearest"]) == items_of(east, ids["inside"])
    assert "fire_point:satellite" in dict(items_of(east, ids["nearest"]))
    assert items_of(east, ids["nearest_clear"]) == items_of(east, ids["manual"])  # both camera points

    by_township = outcome_table(points, GroupBy.TOWNSHIP)
    assert {g.key: g.edge for g in by_township.groups} == {EAST: 2}
    assert by_township.total.edge == 2


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The service (SQLite) with the edge fires; its admin user reads the statistics."""
    with patrol_app(tmp_path_factory.mktemp("edge-api") / "var") as client:
        build_edge_fires(client.app.state.session_factory, regions=False)  # type: ignore[attr-defined]
        yield client


def test_the_api_counts_edge_fire_points_per_unit(api: TestClient) -> None:
    scores = call(api, "admin", "GET", "/api/v1/scores", params={"period": "2025-11", "area": COUNTY_A})
    assert {u["code"]: (u["fire_points"], u["edge"]) for u in scores["units"]} == {EAST: (5, 2), WEST: (0, 0)}
    outcomes = call(api, "admin", "GET", "/api/v1/stats/outcomes", params={"period": "2025-11", "group_by": "township"})
    assert {g["key"]: g["edge"] for g in outcomes["groups"]} == {EAST: 2}
    assert outcomes["total"]["edge"] == 2
    assert "nearest" in UnitScoreOut.model_json_schema()["properties"]["edge"]["description"]
