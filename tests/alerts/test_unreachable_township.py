"""A township whose new-fire alert fails for good is escalated to the county at once (SQLite and PostgreSQL).

北岗镇's webhook refuses every request for the whole retry horizon: the alert ends ``failed``, nobody in the township
knows of the fire, the incident stays ``suspected`` (no deadline runs for a township never told) and only the
system status showed it. The county now gets the escalation, and the record says the township could not be reached.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.channels import ChannelSender
from service.alerts.escalation import left_untold
from service.alerts.outbox import RETRY_HORIZON, _failed, deliver_due, enqueue
from service.alerts.service import create_recipient
from service.alerts.tables import Alert, AlertKind, Channel, Recipient
from service.auth.service import Principal
from service.db import transaction
from service.flows import transition_incident
from service.incidents.service import transition
from service.incidents.states import FalseAlarmReason, IncidentState, Role
from service.incidents.tables import Incident, IncidentEvent
from tests.alerts.conftest import alert_rows, refuse_the_township, worker_passes
from tests.alerts.test_outbox import PATROL, factory, setup  # noqa: F401  (the fixture, with the DEMO region loaded)
from tests.httpserver import http_receiver

PAST_HORIZON = RETRY_HORIZON + timedelta(minutes=1)
SUPERVISOR = Principal("s", Role.SUPERVISOR, "DEMO00")


def _deliveries(factory: sessionmaker[Session], *clock: datetime) -> None:  # noqa: F811
    """Delivery passes alone at these times: no deadline is applied, so the 24 h failure is what escalates (the
    worker's escalation pass does it at the acknowledge escalation deadline: tests/alerts/test_unreachable_early)."""
    for at in clock:
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda at=at: at)


def _statuses(factory: sessionmaker[Session]) -> dict[tuple[str, int], str]:  # noqa: F811
    return {(kind, recipient_id): status for kind, recipient_id, status in alert_rows(factory)}


