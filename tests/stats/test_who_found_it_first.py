"""Who found a fire first is who told the service first (SQLite and PostgreSQL).

西镇's patrol reported a fire at 11:00; a satellite pass had seen it at 10:30, but FIRMS published it (or the
back-fill brought it in) only after the report. Ordered by observation time, the satellite pass came first: 西镇 lost
its self-found credit (自查自报) and was charged with not reporting (漏报) a fire it had reported. Ordered by when the
service received each observation, the patrol report is first.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from service.auth.service import SYSTEM
from service.config import Settings
from service.db import make_session_factory, transaction
from service.flows import ingest_observations
from service.incidents import service as incidents
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.states import IncidentState
from service.incidents.tables import Incident
from service.regions.service import RegionIndexCache
from service.stats.periods import parse_period
from service.stats.queries import load_fire_points
from service.stats.records import Source
from tests.stats.scenario import PATROL, T0, WEST, _obs, city_scores, minutes, regions_and_users

S = IncidentState
NOVEMBER = parse_period("2025-11")
FIELD = (125.15, 44.05)  # (lon, lat) in 西镇


def _ingest(engine: Engine, observation: ObservationIn) -> list[int]:
    with transaction(make_session_factory(engine)) as session:
        summary = ingest_observations(
            session, [observation], indexes=RegionIndexCache(500), settings=Settings(), actor=SYSTEM
        )
        return [*summary.new_incidents, *summary.updated_incidents]


def test_a_satellite_pass_received_after_the_townships_report_did_not_find_the_fire_first(engine: Engine) -> None:
    factory = make_session_factory(engine)
    west = PATROL[WEST]
    regions_and_users(factory, west)
    report = _obs("west-patrol-report", ObservationKind.PATROL, *FIELD, T0 + minutes(60))
    report.details["reporter_unit"] = WEST
    (number,) = _ingest(engine, report)
    late_pass = _obs("firms-late", ObservationKind.SATELLITE, *FIELD, T0 + minutes(30))
    assert _ingest(engine, late_pass) == [number]  # the same fire
    with transaction(factory) as session:
        incident = session.get_one(Incident, number)
        incidents.transition(session, incident, S.NOTIFIED, SYSTEM, at=T0 + minutes(61))
        for state in (S.ACKNOWLEDGED, S.ON_SITE, S.EXTINGUISHED):
            incidents.transition(session, incident, state, west)
        incidents.transition(session, incident, S.FEEDBACK, west, feedback={"cause": "straw", "burned_area_m2": 80.0})

    with factory() as session:
        (p,) = load_fire_points(session, NOVEMBER)
        board = city_scores(session, NOVEMBER)
    assert [(s.source, s.observed_at) for s in p.sightings] == [
        (Source.PATROL, T0 + minutes(60)),
        (Source.SATELLITE, T0 + minutes(30)),
    ]
    west_score = next(u for u in board.units if u.code == WEST)
    assert (west_score.violations, west_score.self_found, west_score.unreported) == (1, 1, 0)
    assert {i.rule for i in west_score.items} >= {"self_found"}
    assert "unreported" not in {i.rule for i in west_score.items}
