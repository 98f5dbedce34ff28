"""Alerts that lapsed while they waited in the outbox are withdrawn, not sent (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.channels import ChannelSender
from service.alerts.escalation import escalate_due
from service.alerts.outbox import acknowledged_since_notified, deliver_due, enqueue, lapsed_reason
from service.alerts.service import create_recipient
from service.alerts.tables import Alert, AlertKind, AlertStatus, Channel, RecipientRole
from service.auth.service import Principal
from service.db import transaction
from service.flows import reassign_incident
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


def test_a_reminder_still_goes_out_when_the_incident_was_escalated_unacknowledged(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """Escalation from notified moves the incident to ``escalated`` without anyone acknowledging it: the reminder
    that waited while the webhook was down is still true (未签收) and goes out. It was withdrawn as "acknowledged
    before the reminder went out", a false line on the record, and the township that never answered lost it."""
    with http_receiver() as receiver:
        [incident_id], t0 = setup(factory, receiver, 1)
        first = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        assert first.sent == 1  # the new-fire alert: notified at t0
        receiver.respond = lambda r: (500, {}, b"down")
        with transaction(factory) as session:
            assert escalate_due(session, t0 + timedelta(minutes=16)).reminders == 1
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=16))
        with transaction(factory) as session:
            assert escalate_due(session, t0 + timedelta(minutes=31)).escalated == [incident_id]
        receiver.respond = lambda r: (200, {}, b"{}")
        back = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=40))
    assert back.withdrawn == 0
    with factory() as session:
        statuses = {a.kind: a.status for a in session.scalars(select(Alert))}
        assert session.get_one(Incident, incident_id).state == IncidentState.ESCALATED.value
    assert statuses == {"new": "sent", "reminder": "sent", "escalation": "sent"}


def test_a_reminder_is_withdrawn_when_the_team_acknowledged_before_being_escalated(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """Escalated for not being on site (after acknowledging): the reminder to acknowledge is moot."""
    with http_receiver() as receiver:
        [incident_id], t0 = setup(factory, receiver, 1)
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        receiver.respond = lambda r: (500, {}, b"down")
        with transaction(factory) as session:
            escalate_due(session, t0 + timedelta(minutes=16))
            incident = session.get_one(Incident, incident_id)
            transition(session, incident, IncidentState.ACKNOWLEDGED, PATROL, at=t0 + timedelta(minutes=17))
        with transaction(factory) as session:
            assert escalate_due(session, t0 + timedelta(minutes=48)).escalated == [incident_id]
        receiver.respond = lambda r: (200, {}, b"{}")
        back = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=50))
    assert back.withdrawn == 1
    with factory() as session:
        statuses = {a.kind: (a.status, a.last_error) for a in session.scalars(select(Alert))}
    assert statuses["reminder"] == ("withdrawn", "the incident was acknowledged before the reminder went out")


def test_a_reminder_after_a_reopening_is_not_taken_as_acknowledged_by_the_earlier_round() -> None:
    t = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    units = ("DEMO01", "DEMO00")
    # Acknowledged in the first round, reopened later, escalated unacknowledged in the second: the reminder stands.
    assert (
        lapsed_reason(
            AlertKind.REMINDER,
            "escalated",
            "DEMO01",
            units,
            acknowledged=acknowledged_since_notified(
                acknowledged_at=t, notified_at=t - timedelta(minutes=5), reopened_at=t + timedelta(hours=3)
            ),
        )
        is None
    )
    assert acknowledged_since_notified(acknowledged_at=None, notified_at=t, reopened_at=None) is False
    assert acknowledged_since_notified(acknowledged_at=t, notified_at=t - timedelta(minutes=5), reopened_at=None)


def test_an_alert_withdrawn_when_the_fire_moved_away_is_queued_again_when_it_moves_back(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """北岗镇's webhook is down when the fire is moved to 东河乡 (a supervisor, or a fix across the border): its
    pending new-fire alert is withdrawn. When the fire is moved back, the new-fire alert to 北岗镇 was "queued" by
    its idempotency key, which the withdrawn alert held: nothing went out, and 北岗镇 was never told of a fire in
    its township (no alert delivered: the incident stayed suspected, so no deadline ever escalated it)."""
    with http_receiver() as receiver:
        receiver.respond = lambda r: (500, {}, b"down") if r.path == "/town" else (200, {}, b"{}")
        [incident_id], t0 = setup(factory, receiver, 1)

        def move_to(township_code: str, note: str) -> None:  # as a supervisor reassigns it
            with transaction(factory) as session:
                incident = session.get_one(Incident, incident_id)
                reassign_incident(
                    session, incident, SUPERVISOR, township_code=township_code, county_code=None, note=note
                )

        with transaction(factory) as session:
            create_recipient(
                session, name="东河乡群", unit_code="DEMO02", channel=Channel.WEBHOOK, target=receiver.url + "/east"
            )
        assert deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0).retried == 1
        move_to("DEMO02", "东河乡的地块")
        moved = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=1))
        assert (moved.sent, moved.withdrawn) == (1, 1)
        receiver.respond = lambda r: (200, {}, b"{}")
        move_to("DEMO01", "核实后仍属北岗镇")
        back = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=2))
        paths = [r.path for r in receiver.received()]
    assert back.sent == 1
    assert (paths.count("/town"), paths.count("/east")) == (1, 1)  # delivered: each township once
    with factory() as session:
        town = session.scalars(select(Alert).where(Alert.recipient_id == 1)).one()
        assert (town.status, town.kind) == (AlertStatus.SENT.value, "new")
