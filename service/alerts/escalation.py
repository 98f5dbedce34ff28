"""Deadlines: re-send unacknowledged alerts, then escalate to the county supervisor.

Defaults follow the published county rules (township team on site within 15–30 min): acknowledge (签收) within
15 min of the alert, be on site within 30 min of acknowledging. Counties can set their own. A notified incident
gets one reminder when the acknowledge deadline passes and is escalated when twice that time has passed; an
acknowledged incident whose team is not on site by its deadline is escalated. Escalating moves the incident to
``escalated`` (an audited event by the system) and alerts the county's supervisors.

A fire moved to another unit (a ``reassigned`` event that changed its unit: a more precise fix across the border,
or a supervisor's reassignment) restarts the clocks: every deadline counts from the later of its own start
(notified, reopened, acknowledged) and the latest move, so the new unit's team gets the full time to acknowledge,
its reminder and then the escalation on that clock, and is never escalated at once for the time lost at the unit
the fire was wrongly placed in (:func:`moved_at`). An acknowledged fire a supervisor moves gets the on-site time
from the move: the new team has to get there all the same.

A township its new-fire alert never reached (failed on every channel) is escalated by the outbox the moment the
alert is given up (``service.alerts.outbox.escalate_unreachable``): no deadline of this pass runs for it, since a
township never told is not ``notified``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.alerts.outbox import alert_round, enqueue
from service.alerts.tables import AlertKind, RecipientRole
from service.auth.service import SYSTEM
from service.incidents.service import transition
from service.incidents.states import IncidentState
from service.incidents.tables import Incident, IncidentEvent

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
    moves = moved_at(session, [incident.id for incident in waiting])
    for incident in waiting:
        deadlines = per_county.get(incident.county_code or "", default)
        state = IncidentState(incident.state)
        moved = moves.get(incident.id)
        if state in (S.NOTIFIED, S.REOPENED):
            started = incident.reopened_at if state is S.REOPENED else incident.notified_at
            if started is None:
                continue
            since = _restarted(started, moved)
            late = now - since
            if _already_escalated(incident, since):
                continue
            if late > 2 * deadlines.acknowledge:
                why = f"not acknowledged within {2 * deadlines.acknowledge}" + _of_the_move(since, moved)
                _escalate(session, incident, now, since, why)
                escalated.append(incident.id)
            elif late > deadlines.acknowledge:
                reminders += len(enqueue(session, incident, AlertKind.REMINDER, round_no=alert_round(since), now=now))
        elif incident.acknowledged_at is not None:
            since = _restarted(incident.acknowledged_at, moved)
            if now - since > deadlines.on_site and not _already_escalated(incident, since):
                start = _of_the_move(since, moved) or " of acknowledging"
                _escalate(session, incident, now, since, f"not on site within {deadlines.on_site}{start}")
                escalated.append(incident.id)
    session.flush()
    return EscalationReport(reminders, escalated)


def moved_at(session: Session, incident_ids: Sequence[int]) -> dict[int, datetime]:
    """When each of these incidents last moved to another unit, by id (absent: never moved).

    A move is a ``reassigned`` event whose unit changed: the automatic one when a more precise fix places a fire
    nobody acknowledged in another unit, and a supervisor's. A supervisor's reassignment to the unit the fire is
    already in (a confirmation) is no move: the same team keeps the same clock."""
    latest: dict[int, datetime] = {}
    ids = sorted(set(incident_ids))
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(IncidentEvent.incident_id, IncidentEvent.at, IncidentEvent.data).where(
                IncidentEvent.kind == "reassigned", IncidentEvent.incident_id.in_(ids[start : start + 500])
            )
        )
        for incident_id, at, data in rows:
            change = json.loads(data or "{}")
            if change.get("from") != change.get("to") and (incident_id not in latest or at > latest[incident_id]):
                latest[incident_id] = at
    return latest


def _restarted(started: datetime, moved: datetime | None) -> datetime:
    """A deadline's start: its own (notified, reopened, acknowledged), or the latest move when that came later."""
    return moved if moved is not None and moved > started else started


def _of_the_move(since: datetime, moved: datetime | None) -> str:
    return " of the move to this unit" if moved is not None and since is moved else ""


def _already_escalated(incident: Incident, since: datetime) -> bool:
    # Escalate once per missed deadline: a team that resumes after escalation is not escalated again for it.
    return incident.escalated_at is not None and incident.escalated_at >= since


def _escalate(session: Session, incident: Incident, now: datetime, since: datetime, why: str) -> None:
    transition(session, incident, S.ESCALATED, SYSTEM, note=why, at=now)
    enqueue(session, incident, AlertKind.ESCALATION, role=RecipientRole.COUNTY, round_no=alert_round(since), now=now)
