"""Only the township's own team answers for it: a county supervisor's moves and another township's patrol are
not the township's response (recorded with the real service and real users, scored with the shipped rules)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from service.db import make_session_factory, transaction
from service.incidents import service as incidents
from service.incidents.states import FalseAlarmReason, IncidentState, Role
from service.stats import queries
from service.stats.periods import parse_period
from service.stats.queries import load_fire_points
from service.stats.response import Compliance, DeadlinePolicy, response_of
from tests.stats import scenario
from tests.stats.scenario import (
    ADMIN,
    AS_OF,
    COUNTY_A,
    COUNTY_B,
    EAST,
    PATROL,
    SOUTH,
    SUPERVISOR,
    T0,
    WEST,
    Clock,
    city_scores,
    frozen,
    minutes,
    notified_fire,
    regions_and_users,
)

NOVEMBER = parse_period("2025-11")
S = IncidentState


def test_a_supervisors_moves_and_another_townships_patrol_are_not_the_townships_answer(engine: Engine) -> None:
    """P: 甲县's supervisor dismissed it 5 minutes after the alert (it counted as 东镇 acknowledging on time).
    Q: the supervisor acknowledged at 5 minutes; 东镇's team first moved at 60. R: 西镇's team acknowledged at 5
    minutes, then the supervisor reassigned the fire to 东镇 at 20, whose team was on site at 50. Before, all three
    were 东镇 answering within 5 minutes. None of those acknowledgements is 东镇's, but each stopped the acknowledge
    clock (as it stopped the escalation timer's): P owes nothing (the county decided within the deadline), Q and R
    owe no acknowledgement (Q's supervisor acknowledged in time on 东镇's behalf, R was acknowledged when it was moved
    to 东镇); Q's on-site deadline ran from the supervisor's acknowledgement and was missed (55 minutes), R's from
    the move and was met (30 minutes)."""
    factory = make_session_factory(engine)
    supervisor, east, west = SUPERVISOR[COUNTY_A], PATROL[EAST], PATROL[WEST]
    regions_and_users(factory, east, west, supervisor)
    clock = Clock()
    ids: dict[str, int] = {}
    places = {"P": (125.05, 44.05), "Q": (125.03, 44.03), "R": (125.15, 44.05)}
    with frozen(clock):
        for offset, (name, (lon, lat)) in enumerate(places.items()):
            notified = T0 + timedelta(hours=offset)
            clock.now = notified
            with transaction(factory) as session:
                incident = notified_fire(session, name, lon, lat, at=notified)
                ids[name] = incident.id
                if name == "P":
                    steps = [(5, S.FALSE_ALARM, supervisor), (30, S.CLOSED, supervisor)]
                elif name == "Q":
                    steps = [(5, S.ACKNOWLEDGED, supervisor), (60, S.ON_SITE, east)]
                else:
                    steps = [(5, S.ACKNOWLEDGED, west), (50, S.ON_SITE, east)]
                for after, state, actor in steps:
                    if name == "R" and state is S.ON_SITE:
                        clock.now = notified + minutes(20)
                        incidents.reassign(
                            session, incident, supervisor, township_code=EAST, county_code=None, note="东镇's field"
                        )
                    clock.now = notified + minutes(after)
                    reason = FalseAlarmReason.NOT_FOUND if state is S.FALSE_ALARM else None
                    position = {"latitude": lat, "longitude": lon, "accuracy_m": 10.0} if state is S.ON_SITE else None
                    incidents.transition(
                        session, incident, state, actor, at=clock.now, reason=reason, position=position
                    )

    with factory() as session:
        points = {p.id: p for p in load_fire_points(session, NOVEMBER)}
        board = city_scores(session, NOVEMBER)
    # Who answered for the fire's township, as the record says: the service itself cannot tell (None).
    r = points[ids["R"]]
    assert r.township_code == EAST
    assert [(t.to_state, t.actor_role, t.actor_in_unit) for t in r.transitions] == [
        (S.NOTIFIED, Role.SYSTEM.value, None),
        (S.ACKNOWLEDGED, Role.PATROL.value, False),  # 西镇's team, before the fire was 东镇's
        (S.ON_SITE, Role.PATROL.value, True),
    ]
    responses = {name: response_of(points[ids[name]], DeadlinePolicy().default, AS_OF) for name in places}
    assert {name: (r.acknowledge, r.on_site) for name, r in responses.items() if r is not None} == {
        "P": (Compliance.NOT_APPLICABLE, Compliance.NOT_APPLICABLE),
        "Q": (Compliance.NOT_APPLICABLE, Compliance.MISSED),
        "R": (Compliance.NOT_APPLICABLE, Compliance.MET),
    }
    assert [r.milestones.acknowledged for r in responses.values() if r is not None] == [
        None,
        T0 + timedelta(hours=1) + minutes(60),
        T0 + timedelta(hours=2) + minutes(50),
    ]
    east_score = next(u for u in board.units if u.code == EAST)
    assert (east_score.late_acknowledge, east_score.late_on_site) == (0, 1)
    assert {(i.incident_id, i.rule) for i in east_score.items} == {(ids["Q"], "late_on_site")}


def test_each_acting_users_unit_is_looked_up_once_for_all_chunks(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fire points are read in chunks of incidents; the same teams act in every chunk, so each actor's unit is
    read from the users once (it was read again for every chunk that actor acted in)."""
    factory = make_session_factory(engine)
    regions_and_users(factory, ADMIN, *PATROL.values(), *SUPERVISOR.values())
    scenario.build(factory, regions=False)
    monkeypatch.setattr(queries, "_CHUNK", 2)  # 10 incidents: 5 chunks, 东镇's team acting in the first two
    looked_up: list[object] = []

    def record(conn: object, cursor: object, statement: str, parameters: object, *rest: object) -> None:
        if "FROM users" in statement:
            looked_up.extend(parameters.values() if isinstance(parameters, dict) else parameters)  # type: ignore[arg-type]

    event.listen(engine, "before_cursor_execute", record)
    try:
        with factory() as session:
            points = load_fire_points(session, NOVEMBER)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    east = next(p for p in points if p.township_code == EAST)
    assert [t.actor_in_unit for t in east.transitions][:2] == [None, True]  # the system's alert, 东镇's team
    assert sorted(map(str, looked_up)) == sorted({str(name) for name in looked_up})  # no name read twice
    assert {PATROL[EAST].username, PATROL[SOUTH].username, SUPERVISOR[COUNTY_B].username} <= set(looked_up)
