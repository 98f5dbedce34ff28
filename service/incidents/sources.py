"""Turning each package's typed records into observations (the service composes the sensing packages)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import shapely

from satellite.himawari import HimawariHotspot
from satellite.hotspot import Hotspot
from satellite.screening import ScreeningDecision
from service.config import IncidentSettings
from service.incidents.fusion import FusionWindows, ObservationIn, ObservationKind
from service.incidents.repeat_site import RepeatSiteRule
from video.sighting import CameraSighting, DroneSighting


def hotspot_observation(
    hotspot: Hotspot | HimawariHotspot,
    decision: ScreeningDecision[Any] | None = None,
    fire_point: dict[str, Any] | None = None,
) -> ObservationIn:
    """A satellite hotspot (FIRMS or Himawari): its uncertainty region is the pixel footprint.

    The screening decision, when there is one, travels with it (status, reason, zone, every matching rule).
    """
    details: dict[str, Any] = {
        "instrument": str(hotspot.instrument),
        "confidence_raw": hotspot.confidence_raw,
        "scan_km": hotspot.scan_km,
        "track_km": hotspot.track_km,
    }
    if isinstance(hotspot, Hotspot):
        details |= {
            "product": hotspot.product.value,
            "satellite": hotspot.satellite.value,
            "bright_mir_k": hotspot.bright_mir_k,
            "bright_tir_k": hotspot.bright_tir_k,
            "daynight": hotspot.daynight.value,
            "version": hotspot.version,
        }
    else:
        details |= {
            "product": "HIMAWARI_AHI_L2_WLF",
            "satellite": hotspot.satellite.value if hotspot.satellite else None,
            "level": hotspot.level.name,
            "reliability": int(hotspot.reliability),
            "volcano": hotspot.volcano,
        }
    if decision is not None:
        details["screening"] = screening_record(decision)
    same_fire_as = fire_point_link(details, fire_point)
    return ObservationIn(
        kind=ObservationKind.SATELLITE,
        source_key=hotspot.key,
        observed_at=hotspot.acq_utc,
        latitude=hotspot.latitude,
        longitude=hotspot.longitude,
        region=hotspot.footprint(),
        confidence=hotspot.confidence,
        frp_mw=hotspot.frp_mw,
        details=details,
        same_fire_as=same_fire_as,
    )


def screening_record(decision: ScreeningDecision[Any]) -> dict[str, Any]:
    """A screening decision as stored in an observation's ``details["screening"]`` (every satellite source)."""
    return {
        "status": decision.status.value,
        "reason": decision.reason,
        "zone": decision.zone.value if decision.zone else None,
        "zone_ids": list(decision.zone_ids),
        "findings": [{"status": f.status.value, "reason": f.reason} for f in decision.findings],
        "site_id": decision.site_id,
        "permit_id": decision.permit_id,
    }


def fire_point_link(details: dict[str, Any], fire_point: dict[str, Any] | None) -> tuple[str, ...]:
    """Store a pixel's fire point in ``details`` and return the observations it is the same fire as.

    A repeat of an earlier fire point is the same fire in a later (or earlier) pass: fusion joins the pixel to the
    incident holding that fire point's representative pixel (its key is "FP|" + the pixel's key).
    """
    if fire_point is None:
        return ()
    details["fire_point"] = fire_point
    return (str(fire_point["repeat_of"]).removeprefix("FP|"),) if fire_point.get("repeat_of") else ()


# A drone sighting without a ground fix is placed at the drone with this uncertainty (metres): the operator was
# there and the fire is in view, which is still worth an incident.
_UNLOCATED_DRONE_M = 500.0


def sighting_observation(sighting: CameraSighting | DroneSighting) -> ObservationIn:
    """A camera or drone sighting: its region is the ground fix's uncertainty polygon, else the camera's wedge."""
    confidence = max(box.confidence for box in sighting.boxes)
    base: dict[str, Any] = {
        "boxes": [b.model_dump() for b in sighting.boxes],
        "model": sighting.model.model_dump(),
        "evidence_sha256": sighting.evidence.sha256,
        "ground_status": sighting.ground_status,
    }
    if isinstance(sighting, CameraSighting):
        region: shapely.Geometry = (
            sighting.ground.uncertainty.to_shapely() if sighting.ground else sighting.wedge.to_shapely()
        )
        point = sighting.ground.point.to_shapely() if sighting.ground else region.representative_point()
        confidence = sighting.event.max_confidence
        details = base | {
            "camera_id": sighting.camera_id,
            "preset_id": sighting.preset_id,
            "image_size": list(sighting.image_size),
            "site": sighting.site.model_dump(),
            "bearing": sighting.bearing.model_dump(),
            "event": sighting.event.model_dump(mode="json"),
        }
        kind = ObservationKind.CAMERA
    else:
        if sighting.ground:
            region = sighting.ground.uncertainty.to_shapely()
            point = sighting.ground.point.to_shapely()
        else:
            point = shapely.Point(sighting.drone.longitude, sighting.drone.latitude)
            degrees = _UNLOCATED_DRONE_M / 111_320.0
            region = shapely.buffer(point, degrees)
        details = base | {
            "drone_id": sighting.drone_id,
            "image_name": sighting.image_name,
            "drone": sighting.drone.model_dump(),
            "lrf_check_m": sighting.lrf_check_m,
        }
        kind = ObservationKind.DRONE
    return ObservationIn(
        kind=kind,
        source_key=sighting.sighting_key,
        observed_at=sighting.captured_at,
        latitude=point.y,
        longitude=point.x,
        region=region,
        confidence=confidence,
        details=details,
    )


def fusion_windows(settings: IncidentSettings) -> FusionWindows:
    """The fusion windows configured for this deployment."""
    return FusionWindows(
        ground=timedelta(hours=settings.ground_window_h),
        satellite=timedelta(hours=settings.satellite_window_h),
        buffer_m=settings.link_buffer_m,
        satellite_repass=timedelta(hours=settings.satellite_repass_h),
    )


def repeat_site_rule(settings: IncidentSettings) -> RepeatSiteRule:
    """The repeat-at-site rule configured for this deployment."""
    return RepeatSiteRule(distance_m=settings.repeat_site_km * 1000.0, window=timedelta(days=settings.repeat_site_days))
