"""Statistics and scores of the recorded scenario (tests/stats/scenario.py) equal the hand-computed values.

Every figure below is worked out from the scenario table by hand, not by running the code.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.db import make_engine, make_session_factory, upgrade
from service.regions.types import RegionLevel
from service.stats import service
from service.stats.areas import Area
from service.stats.outcomes import outcome_table
from service.stats.periods import parse_period
from service.stats.queries import load_fire_points, load_units
from service.stats.response import GroupBy, Interval, response_table
from service.stats.rules import RuleBook
from service.stats.wording import NoteCode
from tests.conftest import POSTGRES_URL
from tests.conftest import _reset_postgres as reset_postgres
from tests.stats import scenario
from tests.stats.scenario import AS_OF, CITY, COUNTY_A, DEADLINES, EAST, SOUTH, WEST

RULES = Path(__file__).resolve().parents[2] / "rules"
NOVEMBER = parse_period("2025-11")


def m(value: float) -> timedelta:
    return timedelta(minutes=value)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def recorded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[sessionmaker[Session], dict[str, int]]]:
    """The scenario recorded once per database for this module's read-only tests (as the ``engine`` fixture)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('scenario') / 'test.sqlite3'}")
    else:
        if not POSTGRES_URL:
            pytest.skip("PostgreSQL not configured: set STRAWFIRE_TEST_POSTGRES_URL (.ci/run does)")
        engine = make_engine(POSTGRES_URL)
        reset_postgres(engine)
    upgrade(engine)
    factory = make_session_factory(engine)
    yield factory, scenario.build(factory)
    engine.dispose()


def test_period_membership_uses_beijing_days(recorded: tuple[sessionmaker[Session], dict[str, int]]) -> None:
    factory, ids = recorded
    with factory() as session:
        points = load_fire_points(session, NOVEMBER)
    assert sorted(p.id for p in points) == sorted(ids[name] for name in "ABCDEFGHJ")  # J in, K (Oct 31) out
    b = next(p for p in points if p.id == ids["B"])
    assert [s.kind.value for s in b.sightings] == ["camera", "satellite"]
    assert b.burned_area_m2 == 100.0
    with factory() as session:
        october = load_fire_points(session, parse_period("2025-10"))
    assert [p.id for p in october] == [ids["K"]]


