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

A township its new-fire alert has not reached is escalated on the same acknowledge escalation deadline, counted
from when its alert was queued (or the move): a fire still ``suspected`` because every channel of its township
keeps failing (none delivered, at least one tried) goes to the county after twice the acknowledge time, as an
unacknowledged notified one does, and not only when the outbox gives the alert up 24 h later
(``service.alerts.outbox.escalate_unreachable``, which then finds it escalated and does nothing). The event says
the township could not be reached (``{"unreachable": {...}}`` with the unit, the recipients and the last delivery
error so far), and so does the county's alert. The township's alert keeps being retried: if it gets through, the
team can still take the fire from ``escalated``. A notified or reopened incident whose current alert never reached
its unit (a move to a township whose channel is down, a reopening's alert that keeps failing) is escalated on its
usual deadline, with the same record. No reminder is queued for a township never told (it would fail the same way);
a suspected fire whose alerts were never tried (the worker was down) waits for the first try; one whose unit has no
township recipient at all is not escalated (nothing was ever sent to fail).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from service.alerts.outbox import alert_round, enqueue, escalate_as_unreachable, township_alerts
from service.alerts.tables import Alert, AlertKind, AlertStatus, RecipientRole
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
        .where(
            or_(
                Incident.state.in_([S.NOTIFIED.value, S.REOPENED.value, S.ACKNOWLEDGED.value, S.EN_ROUTE.value]),
                # Only the suspected fires a township alert was tried for and has not reached: a large ingest
                # leaves many suspected for the seconds until their alerts go out.
                and_(
                    Incident.state == S.SUSPECTED.value,
                    Incident.id.in_(
                        select(Alert.incident_id).where(
                            Alert.kind == AlertKind.NEW.value,
                            Alert.status == AlertStatus.PENDING.value,
                            Alert.attempts > 0,
                        )
                    ),
                ),
            )
        )
        .order_by(Incident.id)
    ).all()
    moves = moved_at(session, [incident.id for incident in waiting])
    unanswered = [i for i in waiting if i.state in (S.SUSPECTED.value, S.NOTIFIED.value, S.REOPENED.value)]
    township = township_alerts(session, unanswered)
    for incident in waiting:
        deadlines = per_county.get(incident.county_code or "", default)
        state = IncidentState(incident.state)
        moved = moves.get(incident.id)
        alerts = township.get(incident.id)
        unreached = alerts if alerts is not None and alerts.attempted and not alerts.delivered else None
        if state is S.SUSPECTED:
            if unreached is None or unreached.first_queued is None:
                continue  # delivered meanwhile (notified), or never tried: not the township's failure yet
            queued = _restarted(unreached.first_queued, moved)
            if now - queued > 2 * deadlines.acknowledge and not _already_escalated(incident, queued):
                why = f"not delivered within {2 * deadlines.acknowledge}" + _of_the_move(queued, moved)
                escalate_as_unreachable(session, incident, unreached, why, now)
                escalated.append(incident.id)
            continue
        since = deadline_start(state, incident, moved)
        if since is None:
            continue
        if state in (S.NOTIFIED, S.REOPENED):
            late = now - since
            if _already_escalated(incident, since):
                continue
            if late > 2 * deadlines.acknowledge and unreached is not None:
                why = f"not delivered within {2 * deadlines.acknowledge}" + _of_the_move(since, moved)
                escalate_as_unreachable(session, incident, unreached, why, now)
                escalated.append(incident.id)
            elif late > 2 * deadlines.acknowledge:
                why = f"not acknowledged within {2 * deadlines.acknowledge}" + _of_the_move(since, moved)
                _escalate(session, incident, now, since, why)
                escalated.append(incident.id)
            elif late > deadlines.acknowledge:
                reminders += len(enqueue(session, incident, AlertKind.REMINDER, round_no=alert_round(since), now=now))
        elif now - since > deadlines.on_site and not _already_escalated(incident, since):
            counted = _of_the_move(since, moved) or " of acknowledging"
            _escalate(session, incident, now, since, f"not on site within {deadlines.on_site}{counted}")
            escalated.append(incident.id)
    session.flush()
    return EscalationReport(reminders, escalated)


def deadline_start(state: IncidentState, incident: Incident, moved: datetime | None) -> datetime | None:
    """When the deadline running for an incident in ``state`` started (pure), or None when none runs.

    Notified: the acknowledge deadline, from the notification; reopened: from the reopening; acknowledged or en
    route: the on-site deadline, from the acknowledgement; each restarted by a later move to another unit
    (``moved``, :func:`moved_at`). Suspected (the township not told yet), escalated (the county has it), on site and
    later: none. The escalation pass judges by it, and the incident API gives it to the dashboard (``clock_from``)."""
    if state is S.NOTIFIED:
        started = incident.notified_at
    elif state is S.REOPENED:
        started = incident.reopened_at
    elif state in (S.ACKNOWLEDGED, S.EN_ROUTE):
        started = incident.acknowledged_at
    else:
        return None
    return None if started is None else _restarted(started, moved)


def moved_at(session: Session, incident_ids: Sequence[int]) -> dict[int, datetime]:
    """When each of these incidents last moved to another unit, by id (absent: never moved).

    A move is a ``reassigned`` event whose unit changed (:func:`changed_unit`): the automatic one when a more
    precise fix places a fire nobody acknowledged in another unit, and a supervisor's. A supervisor's reassignment
    to the unit the fire is already in (a confirmation) is no move: the same team keeps the same clock."""
    latest: dict[int, datetime] = {}
    ids = sorted(set(incident_ids))
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(IncidentEvent.incident_id, IncidentEvent.at, IncidentEvent.data).where(
                IncidentEvent.kind == "reassigned", IncidentEvent.incident_id.in_(ids[start : start + 500])
            )
        )
        for incident_id, at, data in rows:
            if changed_unit(data) and (incident_id not in latest or at > latest[incident_id]):
                latest[incident_id] = at
    return latest


def changed_unit(data: str | None) -> bool:
    """Whether a ``reassigned`` event's data (its JSON text) records a move to another unit (pure)."""
    try:
        change = json.loads(data or "{}")
    except ValueError:
        return False
    return isinstance(change, dict) and change.get("from") != change.get("to")


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
