"""The statistics stop a township's clock where the escalation timer and the dashboard stop it (hand-made records,
then one recorded with the real service and escalation pass on SQLite and PostgreSQL).

* Acknowledged on the township's behalf: the timer stops the acknowledge clock at anyone's acknowledgement
  (``service.alerts.escalation.deadline_start``; the dashboard's ``clock_from``), and so do the statistics now. They
  had scored a missed acknowledgement for a township whose supervisor acknowledged for it after phoning its team at
  5 minutes (no reminder, no escalation, nothing late on the dashboard), and for a township a fire was moved to
  after another township's patrol had acknowledged it (it could not acknowledge any more: its first move was
  en route).
* Never reached: an escalation recording that the fire's own unit could not be reached (no recipients, or its alert
  never got through) left the township charged a missed acknowledgement for a fire it was never told of.
* Record corrections: a supervisor correcting the unit of a fire the county already had restarted the clock
  (missed, then pending for 15 minutes, then charged to the unit it was moved to).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from service.alerts.escalation import escalate_due
from service.db import make_session_factory, transaction
from service.incidents import service as incidents
from service.incidents.states import IncidentState, Role
from service.stats.periods import parse_period
from service.stats.queries import load_fire_points
from service.stats.records import FirePoint, Transition
from service.stats.response import Compliance, DeadlinePolicy, Interval, feedback_compliance, response_of
from tests.stats.scenario import (
    AS_OF,
    COUNTY_A,
    EAST,
    SUPERVISOR,
    T0,
    WEST,
    Clock,
    frozen,
    notified_fire,
    regions_and_users,
)
from tests.stats.test_response_pure import AS_LATE, by, point, respond, t

S = IncidentState
NOVEMBER = parse_period("2025-11")


def minutes(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def moved(fire: FirePoint, *at: float) -> FirePoint:
    """``fire`` moved to its (current) township at each of ``at`` minutes after T0."""
    return dataclasses.replace(fire, moves=tuple(minutes(m) for m in at))


def unreachable(at: float) -> Transition:
    """The service escalating the fire because its own unit could not be reached."""
    return Transition(minutes(at), S.ESCALATED, actor_role=Role.SYSTEM.value, unreachable=True)


def test_a_supervisors_acknowledgement_for_the_township_stops_its_acknowledge_clock() -> None:
    """Notified at 0; the supervisor phones the team and acknowledges at 5; the team sets off at 20 and is on site
    at 30. Nothing was late for the timer: the on-site deadline ran from the supervisor's acknowledgement."""
    fire = point(
        t(0, S.NOTIFIED),
        by(5, S.ACKNOWLEDGED, "supervisor", in_unit=False),
        by(20, S.EN_ROUTE, "patrol", in_unit=True),
        by(30, S.ON_SITE, "patrol", in_unit=True),
    )
    r = respond(fire)
    assert (r.milestones.acknowledged_on_behalf, r.milestones.acknowledged) == (minutes(5), minutes(20))
    assert (r.acknowledge, r.on_site) == (Compliance.NOT_APPLICABLE, Compliance.MET)
    assert Interval.ACKNOWLEDGE not in r.intervals  # the team's 20 minutes answered a clock that had stopped
    assert (r.intervals[Interval.TRAVEL], r.intervals[Interval.ON_SITE]) == (timedelta(minutes=25), minutes(30) - T0)
    # The on-site deadline counts from the supervisor's acknowledgement, as the timer's does: at 40 it was late.
    late = point(*fire.transitions[:3], by(40, S.ON_SITE, "patrol", in_unit=True))
    assert respond(late).on_site is Compliance.MISSED


def test_an_acknowledgement_on_the_townships_behalf_after_its_deadline_leaves_it_missed() -> None:
    fire = point(t(0, S.NOTIFIED), by(20, S.ACKNOWLEDGED, "supervisor", in_unit=False))
    assert respond(fire).acknowledge is Compliance.MISSED


def test_a_fire_moved_after_another_township_acknowledged_it_owes_no_acknowledgement() -> None:
    """A's patrol acknowledged at 5; the supervisor moved the fire to B at 20 (B cannot acknowledge it: it is
    acknowledged already); B's team set off at 40 and was on site at 45: B's on-site deadline ran from the move."""
    fire = moved(
        point(
            t(0, S.NOTIFIED),
            by(5, S.ACKNOWLEDGED, "patrol", in_unit=False),
            by(40, S.EN_ROUTE, "patrol", in_unit=True),
            by(45, S.ON_SITE, "patrol", in_unit=True),
        ),
        20,
    )
    r = respond(fire)
    assert (r.acknowledge, r.on_site, r.intervals[Interval.TRAVEL]) == (
        Compliance.NOT_APPLICABLE,
        Compliance.MET,
        timedelta(minutes=25),
    )
    # A acknowledged late (at 40) and the fire was moved to B at 60: B is not charged with A's lateness.
    late_at_a = moved(point(t(0, S.NOTIFIED), by(40, S.ACKNOWLEDGED, "patrol", in_unit=False)), 60)
    assert respond(late_at_a).acknowledge is Compliance.NOT_APPLICABLE


