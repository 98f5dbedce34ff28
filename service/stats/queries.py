"""Loading the typed records from the database: a handful of queries, no computation.

Fire points belong to a period by their **first observation** (when the fire was first seen), in the period's
local-day boundaries. Their transitions come from the append-only event record, not from the incident's
per-state timestamps, which keep only the latest entry into each state.

A fire point's sightings are in the order the service **learnt of them** (``observations.received_at``, ties by
``observed_at``, then id), not by when each was observed: who found the fire first (self-found, 自查自报, or
unreported, 漏报: :mod:`service.stats.scoring`) is a question of who told the service first. A satellite pass
observed at 10:30 but published by FIRMS, or back-filled, at 13:30 did not find the fire before the township
patrol's report of 11:00, which had already brought it in; by observation time it would take the township's
self-found credit away and charge it with not reporting a fire it reported.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import shapely
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from service.auth.tables import User
from service.incidents.fusion import ObservationKind
from service.incidents.moves import moves_of
from service.incidents.states import FalseAlarmReason, IncidentState, Role
from service.incidents.tables import Incident, IncidentEvent, Observation
from service.regions.tables import Region
from service.regions.types import AssignStatus, RegionLevel
from service.stats.lifecycle import CLAIMED_DUPLICATE
from service.stats.periods import Period
from service.stats.records import FirePoint, Sighting, Transition, Unit

_CHUNK = 500  # ids per IN (…) list: well inside every driver's parameter limit
_Id = TypeVar("_Id", int, str)


def _chunks(ids: Sequence[_Id]) -> Iterable[list[_Id]]:
    for start in range(0, len(ids), _CHUNK):
        yield list(ids[start : start + _CHUNK])


def load_units(session: Session, levels: Iterable[RegionLevel] | None = None, *, geometry: bool = False) -> list[Unit]:
    """Units (of ``levels``, or all), ordered by level and code; boundaries only when asked for (maps)."""
    columns = [Region.code, Region.name, Region.level, Region.parent_code, Region.area_ha, Region.cropland_ha]
    query = select(*columns, Region.geometry_wkb) if geometry else select(*columns)
    if levels is not None:
        query = query.where(Region.level.in_([level.value for level in levels]))
    units = []
    for row in session.execute(query.order_by(Region.level, Region.code)):
        units.append(
            Unit(
                code=row.code,
                name=row.name,
                level=RegionLevel(row.level),
                parent_code=row.parent_code,
                area_ha=row.area_ha,
                cropland_ha=row.cropland_ha,
                geometry=shapely.from_wkb(row.geometry_wkb) if geometry else None,
            )
        )
    return units


def _json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _float(value: Any) -> float | None:
    """A finite number from a stored feedback (records written before feedback was validated may hold text, an
    integer too large for a float, or Infinity: read as unknown, not a crash or an infinite area)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if value is not None and value != "" else None
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is not None and math.isfinite(number) else None


def _reason(event: IncidentEvent, incident: Incident) -> str | None:
    if event.to_state != IncidentState.FALSE_ALARM.value:
        return None
    data = _json(event.data)
    if "merged_into" in data:  # fusion merged it into another incident: the same fire
        return FalseAlarmReason.DUPLICATE.value
    reason = data.get("reason")
    reason = str(reason) if reason else incident.false_alarm_reason
    # A township team's "duplicate" is a claim, not a merge: it stays in the statistics like any false alarm (it
    # had taken the incident out of them, response times and deductions included, at the team's own word). The
    # county's supervisors and admins, who judge the township, may still declare one.
    if reason == FalseAlarmReason.DUPLICATE.value and event.actor_role == Role.PATROL.value:
        return CLAIMED_DUPLICATE
    return reason


def _position(event: IncidentEvent) -> str | None:
    """How the position sent with a move compares with the fire (see :class:`Transition`)."""
    data = _json(event.data)
    if "position" not in data:
        return None
    position = data["position"]
    if not isinstance(position, dict):
        return "missing"
    if position.get("stale") is True:  # too old to say where the actor was at the move
        return "stale"
    if position.get("far_from_fire") is True:
        return "far"
    return "imprecise" if position.get("imprecise") is True else "near"


#: Below this share of the location's footprint outside the unit, the footprint is the unit's whole (rounding of
#: the equal-area shares; the same bound service.incidents.service.assign_incident drops an "outside" share under).
_WHOLE_SHARE_MARGIN = 1e-6


def _unit_share(incident: Incident) -> float | None:
    """The unit's share of the fire's footprint when it is not the whole (see :attr:`FirePoint.unit_share`): the
    stored certainty is the chosen unit's share for an inside or nearest assignment, 1.0 for a manual one (no
    geometry decided it), and 1.0 for a point outside every unit (no area to share), which says nothing either."""
    if incident.assignment_status not in (AssignStatus.INSIDE.value, AssignStatus.NEAREST.value):
        return None
    share = _float(incident.assignment_certainty)
    if share is None or share >= 1.0 - _WHOLE_SHARE_MARGIN:
        return None
    return max(0.0, share)