def test_a_township_that_cannot_be_reached_is_escalated_to_the_county(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    with http_receiver() as receiver:
        refuse_the_township(receiver)
        [incident_id], t0 = setup(factory, receiver, 1)
        _deliveries(factory, t0, t0 + timedelta(hours=1))
        with factory() as session:
            assert session.get_one(Incident, incident_id).state == IncidentState.SUSPECTED.value
        failed_at = t0 + PAST_HORIZON
        _deliveries(factory, failed_at, failed_at + timedelta(seconds=5))
        received = [(r.path, r.json()["kind"], r.json()["incident_id"]) for r in receiver.received()]
    assert received == [("/county", "escalation", incident_id)]
    assert _statuses(factory) == {("new", 1): "failed", ("escalation", 2): "sent"}
    with factory() as session:
        incident = session.get_one(Incident, incident_id)
        assert (incident.state, incident.escalated_at) == (IncidentState.ESCALATED.value, failed_at)
        event = session.scalars(
            select(IncidentEvent).where(IncidentEvent.incident_id == incident_id, IncidentEvent.kind == "transition")
        ).one()
    assert (event.actor_role, event.from_state, event.to_state) == (Role.SYSTEM.value, "suspected", "escalated")
    assert event.note.startswith("the township could not be reached: the new-fire alert to DEMO01 failed on every")
    assert json.loads(event.data)["unreachable"] == {
        "unit": "DEMO01",
        "recipients": [1],
        "error": f"http://127.0.0.1:{receiver.url.rsplit(':', 1)[1]}/…: HTTP 500",
    }
    # The county has it now: later passes neither escalate it again nor alert anyone again.
    worker_passes(factory, failed_at + timedelta(hours=2))
    assert _statuses(factory) == {("new", 1): "failed", ("escalation", 2): "sent"}
    # The county phones the township, whose team takes it from there.
    with transaction(factory) as session:
        transition(session, session.get_one(Incident, incident_id), IncidentState.ACKNOWLEDGED, PATROL)


def test_a_township_another_of_its_channels_reached_is_not_escalated(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """北岗镇's group bot is down, its SMS gateway works: the township knows, the failure is for the system status."""
    with http_receiver() as receiver:
        refuse_the_township(receiver)
        with transaction(factory) as session:
            create_recipient(
                session,
                name="北岗镇短信",
                unit_code="DEMO01",
                channel=Channel.SMS,
                target=receiver.url + "/sms#13800000000",
            )
        [incident_id], t0 = setup(factory, receiver, 1)
        for at in (t0, t0 + PAST_HORIZON):  # delivery alone: the township's deadline is not what is tested here
            deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda at=at: at)
        paths = [r.path for r in receiver.received()]
    assert paths == ["/sms"]
    assert _statuses(factory) == {("new", 1): "sent", ("new", 2): "failed"}
    with factory() as session:
        assert session.get_one(Incident, incident_id).state == IncidentState.NOTIFIED.value


def test_failures_that_leave_no_one_unaware_are_not_escalated(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """A reminder that fails for good (the township was told of the fire once), and a new-fire alert that fails
    after the township's team picked the fire up on the map anyway: neither is the county's business."""
    with http_receiver() as receiver:
        [reminded, picked_up], t0 = setup(factory, receiver, 2)
        # 北岗镇's webhook takes the first fire's alert, then goes down for good.
        receiver.respond = lambda r: (500, {}, b"down") if r.json()["incident_id"] == picked_up else (200, {}, b"{}")
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        refuse_the_township(receiver)
        with transaction(factory) as session:
            enqueue(session, session.get_one(Incident, reminded), AlertKind.REMINDER, round_no=1, now=t0)
            transition(session, session.get_one(Incident, picked_up), IncidentState.ACKNOWLEDGED, PATROL)
        report = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + PAST_HORIZON)
    assert report.failed == 2
    with factory() as session:
        states = {i.id: i.state for i in session.scalars(select(Incident))}
        escalations = session.scalars(select(Alert).where(Alert.kind == AlertKind.ESCALATION.value)).all()
    assert states == {reminded: "notified", picked_up: "acknowledged"}
    assert escalations == []


def test_a_give_up_after_the_recipient_was_deactivated_is_recorded(factory: sessionmaker[Session]) -> None:  # noqa: F811
    """北岗镇's only group is deactivated while its new-fire alert is being retried: the alert no longer counts as
    telling the township (service.alerts.outbox.TELLING). The worker's next pass would withdraw it
    (tests/alerts/test_alertfix_recipients.py); a give-up after the deactivation (the request in flight when it
    happened, failing past the horizon) is recorded, and leaves the fire to the escalation pass (it looked the
    township's alerts up, found none and raised a KeyError: the failure was never recorded and the alert tried
    again at every pass); by then too old to catch up on, the fire is left untold."""
    with http_receiver() as receiver:
        refuse_the_township(receiver)
        [incident_id], t0 = setup(factory, receiver, 1)
        _deliveries(factory, t0)
        with transaction(factory) as session:
            session.get_one(Recipient, 1).active = False
        failed_at = t0 + PAST_HORIZON
        with factory() as session:
            alert_id = session.scalars(select(Alert.id)).one()
        assert _failed(factory, [alert_id], "HTTP 500", None, failed_at) == "failed"
        assert _statuses(factory) == {("new", 1): "failed"}
    with factory() as session:
        assert session.get_one(Incident, incident_id).state == IncidentState.SUSPECTED.value
        assert left_untold(session, failed_at) == [incident_id]


def test_a_reopening_that_cannot_reach_the_township_is_escalated(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """The first alert went out; the reopening's (a round of its own) fails for good: the township does not know
    the fire needs it again, whatever it was told the first time."""
    with http_receiver() as receiver:
        [incident_id], t0 = setup(factory, receiver, 1)
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        refuse_the_township(receiver)
        with transaction(factory) as session:
            incident = session.get_one(Incident, incident_id)
            transition(session, incident, IncidentState.FALSE_ALARM, SUPERVISOR, reason=FalseAlarmReason.NOT_FOUND)
            transition_incident(session, incident, IncidentState.REOPENED, SUPERVISOR, note="仍有烟")
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=1))
        failed_at = t0 + PAST_HORIZON
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: failed_at)
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: failed_at)
        received = [(r.path, r.json()["kind"]) for r in receiver.received()]
    assert received == [("/town", "new"), ("/county", "escalation")]
    with factory() as session:
        incident = session.get_one(Incident, incident_id)
        assert (incident.state, incident.escalated_at) == (IncidentState.ESCALATED.value, failed_at)
    assert alert_rows(factory) == [("new", 1, "sent"), ("new", 1, "failed"), ("escalation", 2, "sent")]
