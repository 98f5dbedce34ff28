"""Alerts that lapsed while they waited in the outbox are withdrawn, not sent (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.channels import ChannelSender
from service.alerts.outbox import deliver_due, enqueue, lapsed_reason
from service.alerts.tables import Alert, AlertKind, AlertStatus, RecipientRole
from service.auth.service import Principal
from service.db import transaction
from service.incidents.service import transition
from service.incidents.states import FalseAlarmReason, IncidentState, Role
from service.incidents.tables import Incident, IncidentEvent
from tests.alerts.test_outbox import factory, setup  # noqa: F401  (the fixture, with the DEMO region loaded)
from tests.httpserver import http_receiver

PATROL = Principal("p", Role.PATROL, "DEMO01")
SUPERVISOR = Principal("s", Role.SUPERVISOR, "DEMO00")


def test_lapsed_reasons() -> None:
    units = ("DEMO01", "DEMO00")
    assert lapsed_reason(AlertKind.REMINDER, "notified", "DEMO01", units) is None
    assert lapsed_reason(AlertKind.REMINDER, "reopened", "DEMO01", units) is None  # not acknowledged again yet
    assert lapsed_reason(AlertKind.REMINDER, "acknowledged", "DEMO01", units) == (
        "the incident was acknowledged before the reminder went out"
    )
    assert lapsed_reason(AlertKind.NEW, "acknowledged", "DEMO01", units) is None  # still their fire
    assert lapsed_reason(AlertKind.NEW, "false_alarm", "DEMO01", units) == (
        "the incident was declared a false alarm before the alert went out"
    )
    assert lapsed_reason(AlertKind.NEW, "notified", "DEMO02", units) == (
        "the incident moved to another unit before the alert went out"
    )
    assert lapsed_reason(AlertKind.ESCALATION, "closed", "DEMO07", units) is None  # a missed deadline stays missed


def test_a_reminder_the_team_made_moot_while_the_channel_was_down_is_withdrawn(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """The webhook is down; the reminder "未签收，再次提醒" waits; the team acknowledges from the map; when the
    webhook is back the reminder is withdrawn (with an event on the record), the escalation still goes out."""
    with http_receiver() as receiver:
        receiver.respond = lambda r: (500, {}, b"down")
        [incident_id], t0 = setup(factory, receiver, 1)
        with transaction(factory) as session:
            incident = session.get_one(Incident, incident_id)
            enqueue(session, incident, AlertKind.REMINDER, round_no=1, now=t0)
            enqueue(session, incident, AlertKind.ESCALATION, role=RecipientRole.COUNTY, round_no=1, now=t0)
        down = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        assert (down.sent, down.retried, down.withdrawn) == (0, 3, 0)
        with transaction(factory) as session:
            incident = session.get_one(Incident, incident_id)
            transition(session, incident, IncidentState.ACKNOWLEDGED, PATROL)
        receiver.respond = lambda r: (200, {}, b"{}")
        back = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=5))
        paths = sorted(r.path for r in receiver.received())
    assert (back.sent, back.withdrawn) == (2, 1)
    assert paths == ["/county", "/town"]  # the escalation and the first alert; not the reminder
    with factory() as session:
        statuses = {a.kind: (a.status, a.last_error) for a in session.scalars(select(Alert))}
        events = [e.note for e in session.scalars(select(IncidentEvent).where(IncidentEvent.kind == "alert_withdrawn"))]
    assert statuses["reminder"] == ("withdrawn", "the incident was acknowledged before the reminder went out")
    assert statuses["new"][0] == statuses["escalation"][0] == "sent"
    assert events == [
        "reminder alert to recipient 1 not sent: the incident was acknowledged before the reminder went out"
    ]


def test_a_new_fire_alert_for_an_incident_declared_a_false_alarm_or_moved_away_is_withdrawn(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    with http_receiver() as receiver:
        receiver.respond = lambda r: (500, {}, b"down")
        (dismissed, moved, *_), t0 = setup(factory, receiver, 3)
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        with transaction(factory) as session:
            transition(
                session,
                session.get_one(Incident, dismissed),
                IncidentState.FALSE_ALARM,
                SUPERVISOR,
                reason=FalseAlarmReason.DUPLICATE,
            )
            session.get_one(Incident, moved).township_code = "DEMO02"  # as a reassignment leaves it
        receiver.respond = lambda r: (200, {}, b"{}")
        report = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=5))
    assert (report.sent, report.withdrawn) == (1, 2)
    with factory() as session:
        by_incident = {a.incident_id: a.status for a in session.scalars(select(Alert))}
    assert by_incident[dismissed] == by_incident[moved] == AlertStatus.WITHDRAWN.value


def test_the_database_still_refuses_an_unknown_alert_status(factory: sessionmaker[Session]) -> None:  # noqa: F811
    with http_receiver() as receiver:
        setup(factory, receiver, 1)
    with pytest.raises(IntegrityError), transaction(factory) as session:
        session.execute(text("UPDATE alerts SET status = 'bogus'"))
    with transaction(factory) as session:
        session.execute(text("UPDATE alerts SET status = 'withdrawn'"))
