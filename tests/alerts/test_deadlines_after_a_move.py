"""A fire moved to another unit before anyone acknowledged it: the new unit's deadlines count from the move
(SQLite and PostgreSQL).

北岗镇 (DEMO01) was alerted 28 minutes ago and never answered; the fire is then moved to 东河乡 (DEMO02) — by a drone
fix across the border, or by a supervisor. The escalation pass counted 东河乡's acknowledge deadline from 北岗镇's
alert and escalated 东河乡 to the county a minute or two after it first heard of the fire.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.escalation import Deadlines, escalate_due, moved_at
from service.alerts.service import create_recipient
from service.alerts.tables import AlertKind, Channel, RecipientRole
from service.auth.service import SYSTEM, Principal
from service.config import Settings
from service.db import transaction, utcnow
from service.flows import ingest_observations, reassign_incident
from service.incidents.service import transition
from service.incidents.states import IncidentState, Role
from service.incidents.tables import Incident, IncidentEvent
from service.regions.service import RegionIndexCache
from tests.alerts.conftest import alert_rows, escalation_events
from tests.incidents.test_closed_loop_recheck import _drone_in_donghe, _factory, _pixel_on_the_border

DEADLINES = Deadlines(acknowledge=timedelta(minutes=15), on_site=timedelta(minutes=30))
SUPERVISOR = Principal("s", Role.SUPERVISOR, "DEMO00")
BEIGANG_PATROL = Principal("p", Role.PATROL, "DEMO01")
# Recipients of _factory: 1 = 北岗镇 (DEMO01), 2 = 东河乡 (DEMO02); 3 = the county, added here.
DONGHE, COUNTY = 2, 3


def _fire_notified_in_beigang(engine: Engine, minutes_ago: int) -> tuple[sessionmaker[Session], int]:
    """A fire in 北岗镇 whose alert reached it ``minutes_ago`` minutes ago, unanswered since."""
    factory = _factory(engine)
    with transaction(factory) as session:
        create_recipient(
            session,
            name="县督导",
            unit_code="DEMO00",
            channel=Channel.WEBHOOK,
            target="http://127.0.0.1:9/county",
            role=RecipientRole.COUNTY,
        )
        (number,) = ingest_observations(
            session, [_pixel_on_the_border()], indexes=RegionIndexCache(500), settings=Settings(), actor=SYSTEM
        ).new_incidents
        incident = session.get_one(Incident, number)
        transition(session, incident, IncidentState.NOTIFIED, SYSTEM, at=utcnow() - timedelta(minutes=minutes_ago))
    return factory, number


def _moved(factory: sessionmaker[Session], number: int) -> datetime:
    """When the incident moved (its latest ``reassigned`` event)."""
    with factory() as session:
        return moved_at(session, [number])[number]


def _pass(factory: sessionmaker[Session], at: datetime) -> tuple[int, list[int]]:
    with transaction(factory) as session:
        report = escalate_due(session, at, default=DEADLINES)
    return report.reminders, report.escalated


def _alerts(factory: sessionmaker[Session], number: int) -> list[tuple[str, int]]:
    return [(kind, recipient_id) for kind, recipient_id, _ in alert_rows(factory, number)]


def _escalation_note(factory: sessionmaker[Session], number: int) -> str:
    (event,) = escalation_events(factory, number)
    return event.note


def _assert_the_ladder_runs_from_the_move(factory: sessionmaker[Session], number: int, moved: datetime) -> None:
    assert _pass(factory, moved + timedelta(minutes=5)) == (0, [])  # 33 min after 北岗镇's alert: not escalated
    assert _pass(factory, moved + timedelta(minutes=16)) == (1, [])  # 东河乡's own reminder
    assert _pass(factory, moved + timedelta(minutes=31)) == (0, [number])
    assert _alerts(factory, number)[-2:] == [(AlertKind.REMINDER.value, DONGHE), (AlertKind.ESCALATION.value, COUNTY)]
    assert _escalation_note(factory, number) == "not acknowledged within 0:30:00 of the move to this unit"


def test_a_drone_fix_that_moves_an_unanswered_fire_restarts_the_new_townships_deadlines(engine: Engine) -> None:
    factory, number = _fire_notified_in_beigang(engine, minutes_ago=28)
    with transaction(factory) as session:
        summary = ingest_observations(
            session, [_drone_in_donghe()], indexes=RegionIndexCache(500), settings=Settings(), actor=SYSTEM
        )
        assert summary.reassigned_incidents == [number]
    with factory() as session:
        event = session.scalars(select(IncidentEvent).where(IncidentEvent.kind == "reassigned")).one()
        assert json.loads(event.data)["automatic"] is True
    moved = _moved(factory, number)
    assert moved == event.at
    _assert_the_ladder_runs_from_the_move(factory, number, moved)


def test_a_supervisors_move_of_an_unanswered_fire_restarts_the_new_townships_deadlines(engine: Engine) -> None:
    factory, number = _fire_notified_in_beigang(engine, minutes_ago=28)
    with transaction(factory) as session:
        incident = session.get_one(Incident, number)
        reassign_incident(session, incident, SUPERVISOR, township_code="DEMO02", county_code=None, note="地块属东河乡")
    assert _alerts(factory, number) == [(AlertKind.NEW.value, 1), (AlertKind.NEW.value, DONGHE)]
    _assert_the_ladder_runs_from_the_move(factory, number, _moved(factory, number))


def test_a_supervisor_confirming_the_same_township_does_not_restart_its_clock(engine: Engine) -> None:
    """A reassignment to the unit the fire is already in is no move: 北岗镇 keeps the clock of its own alert."""
    factory, number = _fire_notified_in_beigang(engine, minutes_ago=28)
    with transaction(factory) as session:
        incident = session.get_one(Incident, number)
        reassign_incident(session, incident, SUPERVISOR, township_code="DEMO01", county_code=None, note="核实属北岗镇")
    with factory() as session:
        assert moved_at(session, [number]) == {}
    assert _pass(factory, utcnow() + timedelta(minutes=3)) == (0, [number])  # 31 min after its alert


def test_an_acknowledged_fire_a_supervisor_moves_gets_the_on_site_time_from_the_move(engine: Engine) -> None:
    """北岗镇 acknowledged 25 minutes ago, then said the field is 东河乡's; 东河乡 must get there in 30 minutes from
    the move, not in the 5 minutes left of 北岗镇's on-site deadline."""
    factory, number = _fire_notified_in_beigang(engine, minutes_ago=28)
    with transaction(factory) as session:
        incident = session.get_one(Incident, number)
        transition(
            session,
            incident,
            IncidentState.ACKNOWLEDGED,
            BEIGANG_PATROL,
            at=utcnow() - timedelta(minutes=25),
        )
        reassign_incident(session, incident, SUPERVISOR, township_code="DEMO02", county_code=None, note="属东河乡")
    moved = _moved(factory, number)
    assert _pass(factory, moved + timedelta(minutes=10)) == (0, [])  # 35 min after 北岗镇 acknowledged
    assert _pass(factory, moved + timedelta(minutes=31)) == (0, [number])
    assert _escalation_note(factory, number) == "not on site within 0:30:00 of the move to this unit"
    assert _alerts(factory, number)[-1] == (AlertKind.ESCALATION.value, COUNTY)
