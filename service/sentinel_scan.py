"""Sentinel-2 / Landsat / SLSTR scenes over the deployment's area, scanned by Sentinel Hub and ingested as hotspots.

``strawfire sentinel scan`` runs :func:`scan_and_ingest`: a Catalog search of one collection over the area for the
last days, one Process request per scene (:mod:`satellite.sentinel`), and every fire point found, as a
:class:`~satellite.sentinel.SceneDetection`, screened, clustered and fused into incidents like a FIRMS hotspot
(:func:`ingest_scene_detections`); the held ones are stored with their decision. A scene scanned again adds nothing
(the keys are per scene and pixel).

Credentials and endpoints come from the ``sentinelhub.*`` settings (``STRAWFIRE_SENTINELHUB__*`` variables, then the
settings file, then the defaults: :mod:`service.config`). The client secret stays a ``SecretStr`` until the
sentinelhub-py configuration is built, and every error raised here is scrubbed of it (:mod:`satellite.sentinel`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import shapely
from sqlalchemy.orm import Session, sessionmaker

from satellite.errors import SentinelHubRequestError
from satellite.screening import ScreeningDecision
from satellite.sentinel import Collection, SceneDetection, SentinelHubClient
from satellite.sentinel import SentinelHubSettings as ClientSettings
from service.auth.service import Principal
from service.config import Settings
from service.db import transaction
from service.errors import ConfigError
from service.flows import ingest_screened
from service.incidents import service as incidents
from service.incidents.fusion import ObservationIn, ObservationKind
from service.incidents.sources import fire_point_link, screening_record
from service.regions.service import RegionIndexCache, list_regions


def client_settings(settings: Settings) -> ClientSettings:
    """The Sentinel Hub client's settings from ``sentinelhub.*``; a missing or malformed one is a ConfigError."""
    config = settings.sentinelhub
    if not config.client_id or config.client_secret is None:
        raise ConfigError(
            "sentinelhub.client_id and sentinelhub.client_secret are not set "
            "(STRAWFIRE_SENTINELHUB__CLIENT_ID, STRAWFIRE_SENTINELHUB__CLIENT_SECRET)"
        )
    try:
        return ClientSettings.for_base_url(
            config.base_url,
            client_id=config.client_id,
            client_secret=config.client_secret,
            token_url=config.token_url,
            timeout_s=config.timeout_s,
            max_attempts=config.max_attempts,
            retry_sleep_s=config.retry_sleep_s,
            rate_limit_attempts=config.rate_limit_attempts,
            rate_limit_budget_s=config.rate_limit_budget_s,
        )
    except SentinelHubRequestError as exc:  # its messages name the setting, never the secret
        raise ConfigError(f"sentinelhub: {exc}") from None


def scan_bbox(session: Session, settings: Settings) -> tuple[float, float, float, float]:
    """The configured ``sentinelhub.bbox``, or the bounds of the imported regions."""
    box = settings.sentinelhub.bbox
    if box:
        if len(box) != 4 or not (-180 <= box[0] < box[2] <= 180 and -90 <= box[1] < box[3] <= 90):
            raise ConfigError("sentinelhub.bbox needs four numbers: west, south, east, north (WGS-84 degrees)")
        return box[0], box[1], box[2], box[3]
    rows = list_regions(session)
    if not rows:
        raise ConfigError("no regions imported and no sentinelhub.bbox configured: nothing to scan")
    west, south, east, north = shapely.total_bounds([shapely.from_wkb(r.geometry_wkb) for r in rows])
    return float(west), float(south), float(east), float(north)


@dataclass(slots=True)
class ScanSummary:
    """One scan: the scenes searched and scanned, the fire points found, what the ingest did."""

    scenes: list[str] = field(default_factory=list)
    fire_points: int = 0
    new: int = 0
    duplicates: int = 0
    held: dict[str, int] = field(default_factory=dict)
    new_incidents: list[int] = field(default_factory=list)


def scene_observation(
    detection: SceneDetection, decision: ScreeningDecision[Any], fire_point: dict[str, Any] | None = None
) -> ObservationIn:
    """A scene fire point as a satellite observation: its footprint square is the uncertainty region, the
    screening decision and the raster rules' figures travel in ``details``."""
    details: dict[str, Any] = {
        "product": detection.collection.value,
        "scene_id": detection.scene_id,
        "instrument": detection.instrument,
        "satellite": detection.satellite,
        "confidence_raw": detection.confidence_raw,
        "scan_km": detection.scan_km,
        "track_km": detection.track_km,
        "pixel_count": detection.pixel_count,
        "area_m2": detection.area_m2,
        "max_value": detection.max_value,
        "value_unit": detection.value_unit,
        "screening": screening_record(decision),
    }
    same_fire_as = fire_point_link(details, fire_point)  # joined to an earlier pass's fire, as FIRMS pixels are
    return ObservationIn(
        kind=ObservationKind.SATELLITE,
        source_key=detection.key,
        observed_at=detection.acq_utc,
        latitude=detection.latitude,
        longitude=detection.longitude,
        region=detection.footprint(),
        confidence=detection.confidence,
        details=details,
        same_fire_as=same_fire_as,
    )


def ingest_scene_detections(
    session: Session,
    detections: Sequence[SceneDetection],
    *,
    indexes: RegionIndexCache,
    settings: Settings,
    actor: Principal,
) -> incidents.IngestSummary:
    """Scene fire points through the same screening, clustering and fusion as FIRMS and Himawari hotspots
    (:func:`service.flows.ingest_screened`)."""
    return ingest_screened(session, detections, scene_observation, indexes=indexes, settings=settings, actor=actor)


def scan_and_ingest(
    factory: sessionmaker[Session],
    settings: Settings,
    indexes: RegionIndexCache,
    *,
    collection: Collection | str,
    start: datetime,
    end: datetime,
    actor: Principal,
) -> ScanSummary:
    """Search ``collection`` over the area in [start, end], scan every scene (oldest first), ingest each scene's
    fire points as one transaction. A scene that fails ends the scan with its error (the scenes before it are in)."""
    client_config = client_settings(settings)
    with factory() as session:
        area = scan_bbox(session, settings)
    client = SentinelHubClient(client_config)
    scenes = client.search(collection, area, start, end, max_cloud_cover=settings.sentinelhub.max_cloud_cover)
    summary = ScanSummary()
    for scene in scenes:
        found = client.scan_scene(scene, area).detections()
        summary.scenes.append(scene.scene_id)
        summary.fire_points += len(found)
        if not found:
            continue
        with transaction(factory) as session:
            ingest = ingest_scene_detections(session, found, indexes=indexes, settings=settings, actor=actor)
        summary.new += ingest.new
        summary.duplicates += ingest.duplicates
        summary.new_incidents += ingest.new_incidents
        for status, count in ingest.held.items():
            summary.held[status] = summary.held.get(status, 0) + count
    return summary


def default_period(days: float, now: datetime) -> tuple[datetime, datetime]:
    """The last ``days`` days up to ``now``."""
    return now - timedelta(days=days), now
