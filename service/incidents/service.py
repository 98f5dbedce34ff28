"""Incidents: ingesting observations (fusion + assignment), lifecycle transitions and the event record.

Every function works inside the caller's transaction: an ingest, with its incidents, events and (later) alert
rows, commits or rolls back as one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.db import utcnow
from service.errors import ConflictError, InputError, NotFoundError
from service.incidents.fusion import (
    FusionWindows,
    Located,
    ObservationIn,
    ObservationKind,
    best_location,
    combined_confidence,
    linked_incidents,
)
from service.incidents.states import ACTIVE_STATES, FalseAlarmReason, IncidentState, check_transition
from service.incidents.tables import Incident, IncidentEvent, Observation
from service.regions.service import RegionIndexCache, get_region, loaded_levels
from service.regions.types import AssignStatus, RegionLevel

# Candidate observations are pre-selected by a box this wide (degrees) around the new one; a camera wedge reaches
# tens of kilometres, so the box is generous and the exact test is the region overlap.
_SEARCH_DEG = 0.5
# Incidents not yet acted on are merged when one observation links them; others stay separate (their records are
# already in use by a patrol team) and the observation joins the oldest.
_MERGEABLE = frozenset({IncidentState.SUSPECTED, IncidentState.NOTIFIED})


@dataclass(slots=True)
class IngestSummary:
    """What an ingest did."""

    received: int = 0
    new: int = 0
    duplicates: int = 0
    new_incidents: list[int] = field(default_factory=list)
    updated_incidents: list[int] = field(default_factory=list)
    merged_incidents: list[int] = field(default_factory=list)


def _event(
    session: Session,
    incident: Incident,
    actor: Principal,
    kind: str,
    *,
    from_state: str | None = None,
    to_state: str | None = None,
    note: str = "",
    evidence_sha256: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        IncidentEvent(
            incident_id=incident.id,
            at=utcnow(),
            actor=actor.username,
            actor_role=actor.role.value,
            kind=kind,
            from_state=from_state,
            to_state=to_state,
            note=note,
            evidence_sha256=evidence_sha256,
            data=json.dumps(data or {}, ensure_ascii=False, default=str),
        )
    )


def _as_input(row: Observation) -> ObservationIn:
    return ObservationIn(
        kind=ObservationKind(row.kind),
        source_key=row.source_key,
        observed_at=row.observed_at,
        latitude=row.latitude,
        longitude=row.longitude,
        region=shapely.from_wkb(row.region_wkb),
        confidence=row.confidence,
        frp_mw=row.frp_mw,
    )


def _candidates(session: Session, obs: ObservationIn, windows: FusionWindows) -> list[Located]:
    reach = max(windows.ground, windows.satellite)
    rows = session.execute(
        select(Observation.incident_id, Observation.kind, Observation.observed_at, Observation.region_wkb)
        .join(Incident, Incident.id == Observation.incident_id)
        .where(
            Incident.state.in_([s.value for s in ACTIVE_STATES]),
            Observation.observed_at >= obs.observed_at - reach,
            Observation.observed_at <= obs.observed_at + reach,
            Observation.latitude.between(obs.latitude - _SEARCH_DEG, obs.latitude + _SEARCH_DEG),
            Observation.longitude.between(obs.longitude - _SEARCH_DEG, obs.longitude + _SEARCH_DEG),
        )
    ).all()
    return [
        Located(incident_id, ObservationKind(kind), observed_at, shapely.from_wkb(wkb))
        for incident_id, kind, observed_at, wkb in rows
        if incident_id is not None
    ]


def assign_incident(session: Session, incident: Incident, region: shapely.Geometry, indexes: RegionIndexCache) -> None:
    """Assign the incident's location region to its township and county, with ranked candidates and shares."""
    levels = loaded_levels(session)
    candidates: list[dict[str, Any]] = []
    incident.township_code = incident.township_name = None
    incident.county_code = incident.county_name = None
    incident.assignment_status = AssignStatus.OUTSIDE.value
    incident.assignment_certainty = 0.0
    for level in (RegionLevel.TOWNSHIP, RegionLevel.COUNTY):
        if level not in levels:
            continue
        result = indexes.get(session, level).assign_footprint(region)
        for share in result.shares:
            candidates.append({"level": level.value, "code": share.code, "name": share.name, "share": share.share})
        primary = result.primary
        if primary is None:
            continue
        if level is RegionLevel.TOWNSHIP:
            incident.township_code, incident.township_name = primary.code, primary.name
        else:
            incident.county_code, incident.county_name = primary.code, primary.name
        # The finest level decides the status and certainty shown to people.
        if incident.assignment_status == AssignStatus.OUTSIDE.value:
            incident.assignment_status = result.status.value
            incident.assignment_certainty = primary.share if result.status is AssignStatus.INSIDE else 0.0
    incident.assignment_candidates = json.dumps(candidates, ensure_ascii=False)


