"""Flows that span domains: what happens, in one transaction, when observations arrive or an incident moves."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from service.alerts.outbox import enqueue
from service.alerts.tables import AlertKind
from service.auth.service import Principal
from service.config import Settings
from service.incidents import service as incidents
from service.incidents.fusion import ObservationIn
from service.incidents.sources import fusion_windows
from service.incidents.tables import Incident
from service.regions.service import RegionIndexCache


def ingest_observations(
    session: Session,
    observations: Sequence[ObservationIn],
    *,
    indexes: RegionIndexCache,
    settings: Settings,
    actor: Principal,
) -> incidents.IngestSummary:
    """Fuse observations into incidents and queue the township alerts for new incidents (same transaction)."""
    summary = incidents.ingest(
        session, observations, indexes=indexes, windows=fusion_windows(settings.incidents), actor=actor
    )
    for incident_id in summary.new_incidents:
        enqueue(session, session.get_one(Incident, incident_id), AlertKind.NEW)
    return summary


def reassign_incident(
    session: Session,
    incident: Incident,
    actor: Principal,
    *,
    township_code: str | None,
    county_code: str | None,
    note: str,
) -> Incident:
    """A supervisor's reassignment; the new unit's team is alerted."""
    incidents.reassign(session, incident, actor, township_code=township_code, county_code=county_code, note=note)
    enqueue(session, incident, AlertKind.NEW)
    return incident