def test_someone_else_on_site_first_stops_the_on_site_clock() -> None:
    """The team acknowledged at 5; the supervisor, there with the team's cadre, recorded on site at 20; the timer
    ran no on-site deadline after that, and the statistics no longer charge one."""
    fire = point(
        t(0, S.NOTIFIED), by(5, S.ACKNOWLEDGED, "patrol", in_unit=True), by(20, S.ON_SITE, "supervisor", in_unit=False)
    )
    r = respond(fire)
    assert (r.acknowledge, r.on_site) == (Compliance.MET, Compliance.NOT_APPLICABLE)
    assert r.milestones.on_site_on_behalf == minutes(20)
    assert Interval.ON_SITE not in r.intervals
    assert Interval.TRAVEL not in r.intervals


def test_a_township_never_reached_owes_no_acknowledgement() -> None:
    """Moved at 20 to a township nobody receives alerts for, escalated as unreachable at 21; or one whose alert kept
    failing, escalated at 50 when the acknowledge deadline had long passed: never told, nothing to acknowledge."""
    for escalated in (21, 50):
        fire = moved(point(t(0, S.NOTIFIED), unreachable(escalated)), 20)
        r = respond(fire)
        assert (r.milestones.unreachable, r.acknowledge) == (minutes(escalated), Compliance.NOT_APPLICABLE)
        assert feedback_compliance(fire, timedelta(hours=24), AS_LATE) is Compliance.NOT_APPLICABLE
    # An ordinary escalation (the township was told and did not answer) leaves its acknowledgement missed.
    told = moved(point(t(0, S.NOTIFIED), Transition(minutes(50), S.ESCALATED, actor_role=Role.SYSTEM.value)), 20)
    assert respond(told).acknowledge is Compliance.MISSED


def test_a_team_that_takes_an_unreached_fire_later_is_judged_on_site_from_its_acknowledgement() -> None:
    fire = point(
        t(0, S.NOTIFIED),
        unreachable(30),
        by(40, S.ACKNOWLEDGED, "patrol", in_unit=True),
        by(80, S.ON_SITE, "patrol", in_unit=True),
    )
    r = respond(fire)
    assert (r.acknowledge, r.on_site) == (Compliance.NOT_APPLICABLE, Compliance.MISSED)


def test_correcting_the_unit_of_an_escalated_or_closed_fire_does_not_restart_its_clock() -> None:
    """Never acknowledged, escalated at 31; a supervisor corrects the unit at 40. The acknowledge deadline was
    missed before the move: it does not become pending again, and the unit the record now names, which never had
    the fire while a deadline ran (the county had it, the timer ran none), owes none."""
    escalated = point(t(0, S.NOTIFIED), Transition(minutes(31), S.ESCALATED, actor_role=Role.SYSTEM.value))
    assert respond(escalated).acknowledge is Compliance.MISSED
    corrected = moved(escalated, 40)
    for as_of in (minutes(45), minutes(60), AS_LATE):
        r = response_of(corrected, DeadlinePolicy().default, as_of)
        assert r is not None
        assert r.acknowledge is Compliance.NOT_APPLICABLE
    assert feedback_compliance(corrected, timedelta(hours=24), AS_LATE) is Compliance.NOT_APPLICABLE
    # Handled and closed by the county (acknowledged late on the township's behalf), then corrected at 200.
    closed = point(
        t(0, S.NOTIFIED),
        by(20, S.ACKNOWLEDGED, "supervisor", in_unit=False),
        by(40, S.ON_SITE, "supervisor", in_unit=False),
        by(60, S.EXTINGUISHED, "supervisor", in_unit=False),
        by(70, S.FEEDBACK, "supervisor", in_unit=False),
        by(80, S.VERIFIED, "supervisor", in_unit=False),
        by(90, S.CLOSED, "supervisor", in_unit=False),
    )
    assert respond(closed).acknowledge is Compliance.MISSED
    r = response_of(moved(closed, 200), DeadlinePolicy().default, minutes(205))
    assert r is not None
    assert r.acknowledge is Compliance.NOT_APPLICABLE  # not pending: the fire was closed before the move


def test_a_township_never_reached_is_not_charged_recorded_with_the_real_escalation_pass(engine: Engine) -> None:
    """西镇 was notified at T0; the supervisor moved the fire to 东镇 at 20, which nobody receives alerts for; the
    escalation pass at 21 escalates it to the county, recording 东镇 as unreachable. 东镇 was charged a missed
    acknowledgement for a fire it was never told of."""
    factory = make_session_factory(engine)
    regions_and_users(factory, SUPERVISOR[COUNTY_A])
    clock = Clock()
    with frozen(clock), transaction(factory) as session:
        incident = notified_fire(session, "unreached")
        number = incident.id
        assert incident.township_code == WEST
        clock.now = minutes(20)
        incidents.reassign(
            session, incident, SUPERVISOR[COUNTY_A], township_code=EAST, county_code=None, note="东镇的地"
        )
    with transaction(factory) as session:
        assert escalate_due(session, minutes(21)).escalated == [number]
    with factory() as session:
        (p,) = load_fire_points(session, NOVEMBER)
    assert [(tr.to_state, tr.unreachable) for tr in p.transitions] == [(S.NOTIFIED, False), (S.ESCALATED, True)]
    r = response_of(p, DeadlinePolicy().default, AS_OF)
    assert r is not None
    assert (r.milestones.unreachable, r.acknowledge) == (minutes(21), Compliance.NOT_APPLICABLE)