def test_response_times_by_township(recorded: tuple[sessionmaker[Session], dict[str, int]]) -> None:
    factory, _ = recorded
    with factory() as session:
        points = load_fire_points(session, NOVEMBER)
    table = response_table(points, GroupBy.TOWNSHIP, DEADLINES, AS_OF)
    rows = {g.key: g for g in table.groups}
    assert list(rows) == [EAST, WEST, SOUTH]

    east = rows[EAST]  # A, B, C (H is a duplicate)
    assert (east.name, east.incidents, east.notified, east.not_notified, east.escalated) == ("东镇", 3, 3, 0, 0)
    ack = east.intervals[Interval.ACKNOWLEDGE]  # 10, 20, 3
    assert (ack.n, ack.p50, ack.p90, ack.max) == (3, m(10), m(20), m(20))
    on_site = east.intervals[Interval.ON_SITE]  # 40, 60, 8
    assert (on_site.p50, on_site.p90, on_site.max) == (m(40), m(60), m(60))
    out = east.intervals[Interval.EXTINGUISHED]  # 60, 75, 18
    assert (out.p50, out.p90) == (m(60), m(75))
    closed = east.intervals[Interval.CLOSED]  # A only
    assert (closed.n, closed.p50) == (1, m(140))
    travel = east.intervals[Interval.TRAVEL]  # 30, 40, 5
    assert (travel.p50, travel.p90) == (m(30), m(40))
    assert (east.acknowledge.met, east.acknowledge.missed) == (2, 1)
    assert east.acknowledge.rate == pytest.approx(2 / 3)
    assert (east.on_site.met, east.on_site.missed) == (2, 1)  # A's 30 min from ack is on time, B's 40 is not

    west = rows[WEST]  # D (false alarm answered in 10), E, F (never answered, escalated)
    assert (west.incidents, west.notified, west.escalated) == (3, 3, 1)
    assert west.intervals[Interval.ACKNOWLEDGE].p90 == m(10)
    assert (west.intervals[Interval.ON_SITE].n, west.intervals[Interval.ON_SITE].max) == (1, m(30))
    assert west.intervals[Interval.EXTINGUISHED].n == 0
    assert west.intervals[Interval.CLOSED].max == m(60)
    assert (west.acknowledge.met, west.acknowledge.missed) == (2, 1)
    assert (west.on_site.met, west.on_site.missed, west.on_site.rate) == (1, 0, 1.0)  # D owed no visit

    south = rows[SOUTH]  # G (10 min against 乙县's 5-minute deadline), J never notified
    assert (south.incidents, south.notified, south.not_notified, south.reopened) == (2, 1, 1, 1)
    assert (south.acknowledge.met, south.acknowledge.missed, south.acknowledge.rate) == (0, 1, 0.0)
    # First on site at 90, in the round after the supervisor reopened its false alarm: not a response time.
    assert south.intervals[Interval.ON_SITE].n == 0
    assert south.intervals[Interval.TRAVEL].n == 0  # its first answer was a false alarm

    total = table.total
    assert (total.incidents, total.notified, total.not_notified) == (8, 7, 1)
    ack = total.intervals[Interval.ACKNOWLEDGE]  # 3, 10, 10, 10, 10, 20
    assert (ack.n, ack.p50, ack.p90, ack.max) == (6, m(10), m(20), m(20))
    on_site = total.intervals[Interval.ON_SITE]  # 8, 30, 40, 60 (G's 90 was in its reopened round)
    assert (on_site.n, on_site.p50, on_site.p90) == (4, m(30), m(60))
    assert (total.acknowledge.met, total.acknowledge.missed) == (4, 3)
    assert (total.on_site.met, total.on_site.missed) == (3, 1)


def test_response_times_by_county_and_source(recorded: tuple[sessionmaker[Session], dict[str, int]]) -> None:
    factory, _ = recorded
    with factory() as session:
        points = load_fire_points(session, NOVEMBER)
    by_county = {g.key: g for g in response_table(points, GroupBy.COUNTY, DEADLINES, AS_OF).groups}
    assert by_county[COUNTY_A].incidents == 6
    assert by_county[COUNTY_A].intervals[Interval.ACKNOWLEDGE].p50 == m(10)  # 3, 10, 10, 10, 20
    by_source = {g.key: g for g in response_table(points, GroupBy.SOURCE, DEADLINES, AS_OF).groups}
    assert list(by_source) == ["satellite", "camera", "drone"]
    # B was seen by a camera and a satellite: it is in both rows.
    assert (by_source["satellite"].incidents, by_source["camera"].incidents, by_source["drone"].incidents) == (4, 4, 1)
    assert by_source["satellite"].intervals[Interval.ACKNOWLEDGE].p50 == m(10)  # A 10, B 20, E 10, G 10


def test_outcomes_by_source(recorded: tuple[sessionmaker[Session], dict[str, int]]) -> None:
    factory, _ = recorded
    with factory() as session:
        points = load_fire_points(session, NOVEMBER)
    table = outcome_table(points, GroupBy.SOURCE)
    rows = {g.key: g for g in table.groups}
    satellite, camera, drone = rows["satellite"], rows["camera"], rows["drone"]
    assert (satellite.fire_points, satellite.violations, satellite.permitted_burns, satellite.duplicates) == (
        4,
        3,
        1,
        1,
    )
    assert (camera.fire_points, camera.violations, camera.false_alarms, camera.open) == (4, 1, 1, 2)
    assert camera.false_alarm_reasons == {"industrial_heat": 1}
    assert (drone.fire_points, drone.violations) == (1, 1)
    total = table.total
    assert (total.fire_points, total.violations, total.false_alarms, total.permitted_burns, total.open) == (
        8,
        4,
        1,
        1,
        2,
    )
    assert total.duplicates == 1


