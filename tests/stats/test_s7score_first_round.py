"""A reopened fire gives the response times of its first round only (README: the later rounds "show up as reopened
in the counts, not as second response times"), recorded with the real service and real users on SQLite and
PostgreSQL, and read as the statistics API and the reports read them.

The audit's case: the team declared a fire a false alarm 10 minutes after the alert, the supervisor reopened it two
hours later, and the team was on site 29 minutes after that. Its on-site time, measured from the first
notification (149 minutes), was in the on-site p90 and max, while the on-site deadline left the fire out (its first
answer was a false alarm): the distribution and the compliance counts disagreed about the same fire.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from service.db import make_session_factory, transaction
from service.incidents import service as incidents
from service.incidents.states import FalseAlarmReason, IncidentState
from service.stats.periods import parse_period
from service.stats.queries import load_fire_points
from service.stats.response import Compliance, DeadlinePolicy, GroupBy, Interval, response_of, response_table
from tests.stats.scenario import (
    AS_OF,
    COUNTY_A,
    EAST,
    PATROL,
    SUPERVISOR,
    T0,
    Clock,
    frozen,
    minutes,
    notified_fire,
    regions_and_users,
)

NOVEMBER = parse_period("2025-11")
S = IncidentState
FEEDBACK = {"feedback": {"cause": "straw", "burned_area_m2": 120}}


def test_a_fire_reopened_after_the_teams_false_alarm_gives_no_second_round_times(engine: Engine) -> None:
    """R (the audit's case): false alarm by 东镇's team at 10, reopened by 甲县's supervisor at 120, acknowledged at
    125, on site at 149, out at 160, fed back at 170: only its acknowledgement (the false alarm, at 10) is a response
    time. V: handled in its first round (on site at 20), fed back, failed verification (reopened at 60), handled
    again and closed at 120: its first-round times stay, its close (in the second round) is not one."""
    factory = make_session_factory(engine)
    team, supervisor = PATROL[EAST], SUPERVISOR[COUNTY_A]
    regions_and_users(factory, team, supervisor)
    clock = Clock()
    rounds = {
        "R": [
            (10, S.FALSE_ALARM, team),
            (120, S.REOPENED, supervisor),
            (125, S.ACKNOWLEDGED, team),
            (149, S.ON_SITE, team),
            (160, S.EXTINGUISHED, team),
            (170, S.FEEDBACK, team),
        ],
        "V": [
            (5, S.ACKNOWLEDGED, team),
            (20, S.ON_SITE, team),
            (30, S.EXTINGUISHED, team),
            (40, S.FEEDBACK, team),
            (60, S.REOPENED, supervisor),
            (65, S.ACKNOWLEDGED, team),
            (80, S.ON_SITE, team),
            (90, S.EXTINGUISHED, team),
            (100, S.FEEDBACK, team),
            (110, S.VERIFIED, supervisor),
            (120, S.CLOSED, supervisor),
        ],
    }
    places = {"R": (125.05, 44.05), "V": (125.03, 44.03)}
    ids: dict[str, int] = {}
    with frozen(clock):
        for offset, (name, steps) in enumerate(rounds.items()):
            notified = T0 + timedelta(hours=offset)
            clock.now = notified
            with transaction(factory) as session:
                incident = notified_fire(session, name, *places[name], at=notified)
                ids[name] = incident.id
                for after, state, actor in steps:
                    clock.now = notified + minutes(after)
                    reason = FalseAlarmReason.NOT_FOUND if state is S.FALSE_ALARM else None
                    extra = FEEDBACK if state is S.FEEDBACK else {}
                    incidents.transition(session, incident, state, actor, at=clock.now, reason=reason, **extra)

    with factory() as session:
        points = {p.id: p for p in load_fire_points(session, NOVEMBER)}
    deadline = DeadlinePolicy().default
    reopened_fire = response_of(points[ids["R"]], deadline, AS_OF)
    handled_twice = response_of(points[ids["V"]], deadline, AS_OF)
    assert reopened_fire is not None
    assert handled_twice is not None
    # Was on_site 149, extinguished 160 (from the first notification): times of the round after the reopening.
    assert reopened_fire.intervals == {Interval.ACKNOWLEDGE: minutes(10)}
    assert reopened_fire.on_site is Compliance.NOT_APPLICABLE  # first answered with a false alarm: no visit owed
    assert handled_twice.intervals == {
        Interval.ACKNOWLEDGE: minutes(5),
        Interval.ON_SITE: minutes(20),
        Interval.EXTINGUISHED: minutes(30),
        Interval.TRAVEL: minutes(15),
    }  # no closed: the close came in the second round
    assert (handled_twice.acknowledge, handled_twice.on_site) == (Compliance.MET, Compliance.MET)

    total = response_table(points.values(), GroupBy.TOWNSHIP, DeadlinePolicy(), AS_OF).total
    assert (total.notified, total.reopened) == (2, 2)  # the later rounds show as reopened
    on_site = total.intervals[Interval.ON_SITE]
    assert (on_site.n, on_site.p90, on_site.max) == (1, minutes(20), minutes(20))  # p90 and max were 149
    assert total.intervals[Interval.EXTINGUISHED].max == minutes(30)  # was 160
    assert total.intervals[Interval.CLOSED].n == 0
    # The distributions and the on-site compliance now count the same fires: V alone.
    assert (total.on_site.met, total.on_site.missed, total.on_site.pending) == (on_site.n, 0, 0)