def _refresh(session: Session, incident: Incident, indexes: RegionIndexCache) -> None:
    observations = [
        _as_input(row) for row in session.scalars(select(Observation).where(Observation.incident_id == incident.id))
    ]
    best = best_location(observations)
    incident.latitude, incident.longitude = best.latitude, best.longitude
    incident.location_kind = best.kind.value
    incident.confidence = combined_confidence(o.confidence for o in observations)
    incident.first_observed_at = min(o.observed_at for o in observations)
    incident.last_observed_at = max(o.observed_at for o in observations)
    assign_incident(session, incident, best.region, indexes)


def ingest(
    session: Session,
    observations: Sequence[ObservationIn],
    *,
    indexes: RegionIndexCache,
    windows: FusionWindows,
    actor: Principal,
) -> IngestSummary:
    """Store new observations (re-sent ones are skipped by their natural key) and fuse them into incidents."""
    summary = IngestSummary(received=len(observations))
    touched: dict[int, Incident] = {}
    for obs in sorted(observations, key=lambda o: (o.observed_at, o.source_key)):
        exists = session.scalar(
            select(Observation.id).where(Observation.kind == obs.kind.value, Observation.source_key == obs.source_key)
        )
        if exists is not None:
            summary.duplicates += 1
            continue
        linked = linked_incidents(obs, _candidates(session, obs, windows), windows)
        if linked:
            incident = session.get_one(Incident, linked[0])
            for other_id in linked[1:]:
                _merge(session, session.get_one(Incident, other_id), into=incident, actor=actor, summary=summary)
                touched.pop(other_id, None)
        else:
            incident = Incident(
                state=IncidentState.SUSPECTED.value,
                latitude=obs.latitude,
                longitude=obs.longitude,
                location_kind=obs.kind.value,
                confidence=obs.confidence,
                first_observed_at=obs.observed_at,
                last_observed_at=obs.observed_at,
            )
            session.add(incident)
            session.flush()
            _event(
                session,
                incident,
                actor,
                "created",
                to_state=IncidentState.SUSPECTED.value,
                data={"source": obs.kind.value, "source_key": obs.source_key},
            )
            summary.new_incidents.append(incident.id)
        session.add(
            Observation(
                kind=obs.kind.value,
                source_key=obs.source_key,
                observed_at=obs.observed_at,
                latitude=obs.latitude,
                longitude=obs.longitude,
                region_wkb=shapely.to_wkb(obs.region),
                confidence=obs.confidence,
                frp_mw=obs.frp_mw,
                details=json.dumps(obs.details, ensure_ascii=False, default=str),
                incident_id=incident.id,
            )
        )
        session.flush()
        if linked:
            _event(
                session, incident, actor, "observation", data={"source": obs.kind.value, "source_key": obs.source_key}
            )
        _refresh(session, incident, indexes)
        touched[incident.id] = incident
        summary.new += 1
    summary.updated_incidents = sorted(set(touched) - set(summary.new_incidents))
    session.flush()
    return summary


def _merge(session: Session, other: Incident, *, into: Incident, actor: Principal, summary: IngestSummary) -> None:
    """Move a not-yet-acted-on incident's observations into ``into`` and close it as a duplicate."""
    if IncidentState(other.state) not in _MERGEABLE:
        return
    for row in session.scalars(select(Observation).where(Observation.incident_id == other.id)):
        row.incident_id = into.id
    previous = other.state
    other.state = IncidentState.FALSE_ALARM.value
    other.false_alarm_at = utcnow()
    other.false_alarm_reason = FalseAlarmReason.DUPLICATE.value
    _event(
        session,
        other,
        actor,
        "transition",
        from_state=previous,
        to_state=other.state,
        note=f"merged into incident {into.id}: the same fire",
        data={"merged_into": into.id},
    )
    _event(session, into, actor, "merged", note=f"incident {other.id} merged in", data={"merged": other.id})
    summary.merged_incidents.append(other.id)


