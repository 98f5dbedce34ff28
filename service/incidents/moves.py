"""When incidents moved to another unit, read from their ``reassigned`` events (one loader for every reader).

The escalation timer (``service.alerts.escalation.moved_at``, the latest move), the incident API's ``clock_from``
(through it) and the statistics (``service.stats.queries``, every move) restart a township's clocks at a move; they
read the moves here so that all three count the same events.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.incidents.tables import IncidentEvent

_CHUNK = 500  # ids per IN (…) list: well inside every driver's parameter limit


def changed_unit(data: str | None) -> bool:
    """Whether a ``reassigned`` event's data (its JSON text) records a move to another unit (pure)."""
    try:
        change = json.loads(data or "{}")
    except ValueError:
        return False
    return isinstance(change, dict) and change.get("from") != change.get("to")


def moves_of(session: Session, incident_ids: Sequence[int]) -> dict[int, list[datetime]]:
    """When each of these incidents moved to another unit, in time order, by id (absent: never moved).

    A move is a ``reassigned`` event whose unit changed (:func:`changed_unit`): the automatic one when a more
    precise fix places a fire nobody acknowledged in another unit, and a supervisor's. A supervisor's reassignment
    to the unit the fire is already in (a confirmation) is no move: the same team keeps the same clock."""
    moves: dict[int, list[datetime]] = {}
    ids = sorted(set(incident_ids))
    for start in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(IncidentEvent.incident_id, IncidentEvent.at, IncidentEvent.data)
            .where(IncidentEvent.kind == "reassigned", IncidentEvent.incident_id.in_(ids[start : start + _CHUNK]))
            .order_by(IncidentEvent.at, IncidentEvent.id)
        )
        for incident_id, at, data in rows:
            if changed_unit(data):
                moves.setdefault(incident_id, []).append(at)
    return moves