def _edge_distance(incident: Incident) -> float | None:
    """How far outside the imported units an edge (``nearest``) fire point lies: the ``distance_m`` that
    :func:`service.incidents.service.assign_incident` stores on the chosen unit's candidate (None for other
    assignments, and for incidents assigned before the distance was stored)."""
    if incident.assignment_status != AssignStatus.NEAREST.value:
        return None
    try:
        candidates = json.loads(incident.assignment_candidates or "[]")
    except ValueError:
        return None
    codes = {incident.township_code, incident.county_code} - {None}
    for candidate in candidates if isinstance(candidates, list) else []:
        if isinstance(candidate, dict) and candidate.get("code") in codes and "distance_m" in candidate:
            return _float(candidate["distance_m"])
    return None


def responsible_unit(incident: Incident) -> str | None:
    """The unit whose response the fire judges: its township, or its county where it has none (only counties
    loaded, or a fire outside every township)."""
    return incident.township_code or incident.county_code


def _user_units(session: Session, usernames: set[str]) -> dict[str, str | None]:
    """The unit each of these users answers for (users are never deleted, and their unit is set at creation)."""
    units: dict[str, str | None] = {}
    for chunk in _chunks(sorted(usernames)):
        for username, unit_code in session.execute(
            select(User.username, User.unit_code).where(User.username.in_(chunk))
        ):
            units[username] = unit_code
    return units


def _unreached(event: IncidentEvent, incident: Incident) -> bool:
    """Whether an event's record says the fire's responsible unit could not be reached (``{"unreachable": {"unit":
    …}}``, written by ``service.alerts.outbox.escalate_as_unreachable``; see :attr:`Transition.unreachable`)."""
    unreachable = _json(event.data).get("unreachable")
    unit = unreachable.get("unit") if isinstance(unreachable, dict) else None
    return unit is not None and unit == responsible_unit(incident)


def _actor_in_unit(event: IncidentEvent, incident: Incident, units: dict[str, str | None]) -> bool | None:
    """Whether the event's actor answers for the fire's responsible unit (see :attr:`Transition.actor_in_unit`)."""
    if event.actor not in units:
        return None  # the service itself, or an actor who is not a user: the record cannot tell
    unit = units[event.actor]
    return unit is not None and unit == responsible_unit(incident)


def load_fire_points(session: Session, period: Period, *, where: ColumnElement[bool] | None = None) -> list[FirePoint]:
    """Every incident first observed in ``period`` (and matching ``where``, e.g. a caller's scope), by id."""
    query = select(Incident).where(Incident.first_observed_at >= period.start, Incident.first_observed_at < period.end)
    if where is not None:
        query = query.where(where)
    incidents = list(session.scalars(query.order_by(Incident.id)))
    ids = [i.id for i in incidents]
    by_id = {i.id: i for i in incidents}
    transitions: dict[int, list[Transition]] = {i: [] for i in ids}
    sightings: dict[int, list[Sighting]] = {i: [] for i in ids}
    moves = moves_of(session, ids)  # they restart the township's clocks (FirePoint.moves), as the timer's
    # The acting users' units (absent: not a user), each looked up once: the same few teams act in every chunk.
    units: dict[str, str | None] = {}
    looked_up: set[str] = set()
    for chunk in _chunks(ids):
        events = [
            (event, IncidentState(event.to_state))
            for event in session.scalars(
                select(IncidentEvent)
                .where(IncidentEvent.incident_id.in_(chunk), IncidentEvent.kind == "transition")
                .order_by(IncidentEvent.id)
            )
            if event.to_state is not None
        ]
        actors = {event.actor for event, _ in events} - looked_up
        units |= _user_units(session, actors)
        looked_up |= actors
        for event, to_state in events:
            incident = by_id[event.incident_id]
            transitions[event.incident_id].append(
                Transition(
                    at=event.at,
                    to_state=to_state,
                    from_state=IncidentState(event.from_state) if event.from_state else None,
                    reason=_reason(event, incident),
                    actor_role=event.actor_role,
                    position=_position(event),
                    actor_in_unit=_actor_in_unit(event, incident, units),
                    unreachable=to_state is IncidentState.ESCALATED and _unreached(event, incident),
                )
            )
        for incident_id, kind, observed_at, details in session.execute(
            select(Observation.incident_id, Observation.kind, Observation.observed_at, Observation.details)
            .where(Observation.incident_id.in_(chunk))
            .order_by(Observation.received_at, Observation.observed_at, Observation.id)  # as learnt (module docstring)
        ):
            if incident_id is None:
                continue
            reporter = _json(details).get("reporter_unit")
            sightings[incident_id].append(
                Sighting(ObservationKind(kind), observed_at, str(reporter) if reporter else None)
            )
    return [
        FirePoint(
            id=i.id,
            latitude=i.latitude,
            longitude=i.longitude,
            township_code=i.township_code,
            township_name=i.township_name,
            county_code=i.county_code,
            county_name=i.county_name,
            first_observed_at=i.first_observed_at,
            state=IncidentState(i.state),
            sightings=tuple(sightings[i.id]),
            transitions=tuple(transitions[i.id]),
            burned_area_m2=_float(_json(i.feedback).get("burned_area_m2")),
            repeat_of=i.repeat_of_incident_id,
            moves=tuple(moves.get(i.id, ())),
            assignment=i.assignment_status,
            unit_share=_unit_share(i),
            edge_distance_m=_edge_distance(i),
        )
        for i in incidents
    ]