def test_scores_under_the_rules_in_force(recorded: tuple[sessionmaker[Session], dict[str, int]]) -> None:
    factory, ids = recorded
    book = RuleBook.load(RULES)
    selection = book.select(NOVEMBER)
    assert selection.version.rules.version == "example-v2"
    with factory() as session:
        units = load_units(session)
        board, warnings = service.score_board(
            session, NOVEMBER, Area.of(CITY, units), units, selection, DEADLINES, AS_OF
        )
    assert board.level is RegionLevel.TOWNSHIP
    # F (西镇, escalated, never answered) and J (南乡, never notified) are still open at AS_OF.
    assert [(w.code, dict(w.params)) for w in warnings] == [
        (NoteCode.PROVISIONAL, {"n": 2, "units": 2, "as_of": "2025-12-15T00:00:00Z"})
    ]
    rows = {u.code: u for u in board.units}
    assert {code: u.open for code, u in rows.items()} == {EAST: 0, WEST: 1, SOUTH: 1}
    south_area = next(u.area_ha for u in units if u.code == SOUTH)

    # 西镇: D and E cost nothing; F was never acknowledged: −0.5.
    west = rows[WEST]
    assert (west.score, west.rank, west.grade, west.sanction, west.violations) == (99.5, 1, "优秀", None, 0)
    assert west.density_per_1000ha == 0.0
    assert west.density_basis == "cropland"

    # 南乡: G is a satellite point (−30, 200 m² is not large), unreported (−10), concealed after its false alarm
    # (−30), acknowledged late against 乙县's 5 minutes (−0.5); density 1 per area_ha (no cropland figure) × 2.
    south = rows[SOUTH]
    density = 1000.0 / south_area
    assert south.density_basis == "area"
    assert south.density_per_1000ha == pytest.approx(density)
    assert south.score == round(100 - 30 - 10 - 30 - 0.5 - 2 * density, 2)
    assert (south.unreported, south.concealed, south.late_acknowledge, south.rank) == (1, 1, 1, 2)
    assert south.sanction == "全市通报批评，取消评优资格"  # one violation, but a score below 60
    assert south.grade == "不合格"

    # 东镇: A satellite −30 × 2 (500 m² > 300) and unreported −10; B charged as satellite (its heaviest source)
    # −30, late acknowledge −0.5 and late on site −3; C found by the township's drone: +2; density 3 per 1,000 ha
    # × 2 = −6. 100 − 109.5 + 2 is below the floor: 0.
    east = rows[EAST]
    assert east.deductions == 60 + 10 + 30 + 0.5 + 3 + 6
    assert east.credits == 2
    assert (east.score, east.rank, east.grade) == (0.0, 3, "不合格")
    assert east.violations_by_source == {"satellite": 2, "camera": 0, "drone": 0, "patrol": 0}
    assert (east.self_found, east.unreported, east.concealed) == (1, 1, 0)
    assert east.density_per_1000ha == 3.0
    # Two violations charged (A, B); C, found by its own drone, is not one: the ladder's second step.
    assert east.sanction == "全市通报批评，取消评优资格"
    assert {(i.incident_id, i.rule, i.points) for i in east.items} == {
        (ids["A"], "fire_point:satellite", -60.0),
        (ids["A"], "unreported", -10.0),
        (ids["B"], "fire_point:satellite", -30.0),
        (ids["B"], "late_acknowledge", -0.5),
        (ids["B"], "late_on_site", -3.0),
        (ids["C"], "self_found", 2.0),
        (None, "density", -6.0),
    }


def test_a_past_period_is_scored_with_the_rules_then_in_force(
    recorded: tuple[sessionmaker[Session], dict[str, int]],
) -> None:
    factory, _ = recorded
    book = RuleBook.load(RULES)
    with factory() as session:
        units = load_units(session)
        # The same fires scored as if November were under version 1: satellite −20, unreported −5, no density.
        board, _ = service.score_board(
            session, NOVEMBER, Area.of(CITY, units), units, book.select(parse_period("2025-08")), DEADLINES, AS_OF
        )
    south = next(u for u in board.units if u.code == SOUTH)
    assert south.score == 100 - 20 - 5 - 20 - 0.5
