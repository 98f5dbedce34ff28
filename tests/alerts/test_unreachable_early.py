"""A township whose new-fire alert keeps failing is escalated to the county on the acknowledge escalation deadline,
not 24 h later (SQLite and PostgreSQL), and the county's alert says why.

北岗镇's group bot answers HTTP 500 to every request. The incident stayed ``suspected`` (a township never told is not
notified, so no deadline ran) until the outbox gave the alert up after its 24 h retry horizon: a day in which only
the system status showed the fire. The escalation pass now sends it to the county once twice the acknowledge time
has passed since the alert was queued (as for an unacknowledged notified fire), the township's alert keeps being
retried, and the 24 h give-up does not escalate it a second time.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.channels import ChannelSender, Destination
from service.alerts.escalation import Deadlines, escalate_due
from service.alerts.messages import SMS_SEGMENT, UNREACHABLE
from service.alerts.outbox import RETRY_HORIZON, deliver_due
from service.alerts.service import create_recipient
from service.alerts.tables import AlertKind, Channel
from service.db import transaction
from service.flows import reassign_incident
from service.incidents.service import transition
from service.incidents.states import IncidentState, Role
from service.incidents.tables import Incident
from service.regions.types import RegionLevel
from tests.alerts.conftest import SETTINGS, alert_rows, escalation_events, refuse_the_township, worker_passes
from tests.alerts.test_closed_loop_recheck import message
from tests.alerts.test_deadlines_after_a_move import SUPERVISOR, _fire_notified_in_beigang, _moved, _pass
from tests.alerts.test_outbox import PATROL, factory, setup  # noqa: F401  (the fixture, with the DEMO region loaded)
from tests.httpserver import http_receiver

ESCALATES_AFTER = 2 * timedelta(minutes=SETTINGS.deadlines.acknowledge_min)


def test_an_unreached_township_goes_to_the_county_on_the_acknowledge_escalation_deadline(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    with http_receiver() as receiver:
        refuse_the_township(receiver)
        [incident_id], t0 = setup(factory, receiver, 1)
        error = f"http://127.0.0.1:{receiver.url.rsplit(':', 1)[1]}/…: HTTP 500"
        # Tried and failing; before the deadline nothing is escalated and no reminder is queued for a township
        # that was never told (it would fail the same way).
        assert worker_passes(factory, t0, t0 + timedelta(minutes=16), t0 + timedelta(minutes=29)) == [[], [], []]
        assert alert_rows(factory) == [("new", 1, "pending")]
        late = t0 + ESCALATES_AFTER + timedelta(minutes=1)
        assert worker_passes(factory, late) == [[incident_id]]
        county = [r.json() for r in receiver.received() if r.path == "/county"]
        # The township's alert keeps being retried, and the county's escalation went out in the same pass.
        assert alert_rows(factory) == [("new", 1, "pending"), ("escalation", 2, "sent")]
        with factory() as session:
            incident = session.get_one(Incident, incident_id)
            assert (incident.state, incident.escalated_at) == (IncidentState.ESCALATED.value, late)
        (event,) = escalation_events(factory, incident_id)
        assert (event.actor_role, event.from_state) == (Role.SYSTEM.value, "suspected")
        assert event.note.startswith("the township could not be reached: the new-fire alert to DEMO01 not delivered")
        assert json.loads(event.data)["unreachable"] == {"unit": "DEMO01", "recipients": [1], "error": error}
        # The county reads why: the township does not know of the fire.
        (escalation,) = county
        assert (escalation["kind"], escalation["escalation_reason"]) == ("escalation", UNREACHABLE)
        assert escalation["title"] == "火点预警升级（乡镇告警无法送达）"
        assert escalation["unit_level"] == "township"

        # The bot stays down until the retry horizon: the alert is given up, and the incident is not escalated
        # (nor the county alerted) a second time.
        given_up = t0 + RETRY_HORIZON + timedelta(minutes=1)
        assert worker_passes(factory, given_up, given_up + timedelta(hours=1)) == [[], []]
        assert len([r for r in receiver.received() if r.path == "/county"]) == 1
    assert alert_rows(factory) == [("new", 1, "failed"), ("escalation", 2, "sent")]
    assert len(escalation_events(factory, incident_id)) == 1


def test_a_township_reached_after_the_escalation_can_still_take_the_fire(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """The bot comes back an hour later: the retried alert reaches 北岗镇, whose team takes the escalated fire."""
    with http_receiver() as receiver:
        refuse_the_township(receiver)
        [incident_id], t0 = setup(factory, receiver, 1)
        assert worker_passes(factory, t0, t0 + ESCALATES_AFTER + timedelta(minutes=1)) == [[], [incident_id]]
        receiver.respond = lambda r: (200, {}, b"{}")
        worker_passes(factory, t0 + timedelta(hours=1))
        paths = [(r.path, r.json()["kind"]) for r in receiver.received()]
    assert paths == [("/county", "escalation"), ("/town", "new")]
    assert alert_rows(factory) == [("new", 1, "sent"), ("escalation", 2, "sent")]
    with transaction(factory) as session:
        incident = session.get_one(Incident, incident_id)
        assert incident.state == IncidentState.ESCALATED.value  # delivered: the county keeps it, the team acts
        transition(session, incident, IncidentState.ACKNOWLEDGED, PATROL)
    assert len(escalation_events(factory, incident_id)) == 1


def test_a_fire_whose_alert_was_never_tried_waits_for_the_first_try(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """The worker was down for an hour: its first pass does not call the township unreachable before it has tried
    (the escalation pass runs before delivery); a try that fails makes the next pass escalate it."""
    with http_receiver() as receiver:
        refuse_the_township(receiver)
        [incident_id], t0 = setup(factory, receiver, 1)
        back = t0 + timedelta(hours=1)
        assert worker_passes(factory, back, back + timedelta(seconds=5)) == [[], [incident_id]]
    with factory() as session:
        assert session.get_one(Incident, incident_id).state == IncidentState.ESCALATED.value


def test_a_township_reached_on_another_channel_is_not_escalated(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    """北岗镇's bot is down, its SMS gateway works: the township was told (notified), and what escalates it at the
    deadline is the unanswered alert, as before (the county's alert says the deadline passed)."""
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
        assert worker_passes(factory, t0, t0 + ESCALATES_AFTER + timedelta(minutes=1)) == [[], [incident_id]]
        county = [r.json() for r in receiver.received() if r.path == "/county"]
    (event,) = escalation_events(factory, incident_id)
    assert (event.from_state, event.note) == ("notified", "not acknowledged within 0:30:00")
    assert "unreachable" not in json.loads(event.data)
    assert [(c["escalation_reason"], c["title"]) for c in county] == [("overdue", "火点预警升级（超时未处置）")]


def test_a_fire_moved_to_a_township_whose_channel_is_down_is_escalated_as_unreachable(engine: Engine) -> None:
    """北岗镇 was told 28 minutes ago; a supervisor moves the fire to 东河乡, whose bot (a closed port) refuses every
    connection. 东河乡 gets its full time from the move, then the county hears that 东河乡 could not be reached."""
    factory, number = _fire_notified_in_beigang(engine, minutes_ago=28)  # noqa: F811
    with transaction(factory) as session:
        incident = session.get_one(Incident, number)
        reassign_incident(session, incident, SUPERVISOR, township_code="DEMO02", county_code=None, note="属东河乡")
    moved = _moved(factory, number)
    # 东河乡's alert is tried (and refused); 北岗镇's, of a unit the fire has left, is withdrawn.
    deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: moved + timedelta(seconds=1))
    # No reminder once the acknowledge deadline passes: 东河乡 was never told, and it would fail the same way.
    assert _pass(factory, moved + timedelta(minutes=25)) == (0, [])
    assert _pass(factory, moved + timedelta(minutes=31)) == (0, [number])
    assert alert_rows(factory) == [("new", 1, "withdrawn"), ("new", 2, "pending"), ("escalation", 3, "pending")]
    (event,) = escalation_events(factory, number)
    assert event.note.startswith(
        "the township could not be reached: the new-fire alert to DEMO02 not delivered within 0:30:00 of the move"
    )
    unreachable = json.loads(event.data)["unreachable"]
    assert (unreachable["unit"], unreachable["recipients"]) == ("DEMO02", [2])
    assert unreachable["error"].startswith("http://127.0.0.1:9/")


