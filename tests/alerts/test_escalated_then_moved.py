"""A fire already escalated to the county that a supervisor then moves to another township (SQLite and PostgreSQL).

The new township's team is told of the fire by a new-fire alert (through a real 127.0.0.1 webhook) and can take it
from ``escalated``; no deadline runs for it after that (the county already has the fire: no reminder and no second
escalation), as ``service.alerts.escalation`` says of escalated incidents.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from service.alerts.channels import ChannelSender
from service.alerts.escalation import escalate_due
from service.alerts.outbox import deliver_due
from service.alerts.service import create_recipient
from service.alerts.tables import Channel
from service.auth.service import Principal
from service.db import transaction
from service.flows import reassign_incident
from service.incidents.service import transition
from service.incidents.states import IncidentState, Role
from service.incidents.tables import Incident
from tests.alerts.test_deadlines_after_a_move import SUPERVISOR
from tests.alerts.test_outbox import factory, setup  # noqa: F401  (the fixture, with the DEMO region loaded)
from tests.httpserver import http_receiver

DONGHE_PATROL = Principal("d", Role.PATROL, "DEMO02")


def test_the_township_an_escalated_fire_is_moved_to_gets_a_new_fire_alert(
    factory: sessionmaker[Session],  # noqa: F811
) -> None:
    with http_receiver() as receiver:
        [incident_id], t0 = setup(factory, receiver, 1)
        with transaction(factory) as session:
            create_recipient(
                session, name="东河乡群", unit_code="DEMO02", channel=Channel.WEBHOOK, target=receiver.url + "/donghe"
            )

        def deliver(minutes: float) -> None:
            deliver_due(factory, ChannelSender(), base_url="http://x", now=lambda: t0 + timedelta(minutes=minutes))

        def escalate(minutes: float) -> list[int]:
            with transaction(factory) as session:
                return escalate_due(session, t0 + timedelta(minutes=minutes)).escalated

        deliver(0)  # 北岗镇 is told
        assert escalate(31) == [incident_id]  # and never answers
        deliver(31)
        with transaction(factory) as session:
            incident = session.get_one(Incident, incident_id)
            reassign_incident(session, incident, SUPERVISOR, township_code="DEMO02", county_code=None, note="属东河乡")
        deliver(40)
        assert escalate(120) == []  # the county has it: no reminder, no second escalation
        deliver(121)
        received = [(r.path, r.json()["kind"], r.json()["unit_name"]) for r in receiver.received()]
    assert received == [
        ("/town", "new", "北岗镇 (DEMO)"),
        ("/county", "escalation", "北岗镇 (DEMO)"),
        ("/donghe", "new", "东河乡 (DEMO)"),
    ]
    with transaction(factory) as session:
        incident = session.get_one(Incident, incident_id)
        assert incident.state == IncidentState.ESCALATED.value
        transition(session, incident, IncidentState.ACKNOWLEDGED, DONGHE_PATROL)  # 东河乡's team takes it
