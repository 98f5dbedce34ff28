"""Acceptance re-check of issue #6, alerts side: a phone acting while the worker writes, and the e-mail's headers.

The races are made deterministic by letting the phone's move commit from inside the worker's own step (the
moment between the worker reading the incident and writing it back).
"""

from __future__ import annotations

import dataclasses
import email
import email.utils
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.alerts import outbox
from service.alerts.channels import ChannelSender, Destination, SmtpSettings
from service.alerts.outbox import deliver_due
from service.alerts.tables import Alert, AlertKind, AlertStatus, Channel
from service.alerts.worker import run_once
from service.config import AlertSettings
from service.db import transaction
from service.incidents import service as incidents
from service.incidents.states import IncidentState
from service.incidents.tables import Incident, IncidentEvent
from tests.alerts.test_channels import NOW, _Inbox, message, sender, smtp_server  # noqa: F401  (fixture)
from tests.alerts.test_outbox import PATROL, factory, setup  # noqa: F401  (fixture)
from tests.httpserver import http_receiver


def _phone_acknowledges_first(
    sessions: sessionmaker[Session], real: Callable[..., Incident], times: list[int], at: datetime | None = None
) -> Callable[..., Incident]:
    """A stand-in for ``transition`` in the worker: the township's phone acknowledges the incident (and commits)
    just before the worker writes its own move, once (at ``at``, default now)."""

    def racing(session: Session, incident: Incident, target: IncidentState, actor: Any, **kw: Any) -> Incident:
        if not times:
            times.append(incident.id)
            with transaction(sessions) as phone:
                incidents.transition(
                    phone, phone.get_one(Incident, incident.id), IncidentState.ACKNOWLEDGED, PATROL, at=at
                )
        return real(session, incident, target, actor, **kw)

    return racing


# PostgreSQL only: there the worker reads the incident without holding a lock, so a phone can commit between its
# read and its write. SQLite's worker already holds the database's write lock at that moment (the alert rows are
# written first), so a phone waits for it there and the race cannot happen.
@pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_phone_acknowledging_while_the_delivery_is_recorded_costs_no_second_alert(
    engine: Engine,
    factory: sessionmaker[Session],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The township acknowledges (from the map) at the moment the worker records that the alert went out and
    moves the incident to ``notified``. The recording used to fail as stale and roll back: the alert stayed
    pending, went out a second time when its lease ran out, and the pass itself failed."""
    raced: list[int] = []
    monkeypatch.setattr(outbox, "transition", _phone_acknowledges_first(factory, outbox.transition, raced))
    with http_receiver() as receiver:
        (incident_id,), t0 = setup(factory, receiver, 1)
        report = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)
        later = deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=5))
        received = receiver.received()
    assert raced == [incident_id]
    assert (report.sent, later.claimed, len(received)) == (1, 0, 1)
    with factory() as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert (alert.status, alert.attempts) == (AlertStatus.SENT.value, 1)
        incident = session.get_one(Incident, incident_id)
        assert incident.state == IncidentState.ACKNOWLEDGED.value  # the team's move stands
        kinds = [e.kind for e in session.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == incident_id))]
    assert kinds.count("alert") == 1


def test_a_phone_acknowledging_during_an_escalation_pass_does_not_cost_the_others_their_escalation(
    engine: Engine,
    factory: sessionmaker[Session],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two incidents 31 min past their alert; the team of the first acknowledges while the pass escalates it.
    The whole pass used to fail as stale: the second incident was not escalated either (until a later pass) and
    the worker recorded a failure. Now the pass is judged again from the fresh state: the first stays
    acknowledged, the second is escalated."""
    settings = AlertSettings()
    with http_receiver() as receiver:
        ids, t0 = setup(factory, receiver, 2)
        deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0)  # both notified at t0
        raced: list[int] = []
        at = t0 + timedelta(minutes=31)
        # The pass's escalation moves the incident through outbox.escalate (the first transition of the pass).
        racing = _phone_acknowledges_first(factory, outbox.transition, raced, at=at)
        monkeypatch.setattr(outbox, "transition", racing)
        report, _ = run_once(factory, ChannelSender(), settings, now=at)
    assert len(raced) == 1
    other = next(i for i in ids if i not in raced)
    assert report.escalated == [other]
    with factory() as session:
        states = {i.id: i.state for i in session.scalars(select(Incident))}
    assert states == {raced[0]: IncidentState.ACKNOWLEDGED.value, other: IncidentState.ESCALATED.value}


def test_an_alert_e_mail_carries_the_date_header_rfc_5322_requires(smtp_server: tuple[_Inbox, int]) -> None:  # noqa: F811
    """RFC 5322 § 3.6: Date and From are the only required header fields. The alert mail had no Date (smtplib
    does not add one); mail servers and spam filters mark or refuse such mail."""
    inbox, port = smtp_server
    ChannelSender(smtp=SmtpSettings("127.0.0.1", port, "strawfire@county.gov"), clock=lambda: NOW).send(
        Destination(Channel.EMAIL, "patrol@town.gov", None), [message()]
    )
    (raw,) = inbox.messages
    mail = email.message_from_bytes(raw)
    assert mail["Date"] is not None
    assert email.utils.parsedate_to_datetime(mail["Date"]).timestamp() == NOW  # the sender's clock, with its zone


@pytest.mark.parametrize("kind", list(AlertKind))
@pytest.mark.parametrize("unit", ["北岗镇", "奢岭街道", "双营子回族乡", "长春经济技术开发区"])
def test_an_alert_sms_fits_one_segment_whatever_the_townships_name(kind: AlertKind, unit: str) -> None:
    """One SMS segment is 70 characters (UCS-2, as any Chinese text is sent); a longer text is billed as 67-character
    parts that some phones show apart. The README promises one segment, but a reminder for 双营子回族乡 was 72
    characters, one for 长春经济技术开发区 75. The township's name gives way (cut, marked …), never the incident
    number, the coordinates or the time."""
    sms = dataclasses.replace(message(1234567), kind=kind, unit_name=unit).sms()
    assert len(sms) <= 70, sms
    assert "编号1234567" in sms
    assert unit[:2] in sms
    full = dataclasses.replace(message(1234567), kind=kind).sms()
    assert re.search(r"坐标\d+\.\d{4},\d+\.\d{4}", sms)
    assert sms.split("坐标")[1] == full.split("坐标")[1]  # coordinates, number and the call to act unchanged