@pytest.mark.parametrize("unit", ["北岗镇", "奢岭街道", "双营子回族乡", "长春经济技术开发区"])
def test_the_countys_alert_says_the_township_could_not_be_reached_in_every_format(unit: str) -> None:
    """Title (e-mail subject, DingTalk title), text (WeCom text, e-mail, Feishu), markdown (WeCom, DingTalk), the
    webhook's JSON and the SMS, still one segment whatever the township's name."""
    escalation = dataclasses.replace(
        message(1234567), kind=AlertKind.ESCALATION, unit_name=unit, unit_level=RegionLevel.TOWNSHIP
    )
    unreachable = dataclasses.replace(escalation, escalation_reason=UNREACHABLE)
    assert unreachable.title == "火点预警升级（乡镇告警无法送达）"
    assert "乡镇告警无法送达" in unreachable.text()
    assert "乡镇告警无法送达" in unreachable.markdown()
    assert "请电话通知乡镇" in unreachable.text()
    assert unreachable.as_json()["escalation_reason"] == UNREACHABLE
    sms = unreachable.sms()
    assert len(sms) <= SMS_SEGMENT, sms
    assert "乡镇无法送达" in sms
    assert sms.endswith("编号1234567 请联系乡镇")
    # The overdue escalation reads as it did.
    assert escalation.title == "火点预警升级（超时未处置）"
    assert "无法送达" not in escalation.text() + escalation.sms()
    assert escalation.sms().endswith("请立即签收")


def test_the_countys_sms_through_the_gateway_says_why() -> None:
    """The SMS gateway (a real 127.0.0.1 server) receives the one-segment text."""
    unreachable = dataclasses.replace(
        message(42),
        kind=AlertKind.ESCALATION,
        unit_name="北岗镇",
        escalation_reason=UNREACHABLE,
        unit_level=RegionLevel.TOWNSHIP,
    )
    with http_receiver() as receiver:
        ChannelSender().send(Destination(Channel.SMS, receiver.url + "/sms#13800000000", None), [unreachable])
        (sent,) = receiver.received()
    assert sent.json() == {"phone": "13800000000", "text": unreachable.sms()}
    assert sent.json()["text"].startswith("【strawfire】乡镇无法送达：北岗镇 ")


def test_deadlines_of_a_county_apply(factory: sessionmaker[Session]) -> None:  # noqa: F811
    """A county with a 10-minute acknowledge deadline escalates an unreached township after 20 minutes."""
    with http_receiver() as receiver:
        refuse_the_township(receiver)
        [incident_id], t0 = setup(factory, receiver, 1)
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        with transaction(factory) as session:
            short = {"DEMO00": Deadlines(acknowledge=timedelta(minutes=10))}
            assert escalate_due(session, t0 + timedelta(minutes=19), per_county=short).escalated == []
            assert escalate_due(session, t0 + timedelta(minutes=21), per_county=short).escalated == [incident_id]
