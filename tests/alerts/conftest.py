"""Helpers shared by the escalation tests: the worker's passes, the outbox's rows and the escalation record.

The DEMO-loaded ``factory`` fixture stays in ``tests/alerts/test_outbox.py``, from which these tests (and
``tests/status``) import it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.channels import ChannelSender
from service.alerts.tables import Alert
from service.alerts.worker import run_once
from service.config import AlertSettings
from service.incidents.states import IncidentState
from service.incidents.tables import IncidentEvent
from tests.httpserver import Receiver

SETTINGS = AlertSettings(public_base_url="http://x")  # the default deadlines: acknowledge 15 min, escalate at 30


def refuse_the_township(receiver: Receiver) -> None:
    """北岗镇's group bot (``setup``'s ``/town`` recipient) answers HTTP 500; everyone else's takes the alert."""
    receiver.respond = lambda r: (500, {}, b"down") if r.path.startswith("/town") else (200, {}, b"{}")


def worker_passes(factory: sessionmaker[Session], *clock: datetime) -> list[list[int]]:
    """The worker's passes (deadlines, then delivery) at these times; the incidents each escalated."""
    return [run_once(factory, ChannelSender(), SETTINGS, now=at)[0].escalated for at in clock]


def alert_rows(factory: sessionmaker[Session], incident_id: int | None = None) -> list[tuple[str, int, str]]:
    """(kind, recipient id, status) of the outbox's alerts in the order queued: an incident's, or every one."""
    query = select(Alert).order_by(Alert.id)
    if incident_id is not None:
        query = query.where(Alert.incident_id == incident_id)
    with factory() as session:
        return [(a.kind, a.recipient_id, a.status) for a in session.scalars(query)]


def escalation_events(factory: sessionmaker[Session], incident_id: int) -> list[IncidentEvent]:
    """The incident's moves to ``escalated``, in the order recorded."""
    with factory() as session:
        return list(
            session.scalars(
                select(IncidentEvent)
                .where(
                    IncidentEvent.incident_id == incident_id,
                    IncidentEvent.to_state == IncidentState.ESCALATED.value,
                )
                .order_by(IncidentEvent.id)
            )
        )