def get_incident(session: Session, incident_id: int, principal: Principal) -> Incident:
    """An incident the principal may see; otherwise :class:`NotFoundError` (its existence is not revealed)."""
    incident = session.get(Incident, incident_id)
    if incident is None or not principal.can_see(incident):
        raise NotFoundError(f"no incident {incident_id}")
    return incident


def list_incidents(
    session: Session,
    principal: Principal,
    *,
    township: str | None = None,
    county: str | None = None,
    state: IncidentState | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[Incident]:
    """Incidents within the principal's scope, newest first."""
    query = select(Incident).where(principal.incident_filter())
    if township:
        query = query.where(Incident.township_code == township)
    if county:
        query = query.where(Incident.county_code == county)
    if state:
        query = query.where(Incident.state == state.value)
    return list(
        session.scalars(
            query.order_by(Incident.last_observed_at.desc(), Incident.id.desc()).limit(limit).offset(offset)
        )
    )


def observations_of(session: Session, incident: Incident) -> list[Observation]:
    """Every observation of an incident, oldest first."""
    return list(
        session.scalars(
            select(Observation).where(Observation.incident_id == incident.id).order_by(Observation.observed_at)
        )
    )


def events_of(session: Session, incident: Incident) -> list[IncidentEvent]:
    """The incident's record, in order."""
    return list(
        session.scalars(
            select(IncidentEvent).where(IncidentEvent.incident_id == incident.id).order_by(IncidentEvent.id)
        )
    )


FEEDBACK_FIELDS = ("cause", "burned_area_m2", "responsible_party", "photos")


def transition(
    session: Session,
    incident: Incident,
    target: IncidentState,
    actor: Principal,
    *,
    note: str = "",
    reason: FalseAlarmReason | None = None,
    feedback: dict[str, Any] | None = None,
    evidence_sha256: str | None = None,
    at: datetime | None = None,
) -> Incident:
    """Move an incident to ``target`` if the lifecycle and the actor's role allow it; record the event."""
    current = IncidentState(incident.state)
    problem = check_transition(current, target, actor.role)
    if problem:
        raise ConflictError(problem)
    if target is IncidentState.FALSE_ALARM and reason is None:
        raise InputError(
            "a false alarm needs a reason: " + ", ".join(r.value for r in FalseAlarmReason), field="reason"
        )
    if target is IncidentState.FEEDBACK:
        if not feedback or not feedback.get("cause"):
            raise InputError(
                "feedback needs at least a cause (and burned_area_m2, responsible_party, photos)", field="feedback"
            )
        unknown = set(feedback) - set(FEEDBACK_FIELDS)
        if unknown:
            raise InputError(f"unknown feedback fields: {', '.join(sorted(unknown))}", field="feedback")
        incident.feedback = json.dumps(feedback, ensure_ascii=False)
    now = at or utcnow()
    incident.state = target.value
    setattr(incident, f"{target.value}_at", now)
    if target is IncidentState.FALSE_ALARM:
        incident.false_alarm_reason = reason.value if reason else None
    _event(
        session,
        incident,
        actor,
        "transition",
        from_state=current.value,
        to_state=target.value,
        note=note,
        evidence_sha256=evidence_sha256,
        data={"reason": reason.value} if reason else ({"feedback": feedback} if feedback else {}),
    )
    session.flush()
    return incident


def reassign(
    session: Session,
    incident: Incident,
    actor: Principal,
    *,
    township_code: str | None,
    county_code: str | None,
    note: str,
) -> Incident:
    """A supervisor's manual assignment (audited with the previous assignment)."""
    if not note.strip():
        raise InputError("a reassignment needs a note saying why", field="note")
    previous = {"township": incident.township_code, "county": incident.county_code}
    if township_code:
        _, unit = get_region(session, RegionLevel.TOWNSHIP, township_code)
        incident.township_code, incident.township_name = unit.code, unit.name
    if county_code:
        _, unit = get_region(session, RegionLevel.COUNTY, county_code)
        incident.county_code, incident.county_name = unit.code, unit.name
    incident.assignment_status = "manual"
    incident.assignment_certainty = 1.0
    _event(
        session,
        incident,
        actor,
        "reassigned",
        note=note,
        data={"from": previous, "to": {"township": incident.township_code, "county": incident.county_code}},
    )
    session.flush()
    return incident
