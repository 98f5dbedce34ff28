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
a suspected fire whose alerts were never tried (the worker was down) waits for the first try.

A fire in a unit no township recipient covers (:mod:`service.alerts.coverage`) is escalated at the next pass, not
on any deadline: no alert was queued for it, so nothing would ever be delivered or fail, and it sat ``suspected``
unseen. The record is the unreachable one, its error "no recipients configured for DEMO05"; the same goes for a
notified fire moved into such a unit and a fire reopened there. A unit that has had a recipient added since the
fire came in is sent the fire's alert by the pass instead (late, but the township is told, and its clock starts
then). The same goes for a fire whose alerts were all withdrawn, never sent (the DEMO inbox recipients retired by a
start without ``--demo``), or are for recipients deactivated since: a withdrawn alert, or one nobody will receive,
tells nobody (:data:`~service.alerts.outbox.TELLING`).

The pass catches up like this only on fires that came to their unit within :data:`CATCH_UP` (24 h, the outbox's
retry horizon): opened by the service (``created_at``), reopened, or moved there, whichever is latest. After an
upgrade, or when a township's first recipient is added, the season's old untold fires would otherwise go out at
once as "new fire" alerts or county escalations for fires long out. Older ones are left as they are, for the
supervisors (their queues list every open fire), and the system status counts them (``fires_left_untold``,
:func:`left_untold`). The clock is the service's, not the observation's: an ingest alerts a fire however old its
observation is (a FIRMS back-fill, a late satellite file), and the catch-up treats it the same within 24 h of that.

