"""Flows that span domains: what happens, in one transaction, when observations arrive or an incident moves."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from satellite.himawari import HimawariHotspot
from satellite.hotspot import Hotspot
from satellite.screening import ScreeningStatus
from service.alerts.outbox import enqueue, enqueue_many
from service.alerts.tables import AlertKind
from service.auth.service import Principal
from service.config import Settings
from service.incidents import service as incidents
from service.incidents.fusion import ObservationIn
from service.incidents.sources import fusion_windows, hotspot_observation
from service.incidents.tables import Incident
from service.regions.service import RegionIndexCache
from service.screening import build_screener, fire_points


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
    if summary.new_incidents:
        created = session.scalars(select(Incident).where(Incident.id.in_(summary.new_incidents))).all()
        enqueue_many(session, created, AlertKind.NEW)
    return summary


def ingest_hotspots(
    session: Session,
    hotspots: Sequence[Hotspot | HimawariHotspot],
    *,
    indexes: RegionIndexCache,
    settings: Settings,
    actor: Principal,
) -> incidents.IngestSummary:
    """Screen satellite hotspots, then fuse the accepted ones; the others are recorded with their decision."""
    decisions = build_screener(session, settings, hotspots).screen(hotspots)
    passed = [d for d in decisions if d.status is ScreeningStatus.ACCEPTED]
    points = fire_points(session, [d.hotspot for d in passed], settings)
    accepted = [hotspot_observation(d.hotspot, d, points.get(d.hotspot.key)) for d in passed]
    held = [hotspot_observation(d.hotspot, d) for d in decisions if d.status is not ScreeningStatus.ACCEPTED]
    summary = ingest_observations(session, accepted, indexes=indexes, settings=settings, actor=actor)
    incidents.record_held(session, held, summary)
    summary.received = len(hotspots)
    summary.fire_points = sum(1 for p in points.values() if p["representative"] and not p["repeat_of"])
    summary.repeats = sum(1 for p in points.values() if p["representative"] and p["repeat_of"])
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
