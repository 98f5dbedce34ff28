"""Incidents: ingesting observations (fusion + assignment), lifecycle transitions and the event record.

Every function works inside the caller's transaction: an ingest, with its incidents, events and (later) alert
rows, commits or rolls back as one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.db import utcnow
from service.errors import ConflictError, InputError, NotFoundError
from service.evidence.tables import Evidence
from service.incidents.fusion import (
    FusionWindows,
    Located,
    ObservationIn,
    ObservationKind,
    best_location,
    combined_confidence,
    plan_batch,
)
from service.incidents.repeat_site import RepeatSiteRule, SiteFire, find_repeats, is_real_fire
from service.incidents.states import ACTIVE_STATES, OPEN_STATES, FalseAlarmReason, IncidentState, check_transition
from service.incidents.tables import Incident, IncidentEvent, Observation
from service.regions.index import RegionIndex, degree_margins
from service.regions.service import ASSIGNED_LEVELS, RegionIndexCache, get_region, loaded_levels
from service.regions.types import AssignStatus, RegionLevel, RegionUnit

# Candidate observations are pre-selected by a box this wide (degrees) around the new one; a camera wedge reaches
# tens of kilometres, so the box is generous and the exact test is the region overlap.
_SEARCH_DEG = 0.5
# Incidents not yet acted on are merged when one observation links them, and follow a new fix into another unit;
# others stay separate (their records are already in use by a patrol team: the observation joins the oldest) and
# stay with that team's unit (:func:`_keep_with_the_team`).
_NOT_ACTED_ON = frozenset({IncidentState.SUSPECTED, IncidentState.NOTIFIED})


@dataclass(slots=True)
class IngestSummary:
    """What an ingest did."""

    received: int = 0
    new: int = 0
    duplicates: int = 0
    new_incidents: list[int] = field(default_factory=list)
    updated_incidents: list[int] = field(default_factory=list)
    merged_incidents: list[int] = field(default_factory=list)
    # Screened-out observations, opening no incident (status → count): recorded with their decision, except those
    # far outside the coverage, which are counted only (service.flows.ingest_screened says why).
    held: dict[str, int] = field(default_factory=dict)
    # Satellite fire points (clusters of pixels of one pass) that are new, and those repeating an earlier one.
    fire_points: int = 0
    repeats: int = 0
    # New incidents flagged repeat_at_site (fire again where an earlier real fire was), by id.
    repeat_at_site: list[int] = field(default_factory=list)
    # Existing incidents that a new observation placed in another township or county, by id.
    reassigned_incidents: list[int] = field(default_factory=list)


def record_event(
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
    at: datetime | None = None,
) -> None:
    """Append one event to the incident's record (server time unless a server-side clock passes ``at``)."""
    session.add(
        IncidentEvent(
            incident_id=incident.id,
            at=at or utcnow(),
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


def _observations_of(session: Session, incident_ids: Sequence[int]) -> dict[int, list[ObservationIn]]:
    """The stored observations of these incidents, by incident (in chunks of ids)."""
    out: dict[int, list[ObservationIn]] = {}
    for start in range(0, len(incident_ids), 500):
        chunk = incident_ids[start : start + 500]
        for row in session.scalars(select(Observation).where(Observation.incident_id.in_(chunk))):
            out.setdefault(row.incident_id or 0, []).append(_as_input(row))
    return out


def _placed(session: Session, incident_ids: set[int]) -> set[int]:
    """Of these incidents, those a precise observation (not a single camera's wedge) has ever placed, however long
    ago: fusion must know it even when that observation is older than the time window it loads."""
    placed: set[int] = set()
    ids = sorted(incident_ids)
    for start in range(0, len(ids), 500):
        placed.update(
            session.scalars(
                select(Observation.incident_id)
                .where(
                    Observation.incident_id.in_(ids[start : start + 500]),
                    Observation.kind != ObservationKind.CAMERA.value,
                )
                .distinct()
            )
        )
    return placed


#: States whose fire is still being dealt with: a satellite pass 6–24 h later at its spot joins the incident.
_TAKES_REPASS = frozenset(
    s.value
    for s in (
        IncidentState.SUSPECTED,
        IncidentState.NOTIFIED,
        IncidentState.ACKNOWLEDGED,
        IncidentState.EN_ROUTE,
        IncidentState.ON_SITE,
        IncidentState.ESCALATED,
        IncidentState.REOPENED,
    )
)


def _existing(session: Session, batch: Sequence[ObservationIn], windows: FusionWindows) -> list[Located]:
    """Observations of active incidents that any observation of the batch could link to (one query).

    Active — :data:`ACTIVE_STATES`, every state but ``closed`` (销号) and ``false_alarm``. The 6–24 h satellite
    repass (§2.4 step 3) joins only incidents whose fire is still being dealt with (:data:`_TAKES_REPASS`): a pass
    that long after a fire was put out, fed back or verified is the field burning again, and joining the handled
    incident would alert no one (the system cannot reopen it: that is a supervisor's move). It opens a new incident
    instead, alerted as any, and flagged ``repeat_at_site``. A closed or false-alarm incident absorbs nothing.
    """
    reach = windows.reach
    rows = session.execute(
        select(
            Observation.incident_id,
            Observation.kind,
            Observation.observed_at,
            Observation.region_wkb,
            Incident.state,
            Observation.source_key,
        )
        .join(Incident, Incident.id == Observation.incident_id)
        .where(
            Incident.state.in_([s.value for s in ACTIVE_STATES]),
            Observation.observed_at >= min(o.observed_at for o in batch) - reach,
            Observation.observed_at <= max(o.observed_at for o in batch) + reach,
            Observation.latitude.between(
                min(o.latitude for o in batch) - _SEARCH_DEG, max(o.latitude for o in batch) + _SEARCH_DEG
            ),
            Observation.longitude.between(
                min(o.longitude for o in batch) - _SEARCH_DEG, max(o.longitude for o in batch) + _SEARCH_DEG
            ),
        )
    ).all()
    return [
        Located(incident_id, ObservationKind(kind), observed_at, shapely.from_wkb(wkb), state in _TAKES_REPASS, key)
        for incident_id, kind, observed_at, wkb, state, key in rows
        if incident_id is not None
    ]


def region_indexes(session: Session, indexes: RegionIndexCache) -> dict[RegionLevel, RegionIndex]:
    """The township and county indexes that are loaded (fetched once per batch)."""
    levels = loaded_levels(session)
    return {level: indexes.get(session, level) for level in ASSIGNED_LEVELS if level in levels}


#: The assignment status of an incident a supervisor reassigned: later observations move its location, not its unit.
MANUAL_ASSIGNMENT: Final[str] = "manual"


def assign_incident(incident: Incident, region: shapely.Geometry, levels: dict[RegionLevel, RegionIndex]) -> None:
    """Assign the incident's location region to its township and county, with ranked candidates and shares.

    The county is the chosen township's own (its parent, when that county is loaded), not the county level's
    largest share on its own: a pixel across a county border could otherwise land in one county's township and
    the other county, and the township's own supervisors would not see it.

    The status follows the incident's point (``incident.latitude``/``longitude``, the locating observation's) as
    :meth:`~service.regions.index.RegionIndex.assign_footprint` decides it; the certainty is the chosen unit's share
    of the region, whatever the status. A region at the edge of the imported area — its centre outside every unit,
    the region overlapping one (a satellite pixel centred 558 m outside 九台区 with 2.4 % of its area in it) — is
    ``nearest``, not ``inside``, and still assigned to the unit it overlaps most, decided so:

    * **Alerted.** The fire may well be on the unit's side of the boundary (a pixel's fire can be anywhere in it),
      and a fire just across it is worth the township's look: its team is alerted as for any fire, and closes it as
      a false alarm ``out_of_area`` when it finds the fire beyond the boundary.
    * **Counted** in the unit's fire points as any assigned incident (reports count by the assigned unit), until
      the field closes it ``out_of_area`` or a supervisor reassigns it; the status ``nearest``, the certainty (the
      unit's share) and the ``outside`` candidate below show supervisors and evaluators that it is an edge case.
    * **The outside share** is a candidate of its own per level, ``{"level", "code": None, "name": None, "share",
      "outside": True}``, after the units' candidates whenever part of the region lies beyond every unit of that
      level (a candidate list without it had read as if the units shared the whole pixel).
    * **The distance**: for ``nearest``, the chosen unit's candidate (finest level) also has ``distance_m``, how far
      the point lies outside the imported units (geodesic metres), which the reports show evaluators."""
    candidates: list[dict[str, Any]] = []
    incident.township_code = incident.township_name = None
    incident.county_code = incident.county_name = None
    incident.assignment_status = AssignStatus.OUTSIDE.value
    incident.assignment_certainty = 0.0
    township_parent: str | None = None
    centre = (incident.longitude, incident.latitude)
    for level, index in sorted(levels.items(), key=lambda item: item[0] is not RegionLevel.TOWNSHIP):
        result = index.assign_footprint(region, centre)
        for share in result.shares:
            candidates.append({"level": level.value, "code": share.code, "name": share.name, "share": share.share})
        if result.shares and result.outside_share > 1e-6:  # not rounding errors of a region inside
            candidates.append(
                {"level": level.value, "code": None, "name": None, "share": result.outside_share, "outside": True}
            )
        primary = result.primary
        if primary is None:
            continue
        if level is RegionLevel.TOWNSHIP:
            incident.township_code, incident.township_name = primary.code, primary.name
            township = index.unit(primary.code)
            township_parent = township.parent_code if township is not None else None
        else:
            parent = index.unit(township_parent) if township_parent else None
            chosen = parent if parent is not None else primary
            incident.county_code, incident.county_name = chosen.code, chosen.name
        # The finest level decides the status and certainty shown to people.
        if incident.assignment_status == AssignStatus.OUTSIDE.value:
            incident.assignment_status = result.status.value
            incident.assignment_certainty = primary.share
            if result.status is AssignStatus.NEAREST and result.distance_m is not None:
                # How far outside the boundary the fire's point lies, on the chosen unit's candidate: the reports
                # show evaluators how far over the border an edge fire point is.
                chosen_candidate = next(
                    c for c in candidates if c["level"] == level.value and c["code"] == primary.code
                )
                chosen_candidate["distance_m"] = round(result.distance_m, 1)
    incident.assignment_candidates = json.dumps(candidates, ensure_ascii=False)


def _refresh(
    incident: Incident, observations: Sequence[ObservationIn], levels: dict[RegionLevel, RegionIndex]
) -> ObservationIn:
    """Recompute the incident's location, confidence, times and unit from all its observations; the observation
    that locates it comes back."""
    best = best_location(observations)
    incident.latitude, incident.longitude = best.latitude, best.longitude
    incident.location_kind = best.kind.value
    incident.confidence = combined_confidence(o.confidence for o in observations)
    incident.first_observed_at = min(o.observed_at for o in observations)
    incident.last_observed_at = max(o.observed_at for o in observations)
    if incident.assignment_status != MANUAL_ASSIGNMENT:  # a supervisor's reassignment outranks later geometry
        assign_incident(incident, best.region, levels)
    return best


def _site_fire(incident: Incident, best: ObservationIn) -> SiteFire:
    return SiteFire(
        incident_id=incident.id,
        first_observed_at=incident.first_observed_at,
        last_observed_at=incident.last_observed_at,
        latitude=incident.latitude,
        longitude=incident.longitude,
        location_kind=best.kind,
        region=best.region,
        real_fire=is_real_fire(
            IncidentState(incident.state), fed_back_at=incident.feedback_at, false_alarm_at=incident.false_alarm_at
        ),
    )


def _earlier_fires(session: Session, new: Sequence[SiteFire], rule: RepeatSiteRule) -> list[SiteFire]:
    """Stored incidents (other than ``new``) that a new one could repeat: first seen before the latest new one,
    last seen within the window before the earliest, within the distance of the batch's box (one query, then
    their observations to find each one's location region)."""
    # The box is widened by the distance plus a satellite pixel's size, as regions count, not only points.
    lat_margin, lon_margin = degree_margins(rule.distance_m + 2_000.0, max(abs(f.latitude) for f in new) + 1.0)
    incidents = list(
        session.scalars(
            select(Incident).where(
                Incident.id.notin_([f.incident_id for f in new]),
                Incident.first_observed_at < max(f.first_observed_at for f in new),
                Incident.last_observed_at >= min(f.first_observed_at for f in new) - rule.window,
                Incident.latitude.between(
                    min(f.latitude for f in new) - lat_margin, max(f.latitude for f in new) + lat_margin
                ),
                Incident.longitude.between(
                    min(f.longitude for f in new) - lon_margin, max(f.longitude for f in new) + lon_margin
                ),
            )
        )
    )
    observations = _observations_of(session, [i.id for i in incidents])
    return [_site_fire(i, best_location(observations[i.id])) for i in incidents if observations.get(i.id)]


def _flag_repeats(
    session: Session,
    created: Sequence[tuple[Incident, ObservationIn]],
    rule: RepeatSiteRule,
    actor: Principal,
    summary: IngestSummary,
) -> None:
    """Flag the new incidents that repeat an earlier real fire at the same place (``repeat_at_site``): the column
    for the API and the statistics, an event for the record."""
    new = [_site_fire(incident, best) for incident, best in created]
    if not new:
        return
    by_id = {incident.id: incident for incident, _ in created}
    # New incidents are candidates too: a multi-day file opens several at one spot.
    for match in find_repeats(new, [*new, *_earlier_fires(session, new, rule)], rule):
        incident = by_id[match.incident_id]
        incident.repeat_of_incident_id = match.repeat_of
        record_event(
            session,
            incident,
            actor,
            "repeat_at_site",
            note=f"fire again at the same place as incident {match.repeat_of}",
            data={"repeat_of": match.repeat_of, "distance_m": match.distance_m, "days_after": match.days_after},
        )
        summary.repeat_at_site.append(incident.id)


def ingest(
    session: Session,
    observations: Sequence[ObservationIn],
    *,
    indexes: RegionIndexCache,
    windows: FusionWindows,
    actor: Principal,
    repeat_rule: RepeatSiteRule | None = None,
) -> IngestSummary:
    """Store new observations (re-sent ones are skipped by their natural key) and fuse them into incidents; new
    incidents at the place of an earlier real fire are flagged ``repeat_at_site`` (``repeat_rule``, default 800 m /
    30 days).

    The batch is linked in memory (:func:`plan_batch`) against the active incidents' observations loaded in one
    query, then written with a handful of flushes: a 16,000-row FIRMS file is one transaction of seconds.
    """
    summary = IngestSummary(received=len(observations))
    fresh = _new_only(session, observations, summary)
    if not fresh:
        return summary
    existing = _existing(session, fresh, windows)
    levels = region_indexes(session, indexes)
    fresh = _links_within_units(fresh, existing, levels)
    groups = plan_batch(fresh, existing, windows, placed_before=_placed(session, {e.incident_id for e in existing}))
    touched: dict[int, Incident] = {}
    created: list[tuple[Incident, ObservationIn]] = []
    owner: list[Incident | None] = [None] * len(fresh)
    for group in groups:
        first = fresh[group.observations[0]]
        if group.incidents:
            incident = session.get_one(Incident, group.incidents[0])
            for other_id in group.incidents[1:]:
                _merge(session, session.get_one(Incident, other_id), into=incident, actor=actor, summary=summary)
        else:
            incident = Incident(
                state=IncidentState.SUSPECTED.value,
                latitude=first.latitude,
                longitude=first.longitude,
                location_kind=first.kind.value,
                confidence=first.confidence,
                first_observed_at=first.observed_at,
                last_observed_at=first.observed_at,
            )
            session.add(incident)
            created.append((incident, first))
        for i in group.observations:
            owner[i] = incident
    session.flush()  # ids for the new incidents
    for incident, first in created:
        record_event(
            session,
            incident,
            actor,
            "created",
            to_state=IncidentState.SUSPECTED.value,
            data={"source": first.kind.value, "source_key": first.source_key},
        )
        summary.new_incidents.append(incident.id)
    new_ids = {incident.id for incident, _ in created}
    for obs, holder in zip(fresh, owner, strict=True):
        assert holder is not None
        session.add(_row(obs, holder.id))
        if holder.id not in new_ids:
            record_event(
                session, holder, actor, "observation", data={"source": obs.kind.value, "source_key": obs.source_key}
            )
        touched[holder.id] = holder
    session.flush()
    by_incident = _observations_of(session, list(touched))
    best: dict[int, ObservationIn] = {}
    for incident_id, incident in touched.items():
        unit_before, assignment_before = _unit_of(incident), _assignment_of(incident)
        best[incident_id] = _refresh(incident, by_incident[incident_id], levels)
        if incident_id not in new_ids and _unit_of(incident) != unit_before:
            if IncidentState(incident.state) in _NOT_ACTED_ON:
                _record_moved(session, incident, unit_before, best[incident_id], actor, summary)
            else:
                _keep_with_the_team(session, incident, assignment_before, best[incident_id], actor)
    session.flush()  # locations and times of the new incidents, which the repeat test reads back
    _flag_repeats(session, [(i, best[i.id]) for i, _ in created], repeat_rule or RepeatSiteRule(), actor, summary)
    summary.new = len(fresh)
    summary.updated_incidents = sorted(set(touched) - new_ids - set(summary.merged_incidents))
    session.flush()
    return summary


def _unit_code(region: shapely.Geometry, levels: dict[RegionLevel, RegionIndex]) -> str | None:
    """The unit a region is assigned to at the finest loaded level (township, else county), as
    :func:`assign_incident` assigns an incident located by it."""
    for level in ASSIGNED_LEVELS:
        index = levels.get(level)
        if index is not None:
            primary = index.assign_footprint(region).primary
            return primary.code if primary is not None else None
    return None


def _links_within_units(
    fresh: list[ObservationIn], existing: Sequence[Located], levels: dict[RegionLevel, RegionIndex]
) -> list[ObservationIn]:
    """The batch with each ``same_fire_as`` link kept only where the two observations lie in the same unit.

    Why: the link (the clustering's repeat: the next pass a few hundred metres off) joins footprints that do not
    touch, so it reached across township borders; the next pass's pixel, as precise as the first and often hotter,
    then became the incident's location and moved the incident, mid-response, to the other township, whose team
    got a new-fire alert for a fire the first team had acknowledged and could no longer see. Across a border the
    pixel is fused as before the link existed (by overlap), and opens an incident in its own township otherwise."""
    if not levels or not any(obs.same_fire_as for obs in fresh):
        return fresh
    regions = {e.source_key: e.region for e in existing if e.source_key}
    regions.update((obs.source_key, obs.region) for obs in fresh)
    units: dict[str, str | None] = {}

    def unit(key: str) -> str | None:
        if key not in units:
            units[key] = _unit_code(regions[key], levels)
        return units[key]

    out = []
    for obs in fresh:
        if obs.same_fire_as:
            kept = tuple(k for k in obs.same_fire_as if k in regions and unit(k) == unit(obs.source_key))
            if kept != obs.same_fire_as:
                obs = replace(obs, same_fire_as=kept)
        out.append(obs)
    return out


def _unit_of(incident: Incident) -> dict[str, str | None]:
    return {"township": incident.township_code, "county": incident.county_code}


#: The columns :func:`assign_incident` writes.
_ASSIGNMENT_FIELDS = (
    "township_code",
    "township_name",
    "county_code",
    "county_name",
    "assignment_status",
    "assignment_certainty",
    "assignment_candidates",
)


def _assignment_of(incident: Incident) -> dict[str, Any]:
    return {name: getattr(incident, name) for name in _ASSIGNMENT_FIELDS}


def _keep_with_the_team(
    session: Session, incident: Incident, assignment: dict[str, Any], best: ObservationIn, actor: Principal
) -> None:
    """A new observation places a fire a team is already dealing with in another unit: the incident stays with
    that team's unit, and the record says where the observation put it, for a supervisor to reassign if it is
    right.

    Why: moved automatically, the team on its way lost the fire from its phone (its unit's incidents only) and
    the other township got a "new fire" alert for a fire already acknowledged — for what is as often a pixel a few
    hundred metres off as a better fix.
    """
    placed_in = _unit_of(incident)
    for name, value in assignment.items():
        setattr(incident, name, value)
    record_event(
        session,
        incident,
        actor,
        "located_other",
        note=(
            f"a {best.kind.value} observation places the fire in {placed_in['township'] or placed_in['county']}; "
            "kept with the team dealing with it (a supervisor may reassign)"
        ),
        # The source's kind too, for the dashboard's words (the note is the English original).
        data={
            "unit": _unit_of(incident),
            "placed_in": placed_in,
            "source": best.kind.value,
            "source_key": best.source_key,
        },
    )


def _record_moved(
    session: Session,
    incident: Incident,
    unit_before: dict[str, str | None],
    best: ObservationIn,
    actor: Principal,
    summary: IngestSummary,
) -> None:
    """A new observation placed a fire nobody has acknowledged yet in another unit (a drone's fix 150 m across the
    township border from the satellite pixel): the change is recorded as an automatic reassignment, and the
    incident is listed in ``summary.reassigned_incidents`` so that the new unit's team is alerted
    (``service.flows``). An acknowledged one stays with its team (:func:`_keep_with_the_team`).

    Why: the unit changed silently; the team that now answers for the fire, and alone can see it, was never told,
    and the record did not say why the first team lost it."""
    unit_after = _unit_of(incident)
    record_event(
        session,
        incident,
        actor,
        "reassigned",
        note=f"located by a {best.kind.value} observation in another unit",
        data={
            "from": unit_before,
            "to": unit_after,
            "automatic": True,
            "source": best.kind.value,  # for the dashboard's words, as located_other's
            "source_key": best.source_key,
        },
    )
    summary.reassigned_incidents.append(incident.id)


def record_held(session: Session, observations: Sequence[ObservationIn], summary: IngestSummary) -> None:
    """Store observations that screening held back (no incident, no alert), keeping their decision."""
    for obs in _new_only(session, observations, summary):
        session.add(_row(obs, None))
        status = str(obs.details.get("screening", {}).get("status", "held"))
        count_held(summary, status, 1)
    session.flush()


def count_held(summary: IngestSummary, status: str, count: int) -> None:
    """Count ``count`` screened-out observations of ``status`` (none: the summary stays without the status)."""
    if count:
        summary.held[status] = summary.held.get(status, 0) + count


def _row(obs: ObservationIn, incident_id: int | None) -> Observation:
    return Observation(
        kind=obs.kind.value,
        source_key=obs.source_key,
        observed_at=obs.observed_at,
        latitude=obs.latitude,
        longitude=obs.longitude,
        region_wkb=shapely.to_wkb(obs.region),
        confidence=obs.confidence,
        frp_mw=obs.frp_mw,
        details=json.dumps(obs.details, ensure_ascii=False, default=str),
        incident_id=incident_id,
    )


def stored_observation(session: Session, observation: ObservationIn) -> Observation | None:
    """The stored row of an observation (by its kind and natural key), once ingested."""
    return session.scalar(
        select(Observation).where(
            Observation.kind == observation.kind.value, Observation.source_key == observation.source_key
        )
    )


def stored_keys(session: Session, kind: ObservationKind, keys: Sequence[str]) -> set[str]:
    """Which of these natural keys of ``kind`` are stored already (in chunks: a FIRMS day has 16,000 rows)."""
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        found.update(
            session.scalars(
                select(Observation.source_key).where(
                    Observation.kind == kind.value, Observation.source_key.in_(keys[start : start + 500])
                )
            )
        )
    return found


def _new_only(session: Session, observations: Sequence[ObservationIn], summary: IngestSummary) -> list[ObservationIn]:
    """Drop observations already stored (or repeated within the batch), counting them as duplicates."""
    keys = [(o.kind.value, o.source_key) for o in observations]
    seen: set[tuple[str, str]] = set()
    for kind in {k for k, _ in keys}:
        wanted = [key for k, key in keys if k == kind]
        seen.update((kind, key) for key in stored_keys(session, ObservationKind(kind), wanted))
    fresh = []
    for obs, key in zip(observations, keys, strict=True):
        if key in seen:
            summary.duplicates += 1
            continue
        seen.add(key)
        fresh.append(obs)
    return fresh


def _merge(session: Session, other: Incident, *, into: Incident, actor: Principal, summary: IngestSummary) -> None:
    """Move a not-yet-acted-on incident's observations into ``into`` and close it as a duplicate."""
    if IncidentState(other.state) not in _NOT_ACTED_ON:
        return
    for row in session.scalars(select(Observation).where(Observation.incident_id == other.id)):
        row.incident_id = into.id
    previous = other.state
    other.state = IncidentState.FALSE_ALARM.value
    other.false_alarm_at = utcnow()
    other.false_alarm_reason = FalseAlarmReason.DUPLICATE.value
    record_event(
        session,
        other,
        actor,
        "transition",
        from_state=previous,
        to_state=other.state,
        note=f"merged into incident {into.id}: the same fire",
        data={"merged_into": into.id},
    )
    record_event(session, into, actor, "merged", note=f"incident {other.id} merged in", data={"merged": other.id})
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
    open_only: bool = False,
    limit: int = 200,
    offset: int = 0,
    before_id: int | None = None,
) -> list[Incident]:
    """Incidents within the principal's scope, newest first by id; ``open_only``: those the township still has to
    act on (:data:`OPEN_STATES`), filtered here so that a page of them is never cut short by closed ones.

    The order is the id's alone, which never changes and is unique, so that a walk that goes on from the last id it
    was given (``before_id``, keyset paging) returns every incident that existed when it started and still matches,
    once, however incidents are created, observed again or moved between requests. (``last_observed_at`` moves with
    every new observation: an incident not yet read would jump ahead of the walk and be missed.)"""
    query = select(Incident).where(principal.incident_filter())
    if township:
        query = query.where(Incident.township_code == township)
    if county:
        query = query.where(Incident.county_code == county)
    if state:
        query = query.where(Incident.state == state.value)
    if open_only:
        query = query.where(Incident.state.in_(sorted(s.value for s in OPEN_STATES)))
    if before_id is not None:
        query = query.where(Incident.id < before_id)
    return list(session.scalars(query.order_by(Incident.id.desc()).limit(limit).offset(offset)))


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


#: What a feedback (反馈) may hold: the cause, the burned area (m²), the responsible person (责任人), the photos taken
#: on site (sha256 of photos uploaded for this incident), the measures taken (处置措施) and the penalty (处罚).
FEEDBACK_FIELDS = ("cause", "burned_area_m2", "responsible_party", "photos", "measures", "penalty")
_FEEDBACK_TEXT = ("cause", "responsible_party", "measures", "penalty")
_FEEDBACK_TEXT_MAX = 1000
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_area(value: Any) -> bool:
    """A finite number ≥ 0 (not a boolean; an integer too large for a float is not an area either)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value)) and value >= 0
    except OverflowError:
        return False


def check_feedback(session: Session, incident: Incident, feedback: dict[str, Any] | None) -> dict[str, Any]:
    """The feedback, validated (:class:`InputError` naming the field otherwise).

    Why each check: the burned area decides the ×2 above 300 m² in the scores, and an area sent as text ("300亩"),
    negative or infinite used to be stored and then silently ignored (no doubling); a cause or responsible party
    sent as a list or object was stored as such; photos cited by hash were never checked, so a feedback could cite
    photos nobody uploaded for this fire (the on-site photo with its GPS and time is what the county verifies).
    """
    if not feedback or not isinstance(feedback.get("cause"), str) or not feedback["cause"].strip():
        raise InputError(
            "feedback needs at least a cause (and burned_area_m2, responsible_party, photos, measures, penalty)",
            field="feedback",
        )
    unknown = set(feedback) - set(FEEDBACK_FIELDS)
    if unknown:
        raise InputError(f"unknown feedback fields: {', '.join(sorted(unknown))}", field="feedback")
    for name in _FEEDBACK_TEXT:
        value = feedback.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InputError(f"feedback.{name} must be text", field="feedback")
        if len(value) > _FEEDBACK_TEXT_MAX:
            raise InputError(f"feedback.{name} is longer than {_FEEDBACK_TEXT_MAX} characters", field="feedback")
    area = feedback.get("burned_area_m2")
    if area is not None and not _is_area(area):
        raise InputError("feedback.burned_area_m2 must be a number of square metres, 0 or more", field="feedback")
    photos = feedback.get("photos")
    if photos is not None:
        if not isinstance(photos, list) or not all(isinstance(p, str) and _SHA256.fullmatch(p) for p in photos):
            raise InputError("feedback.photos must be a list of sha256 hashes of uploaded photos", field="feedback")
        uploaded = set(
            session.scalars(
                select(Evidence.sha256).where(Evidence.incident_id == incident.id, Evidence.sha256.in_(set(photos)))
            )
        )
        missing = [p for p in photos if p not in uploaded]
        if missing:
            raise InputError(
                f"feedback.photos: {', '.join(p[:12] + '…' for p in missing)} not uploaded for incident {incident.id}",
                field="feedback",
            )
    return feedback


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
    expected_state: IncidentState | None = None,
    position: dict[str, Any] | None = None,
    at: datetime | None = None,
    record: dict[str, Any] | None = None,
) -> Incident:
    """Move an incident to ``target`` if the lifecycle and the actor's role allow it; record the event.

    ``expected_state``: the state the caller saw; when the incident has moved since (another phone acted), the
    move is refused (:class:`ConflictError`) even where it would be legal from the new state.

    ``position``: what the actor's phone reported, checked and measured against the fire
    (``service.evidence.service.position_record``), stored in the event's data. An ``on_site`` move without one is
    recorded with ``"position": null``, so that a declaration nobody located is visible (虚假到场).

    ``record``: what the service itself says about a move it makes, kept in the event's data beside the rest (an
    escalation because the township could not be reached names the unit and the alerts that failed)."""
    current = IncidentState(incident.state)
    if expected_state is not None and expected_state is not current:
        raise ConflictError(
            f"the incident is {current.value} now, not {expected_state.value} as you saw it: reload before acting"
        )
    problem = check_transition(current, target, actor.role)
    if problem:
        raise ConflictError(problem)
    if target is IncidentState.FALSE_ALARM and reason is None:
        raise InputError(
            "a false alarm needs a reason: " + ", ".join(r.value for r in FalseAlarmReason), field="reason"
        )
    # A field of another move is refused, not kept: a reason sent with "acknowledged" was written into that event
    # (an acknowledgement reading "reason: duplicate"), and a feedback sent with any other move was dropped.
    if reason is not None and target is not IncidentState.FALSE_ALARM:
        raise InputError(f"a reason goes with a move to false_alarm, not to {target.value}", field="reason")
    if feedback is not None and target is not IncidentState.FEEDBACK:
        raise InputError(f"a feedback goes with a move to feedback, not to {target.value}", field="feedback")
    if target is IncidentState.FEEDBACK:
        incident.feedback = json.dumps(check_feedback(session, incident, feedback), ensure_ascii=False)
    now = at or utcnow()
    incident.state = target.value
    setattr(incident, f"{target.value}_at", now)
    if target is IncidentState.FALSE_ALARM:
        incident.false_alarm_reason = reason.value if reason else None
    data: dict[str, Any] = {"reason": reason.value} if reason else ({"feedback": feedback} if feedback else {})
    if position is not None or target is IncidentState.ON_SITE:
        data["position"] = position
    if record:
        data.update(record)
    record_event(
        session,
        incident,
        actor,
        "transition",
        from_state=current.value,
        to_state=target.value,
        note=note,
        evidence_sha256=evidence_sha256,
        data=data,
        at=now,
    )
    session.flush()
    return incident


def _unit_or_none(session: Session, level: RegionLevel, code: str) -> RegionUnit | None:
    try:
        return get_region(session, level, code)[1]
    except NotFoundError:
        return None


def _own_county(session: Session, township: RegionUnit | None) -> RegionUnit | None:
    """The loaded county a township belongs to; None when its parent is not a loaded county."""
    if township is None or not township.parent_code:
        return None
    return _unit_or_none(session, RegionLevel.COUNTY, township.parent_code)


def _unit_or_input_error(session: Session, level: RegionLevel, code: str | None, name: str) -> RegionUnit | None:
    if not code:
        return None
    unit = _unit_or_none(session, level, code)
    if unit is None:
        raise InputError(f"no {level.value} with code {code}", field=name)
    return unit


def reassign(
    session: Session,
    incident: Incident,
    actor: Principal,
    *,
    township_code: str | None,
    county_code: str | None,
    note: str,
) -> Incident:
    """A supervisor's manual assignment (audited with the previous assignment).

    Refused (:class:`InputError` naming the field, nothing changed): no unit named; a code that is not a loaded
    township or county (a code in the request body, not the resource asked for: it was a 404); a township with a
    county that is not its own, which neither county's supervisors could follow (the township's own would not
    see a fire in their township, the other would see one outside their county), or another county alone for an
    incident whose township belongs to its own.

    Naming the unit the incident is already in confirms an automatic assignment (near a boundary, or to the nearest
    unit): it becomes an assignment by hand, recorded as a ``reassigned`` event that is no move. Naming it again
    once it is assigned there by hand changes nothing and is refused (:class:`ConflictError`, nothing recorded): it
    used to append another ``reassigned`` event each time."""
    if not note.strip():
        raise InputError("a reassignment needs a note saying why", field="note")
    if not township_code and not county_code:
        raise InputError("name the township_code or the county_code to assign the incident to", field="township_code")
    previous = _unit_of(incident)
    township = _unit_or_input_error(session, RegionLevel.TOWNSHIP, township_code, "township_code")
    county = _unit_or_input_error(session, RegionLevel.COUNTY, county_code, "county_code")
    if township is not None:
        own = _own_county(session, township)
        if own is not None and county is not None and county.code != own.code:
            raise InputError(
                f"township {township.code} belongs to county {own.code}, not {county.code}", field="county_code"
            )
        county = county or own  # the township's own county, or its supervisors cannot see it
    elif county is not None and incident.township_code:
        own = _own_county(session, _unit_or_none(session, RegionLevel.TOWNSHIP, incident.township_code))
        if own is not None and own.code != county.code:
            raise InputError(
                f"the incident's township {incident.township_code} belongs to county {own.code}: name a township "
                f"of county {county.code} too",
                field="township_code",
            )
    # A parent that is not a loaded county (a township list without counties) keeps the incident's county.
    township_after = township.code if township is not None else incident.township_code
    county_after = county.code if county is not None else incident.county_code
    unchanged = (township_after, county_after) == (incident.township_code, incident.county_code)
    if unchanged and incident.assignment_status == MANUAL_ASSIGNMENT:
        unit = f"{incident.township_name or incident.county_name} ({incident.township_code or incident.county_code})"
        raise ConflictError(f"the incident is already assigned to {unit} by hand: name another unit to move it")
    if township is not None:
        incident.township_code, incident.township_name = township.code, township.name
    if county is not None:
        incident.county_code, incident.county_name = county.code, county.name
    incident.assignment_status = MANUAL_ASSIGNMENT
    incident.assignment_certainty = 1.0
    record_event(
        session,
        incident,
        actor,
        "reassigned",
        note=note,
        data={"from": previous, "to": _unit_of(incident)},
    )
    session.flush()
    return incident