Every escalation's event data also says why in codes the dashboard words in its reader's language
(``{"escalation": {"cause", "limit_s", "from", "to"}}``, :func:`~service.alerts.outbox.escalation_record`), ``to``
naming the unit whose supervisors were alerted: the county's, a unit above it when the county has none, or null
when nobody was (:func:`~service.alerts.outbox.escalate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from service.alerts.coverage import no_recipients_error
from service.alerts.outbox import (
    AWAITING_TOWNSHIP,
    RETRY_HORIZON,
    TELLING,
    TownshipAlerts,
    alert_round,
    enqueue,
    escalate,
    escalate_as_unreachable,
    escalation_record,
    new_fire_round,
    township_alerts,
)
from service.alerts.tables import Alert, AlertKind, AlertStatus, Recipient, RecipientRole
from service.incidents.moves import moves_of
from service.incidents.states import IncidentState
from service.incidents.tables import Incident

S = IncidentState

#: The states in which a township deadline runs (:func:`deadline_start`): acknowledge, then on site.
CLOCKED = (S.NOTIFIED, S.REOPENED, S.ACKNOWLEDGED, S.EN_ROUTE)


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
    waiting = _awaiting(session, CLOCKED)
    moves = moved_at(session, [incident.id for incident in waiting])
    unanswered = [i for i in waiting if i.state in AWAITING_TOWNSHIP]
    township = township_alerts(session, unanswered)
    for incident in waiting:
        deadlines = per_county.get(incident.county_code or "", default)
        unanswered_for = 2 * deadlines.acknowledge  # the acknowledge escalation deadline
        state = IncidentState(incident.state)
        moved = moves.get(incident.id)
        alerts = township.get(incident.id)
        unreached = alerts if alerts is not None and alerts.attempted and not alerts.delivered else None
        if _told_nobody(state, incident, alerts, moved):
            # No township alert of this round that tells the unit the fire is in was queued: nothing will be
            # delivered or fail, and without this the fire sat suspected for good. A recipient added since is told
            # now (its deadlines run from this alert); with none, the county hears of it now. Unless it came to the
            # unit too long ago for that to help: left to the supervisors, the system status counts it.
            if _past_catch_up(state, incident, moved, now):
                continue
            if enqueue(session, incident, AlertKind.NEW, round_no=new_fire_round(incident), now=now):
                continue
            cause = escalation_record("no_recipients")
            escalate_as_unreachable(session, incident, _nobody(incident), "could not be queued", now, cause=cause)
            escalated.append(incident.id)
            continue
        if state is S.SUSPECTED:
            if unreached is None or unreached.first_queued is None:
                continue  # delivered meanwhile (notified), or never tried: not the township's failure yet
            queued = _restarted(unreached.first_queued, moved)
            if now - queued > unanswered_for and not _already_escalated(incident, queued):
                why = f"not delivered within {unanswered_for}" + _of_the_move(queued, moved)
                cause = escalation_record("not_delivered", unanswered_for, "move" if queued is moved else "queued")
                escalate_as_unreachable(session, incident, unreached, why, now, cause=cause)
                escalated.append(incident.id)
            continue
        since = deadline_start(state, incident, moved)
        if since is None:
            continue
        # What the deadline counts from, for the record: the move, or the notification, reopening, acknowledgement.
        started = "move" if since is moved else (S.ACKNOWLEDGED if state is S.EN_ROUTE else state).value
        if state in (S.NOTIFIED, S.REOPENED):
            late = now - since
            if _already_escalated(incident, since):
                continue
            if late > unanswered_for and unreached is not None:
                why = f"not delivered within {unanswered_for}" + _of_the_move(since, moved)
                cause = escalation_record("not_delivered", unanswered_for, started)
                escalate_as_unreachable(session, incident, unreached, why, now, cause=cause)
                escalated.append(incident.id)
            elif late > unanswered_for:
                why = f"not acknowledged within {unanswered_for}" + _of_the_move(since, moved)
                cause = escalation_record("not_acknowledged", unanswered_for, started)
                _escalate(session, incident, now, since, why, cause)
                escalated.append(incident.id)
            elif late > deadlines.acknowledge and unreached is None:  # a township never told: no reminder
                reminders += len(enqueue(session, incident, AlertKind.REMINDER, round_no=alert_round(since), now=now))
        elif now - since > deadlines.on_site and not _already_escalated(incident, since):
            why = f"not on site within {deadlines.on_site}" + (_of_the_move(since, moved) or " of acknowledging")
            _escalate(session, incident, now, since, why, escalation_record("not_on_site", deadlines.on_site, started))
            escalated.append(incident.id)
    session.flush()
    return EscalationReport(reminders, escalated)


#: How long after a fire came to its unit (opened, reopened, or moved there) the pass still catches up on
#: it when nobody was told: the outbox's retry horizon, after which it gives up a new-fire alert it could not
#: deliver. A fire older than that has burnt out or been dealt with by someone; sending it as a "new fire", or
#: escalating it to the county, would only bury the day's real alerts (after an upgrade, or when a township's
#: first recipient is added, under every untold fire of the season at once).
CATCH_UP = RETRY_HORIZON


def _awaiting(session: Session, states: Sequence[IncidentState]) -> list[Incident]:
    """The open incidents in ``states``, and the suspected ones the pass may act on, by id: those a township alert
    was tried for and has not reached, or that no alert telling their unit was queued for (:data:`TELLING`; in a
    unit). Not the other suspected ones: a large ingest leaves many for the seconds until their alerts go out."""
    never_told = ~exists(
        select(Alert.id)
        .join(Recipient, Recipient.id == Alert.recipient_id)
        .where(
            Alert.incident_id == Incident.id,
            Alert.kind == AlertKind.NEW.value,
            Recipient.role == RecipientRole.TOWNSHIP.value,
            or_(Recipient.unit_code == Incident.township_code, Recipient.unit_code == Incident.county_code),
            TELLING,
        )
    )
    tried = Incident.id.in_(
        select(Alert.incident_id).where(
            Alert.kind == AlertKind.NEW.value, Alert.status == AlertStatus.PENDING.value, Alert.attempts > 0
        )
    )
    in_a_unit = or_(Incident.township_code.is_not(None), Incident.county_code.is_not(None))
    return list(
        session.scalars(
            select(Incident)
            .where(
                or_(
                    Incident.state.in_([state.value for state in states]),
                    and_(Incident.state == S.SUSPECTED.value, or_(tried, and_(in_a_unit, never_told))),
                )
            )
            .order_by(Incident.id)
        )
    )


def left_untold(session: Session, now: datetime) -> list[int]:
    """The fires :func:`escalate_due` leaves to the supervisors, by id: awaiting their township, no alert of their
    round tells their unit (:func:`_told_nobody`), and they came to it longer than :data:`CATCH_UP` ago. The system
    status counts them (``service.status.service``)."""
    unanswered = _awaiting(session, (S.NOTIFIED, S.REOPENED))
    moves = moved_at(session, [incident.id for incident in unanswered])
    township = township_alerts(session, unanswered)
    out = []
    for incident in unanswered:
        state, moved = IncidentState(incident.state), moves.get(incident.id)
        if _told_nobody(state, incident, township.get(incident.id), moved) and _past_catch_up(
            state, incident, moved, now
        ):
            out.append(incident.id)
    return out


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
    """When each of these incidents last moved to another unit, by id (absent: never moved): the latest of
    :func:`service.incidents.moves.moves_of`, which says what counts as a move (a confirmation to the same unit
    does not: the same team keeps the same clock)."""
    return {incident_id: max(moves) for incident_id, moves in moves_of(session, incident_ids).items()}


def _restarted(started: datetime, moved: datetime | None) -> datetime:
    """A deadline's start: its own (notified, reopened, acknowledged), or the latest move when that came later."""
    return moved if moved is not None and moved > started else started


def _of_the_move(since: datetime, moved: datetime | None) -> str:
    return " of the move to this unit" if moved is not None and since is moved else ""


def _already_escalated(incident: Incident, since: datetime) -> bool:
    # Escalate once per missed deadline: a team that resumes after escalation is not escalated again for it.
    return incident.escalated_at is not None and incident.escalated_at >= since


def _escalate(
    session: Session, incident: Incident, now: datetime, since: datetime, why: str, cause: dict[str, Any]
) -> None:
    escalate(session, incident, note=why, record={"escalation": cause}, round_no=alert_round(since), at=now)


def _told_nobody(
    state: IncidentState, incident: Incident, alerts: TownshipAlerts | None, moved: datetime | None
) -> bool:
    """Whether a fire awaiting its township has no township alert of its current round for the unit it is in (pure):
    none that tells it was queued (``alerts``: :func:`~service.alerts.outbox.township_alerts`, which counts only
    those, :data:`~service.alerts.outbox.TELLING`), as no recipient covers the unit
    (:mod:`service.alerts.coverage`), or those queued were all withdrawn (a retired DEMO inbox recipient's) or are
    for recipients deactivated since.

    Suspected or reopened: the alert is queued in the transaction that opened, moved or reopened the fire, so none
    means nobody to queue it for. Notified: only after a move (a notified fire was told, but its new unit may have
    nobody). A fire outside every unit is nobody's to escalate."""
    if alerts is not None or not (incident.township_code or incident.county_code):
        return False
    if state is S.NOTIFIED:
        return moved is not None and not _already_escalated(incident, moved)
    if state is S.REOPENED:
        return incident.reopened_at is not None and not _already_escalated(incident, incident.reopened_at)
    return state is S.SUSPECTED


def _past_catch_up(state: IncidentState, incident: Incident, moved: datetime | None, now: datetime) -> bool:
    """Whether a fire nobody was told of came to its unit longer than :data:`CATCH_UP` before ``now`` (pure): when
    the service opened it, reopened it (a reopened fire's round), or last moved it there, whichever is latest."""
    reopened = incident.reopened_at if state is S.REOPENED else None
    return _restarted(reopened or incident.created_at, moved) < now - CATCH_UP


def _nobody(incident: Incident) -> TownshipAlerts:
    """The township alerts of a fire whose unit has no recipients: none, the error saying so."""
    unit = incident.township_code or incident.county_code or ""
    return TownshipAlerts(unit, False, False, False, [], no_recipients_error(unit), None)
