"""A fire moved to another township is judged on that township from the move (hand-made records, and one recorded
with the real service on SQLite and PostgreSQL).

西镇 was alerted and never answered; 20 minutes later the supervisor moved the fire to 东镇 (the field is 东镇's),
whose team acknowledged 10 minutes after the move. The statistics counted 东镇's acknowledgement from 西镇's alert:
30 minutes, late, and a late_acknowledge deduction for a team that answered in 10. The escalation timer already
counts from the move (``service.alerts.escalation``); the statistics now do too.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from service.db import make_session_factory, transaction
from service.errors import ConflictError
from service.incidents import service as incidents
from service.incidents.states import FalseAlarmReason, IncidentState, Role
from service.stats.lifecycle import clock_start
from service.stats.periods import parse_period
from service.stats.queries import load_fire_points
from service.stats.records import FirePoint, Transition
from service.stats.response import Compliance, DeadlinePolicy, Interval, feedback_compliance, response_of
from tests.stats.scenario import (
    AS_OF,
    COUNTY_A,
    EAST,
    PATROL,
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
from tests.stats.test_response_pure import AS_LATE, DEADLINE, point, t

S = IncidentState
NOVEMBER = parse_period("2025-11")


def moved(*transitions: Transition, at: float) -> FirePoint:
    """A hand-made fire point moved to its (current) township ``at`` minutes after T0."""
    return dataclasses.replace(point(*transitions), moves=(T0 + minutes(at),))


def test_the_clock_starts_at_the_latest_move_before_the_stage_was_reached() -> None:
    notified = T0
    moves = (T0 - minutes(5), T0 + minutes(20), T0 + minutes(40))
    assert clock_start(notified, moves, T0 + minutes(30)) == T0 + minutes(20)  # the move it was reached after
    assert clock_start(notified, moves, T0 + minutes(50)) == T0 + minutes(40)
    assert clock_start(notified, moves, T0 + minutes(10)) == notified  # answered before any move
    assert clock_start(notified, (T0 - minutes(5),), T0 + minutes(10)) == notified  # moved while suspected
    assert clock_start(notified, (), T0 + minutes(10)) == notified


def test_the_acknowledge_deadline_and_time_count_from_the_move() -> None:
    p = moved(t(0, S.NOTIFIED), t(30, S.ACKNOWLEDGED), t(45, S.ON_SITE), at=20)
    r = response_of(p, DEADLINE, AS_LATE)
    assert r is not None
    assert (r.acknowledge, r.intervals[Interval.ACKNOWLEDGE]) == (Compliance.MET, minutes(10))
    assert r.intervals[Interval.ON_SITE] == minutes(25)
    assert r.milestones.notified == T0  # the notification itself is what it was


def test_a_running_deadline_after_a_move_is_pending_not_missed() -> None:
    p = moved(t(0, S.NOTIFIED), at=20)
    r = response_of(p, DEADLINE, T0 + minutes(34))
    assert r is not None
    assert r.acknowledge is Compliance.PENDING
    r = response_of(p, DEADLINE, T0 + minutes(36))
    assert r is not None
    assert r.acknowledge is Compliance.MISSED


def test_a_move_after_the_township_answered_changes_nothing() -> None:
    """东镇's team had acknowledged at 5 minutes; the supervisor's later reassignment corrects the record."""
    p = moved(t(0, S.NOTIFIED), t(5, S.ACKNOWLEDGED), t(30, S.ON_SITE), at=20)
    r = response_of(p, DEADLINE, AS_LATE)
    assert r is not None
    assert (r.acknowledge, r.intervals[Interval.ACKNOWLEDGE]) == (Compliance.MET, minutes(5))
    # The on-site deadline was running at the move: it restarts there (as the escalation timer's does).
    assert (r.on_site, r.intervals[Interval.TRAVEL]) == (Compliance.MET, minutes(10))


def test_an_acknowledged_fire_moved_gets_the_on_site_time_from_the_move() -> None:
    p = moved(t(0, S.NOTIFIED), t(5, S.ACKNOWLEDGED), t(55, S.ON_SITE), at=30)
    r = response_of(p, DEADLINE, AS_LATE)
    assert r is not None
    assert (r.on_site, r.intervals[Interval.TRAVEL]) == (Compliance.MET, minutes(25))


def test_the_county_dismissing_a_moved_fire_within_the_new_townships_time_leaves_nothing_owed() -> None:
    supervisor = Transition(T0 + minutes(30), S.FALSE_ALARM, reason="not_found", actor_role=Role.SUPERVISOR.value)
    p = moved(t(0, S.NOTIFIED), supervisor, at=20)
    r = response_of(p, DEADLINE, AS_LATE)
    assert r is not None
    assert r.acknowledge is Compliance.NOT_APPLICABLE


def test_the_feedback_deadline_counts_from_the_move() -> None:
    p = moved(t(0, S.NOTIFIED), t(10 * 60 + 5, S.ACKNOWLEDGED), t(30 * 60, S.FEEDBACK), at=10 * 60)
    assert feedback_compliance(p, timedelta(hours=24), AS_LATE) is Compliance.MET
    late = moved(t(0, S.NOTIFIED), t(10 * 60 + 5, S.ACKNOWLEDGED), t(35 * 60, S.FEEDBACK), at=10 * 60)
    assert feedback_compliance(late, timedelta(hours=24), AS_LATE) is Compliance.MISSED


def test_a_fire_moved_by_the_supervisor_is_scored_on_the_new_township_from_the_move(engine: Engine) -> None:
    """Recorded with the real service: 西镇 notified at T0, its automatic assignment confirmed by hand at 10 minutes
    (a reassignment that is no move), moved to 东镇 at 20, 东镇's team acknowledged at 30 and was on site at 50.
    (Naming 东镇 again once it is assigned there by hand is refused, nothing recorded.)"""
    factory = make_session_factory(engine)
    supervisor, east = SUPERVISOR[COUNTY_A], PATROL[EAST]
    regions_and_users(factory, east, PATROL[WEST], supervisor)
    clock = Clock()
    with frozen(clock), transaction(factory) as session:
        incident = notified_fire(session, "moved")
        assert incident.township_code == WEST
        for after, township in ((10, WEST), (20, EAST)):
            clock.now = T0 + minutes(after)
            incidents.reassign(session, incident, supervisor, township_code=township, county_code=None, note="东镇的地")
        with pytest.raises(ConflictError, match="already assigned to"):
            incidents.reassign(session, incident, supervisor, township_code=EAST, county_code=None, note="again")
        for after, state in ((30, S.ACKNOWLEDGED), (50, S.ON_SITE)):
            clock.now = T0 + minutes(after)
            incidents.transition(session, incident, state, east, at=clock.now)
        clock.now = T0 + minutes(70)
        incidents.transition(
            session, incident, S.FALSE_ALARM, east, at=clock.now, reason=FalseAlarmReason.NON_STRAW_FIRE
        )
    with factory() as session:
        (p,) = load_fire_points(session, NOVEMBER)
        board = city_scores(session, NOVEMBER)
    assert p.moves == (T0 + minutes(20),)
    r = response_of(p, DeadlinePolicy().default, AS_OF)
    assert r is not None
    assert (r.acknowledge, r.intervals[Interval.ACKNOWLEDGE]) == (Compliance.MET, minutes(10))
    assert (r.on_site, r.intervals[Interval.TRAVEL]) == (Compliance.MET, minutes(20))
    east_score = next(u for u in board.units if u.code == EAST)
    assert (east_score.late_acknowledge, east_score.late_on_site) == (0, 0)
