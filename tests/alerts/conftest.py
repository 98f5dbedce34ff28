"""Helpers shared by the escalation tests: the worker's passes, the outbox's rows and the escalation record.

The DEMO-loaded ``factory`` fixture stays in ``tests/alerts/test_outbox.py``, from which these tests (and
``tests/status``) import it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.alerts.channels import ChannelSender
from service.alerts.messages import AlertMessage
from service.alerts.tables import Alert, AlertKind
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


def alert_message(
    incident_id: int = 7,
    *,
    kind: AlertKind = AlertKind.NEW,
    unit_name: str = "北岗镇",
    county_name: str | None = "演示县",
    reason: str | None = None,
) -> AlertMessage:
    """An alert about a fire in 北岗镇, 演示县, seen by satellite at 10:45 Beijing time on 23 April 2025."""
    return AlertMessage.build(
        incident_id=incident_id,
        kind=kind,
        unit_name=unit_name,
        county_name=county_name,
        latitude=44.30,
        longitude=125.55,
        observed_at=datetime(2025, 4, 23, 2, 45, tzinfo=UTC),
        sources=("satellite",),
        confidence=0.87,
        state="suspected",
        base_url="http://dash.local/",
        idempotency_key=f"{incident_id}:1:{kind.value}",
        escalation_reason=reason,
    )
