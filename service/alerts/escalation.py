"""Deadlines: re-send unacknowledged alerts, then escalate to the county supervisor.

Defaults follow the published county rules (township team on site within 15–30 min): acknowledge (签收) within
15 min of the alert, be on site within 30 min of acknowledging. Counties can set their own. A notified incident
gets one reminder when the acknowledge deadline passes and is escalated when twice that time has passed; an
acknowledged incident whose team is not on site by its deadline is escalated. Escalating moves the incident to
``escalated`` (an audited event by the system) and alerts the county's supervisors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.alerts.outbox import alert_round, enqueue
from service.alerts.tables import AlertKind, RecipientRole
from service.auth.service import SYSTEM
from service.incidents.service import transition
from service.incidents.states import IncidentState
from service.incidents.tables import Incident

S = IncidentState


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long a township has for each step."""

    acknowledge: timedelta = timedelta(minutes=15)
    on_site: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class EscalationReport:
    """What one pass did."""

    reminders: int
    escalated: list[int]


def escalate_due(
    session: Session,
    now: datetime,
    *,
    default: Deadlines = Deadlines(),
    per_county: dict[str, Deadlines] | None = None,
) -> EscalationReport:
    """One pass over open incidents (inside the caller's transaction)."""
    per_county = per_county or {}
    reminders = 0
    escalated: list[int] = []
    waiting = session.scalars(
        select(Incident)
        .where(Incident.state.in_([S.NOTIFIED.value, S.REOPENED.value, S.ACKNOWLEDGED.value, S.EN_ROUTE.value]))
        .order_by(Incident.id)
    ).all()
    for incident in waiting:
        deadlines = per_county.get(incident.county_code or "", default)
        state = IncidentState(incident.state)
        if state in (S.NOTIFIED, S.REOPENED):
            since = incident.reopened_at if state is S.REOPENED else incident.notified_at
            if since is None:
                continue
            late = now - since
            if _already_escalated(incident, since):
                continue
            if late > 2 * deadlines.acknowledge:
                _escalate(session, incident, now, since, f"not acknowledged within {2 * deadlines.acknowledge}")
                escalated.append(incident.id)
            elif late > deadlines.acknowledge:
                reminders += len(enqueue(session, incident, AlertKind.REMINDER, round_no=alert_round(since), now=now))
        elif (
            incident.acknowledged_at is not None
            and now - incident.acknowledged_at > deadlines.on_site
            and not _already_escalated(incident, incident.acknowledged_at)
        ):
            why = f"not on site within {deadlines.on_site} of acknowledging"
            _escalate(session, incident, now, incident.acknowledged_at, why)
            escalated.append(incident.id)
    session.flush()
    return EscalationReport(reminders, escalated)


def _already_escalated(incident: Incident, since: datetime) -> bool:
    # Escalate once per missed deadline: a team that resumes after escalation is not escalated again for it.
    return incident.escalated_at is not None and incident.escalated_at >= since


def _escalate(session: Session, incident: Incident, now: datetime, since: datetime, why: str) -> None:
    transition(session, incident, S.ESCALATED, SYSTEM, note=why, at=now)
    enqueue(session, incident, AlertKind.ESCALATION, role=RecipientRole.COUNTY, round_no=alert_round(since), now=now)
