"""Turning each package's typed records into observations (the service composes the sensing packages)."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np
import shapely

from satellite.himawari import HimawariHotspot
from satellite.hotspot import Hotspot
from satellite.screening import ScreeningDecision
from service.config import IncidentSettings
from service.incidents.fusion import FusionWindows, ObservationIn, ObservationKind
from service.incidents.repeat_site import RepeatSiteRule
from video.camera import (
    BearingWedge,
    CameraSite,
    Intrinsics,
    PtzPose,
    angles_from_directions,
    box_to_wedge,
    normalise_bearing,
    pixel_rays,
)
from video.drone import DEFAULT_SIGMA_PITCH_DEG, DEFAULT_SIGMA_YAW_DEG
from video.sighting import CameraSighting, DronePoseInfo, DroneSighting


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


#: How far a drone sighting without a ground fix reaches from the drone (metres): the wedge's far edge, and the
#: radius of the disc when not even the bearing is known. The outer visibility a tower camera's wedge is given
#: (:func:`video.camera.box_to_wedge`, closed-loop.md § 1.2); a drone higher up sees at least as far.
UNLOCATED_DRONE_RANGE_M = 8000.0
#: The widest lens a drone frame of unknown focal length may come from: 90° across (DJI's wide cameras are 84° on
#: the diagonal, about 72° across; a FLIR XT with the 6.8 mm lens, 90°). The bearing wedge spans every lens from
#: a narrow zoom up to this one.
WIDEST_DRONE_HFOV_DEG = 90.0
_LENS_HFOVS_DEG = (1.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 75.0, WIDEST_DRONE_HFOV_DEG)
_WEDGE_SIGMAS = 2.0  # the wedge holds the yaw and pitch errors to ±2σ, as a camera's does


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
            region = unlocated_drone_wedge(sighting).polygon()
            point = region.representative_point()
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


def _drone_yaw(pose: DronePoseInfo) -> float | None:
    """The camera's true bearing, when the record carries it: the gimbal yaw, unless the frame's yaw came from the
    flight yaw (a gimbal yaw missing, or 0 beside a real flight yaw), whose value the record does not hold."""
    if pose.gimbal_yaw_deg is None or (pose.yaw_source is not None and pose.yaw_source != "GimbalYawDegree"):
        return None
    return pose.gimbal_yaw_deg


def unlocated_drone_wedge(sighting: DroneSighting) -> BearingWedge:
    """Where a drone sighting whose ray did not land can be: a bearing wedge from the drone, as a tower camera's
    sighting without a ground point is placed (:func:`video.patrol.locate_camera_box`).

    The record carries the drone's position, the gimbal's yaw, pitch and roll and the box, not the lens (its focal
    length may be what was missing). So the wedge is the union of the box's wedges (:func:`video.camera.box_to_wedge`,
    yaw ±2·σ_yaw, pitch ±2·σ_pitch) for every lens from a narrow zoom to :data:`WIDEST_DRONE_HFOV_DEG` across: a
    box near the middle of the frame gives a narrow wedge whatever the lens, one at the edge up to half the widest
    view. It reaches :data:`UNLOCATED_DRONE_RANGE_M`. With the height above the take-off point it starts where
    the steepest of those rays through the box's lower edge meets flat ground at the take-off level: a frame looking
    at the horizon from 500 m does not show a fire 100 m from the drone, which the wedge must then not reach (the
    audit's repro fused such a frame into one). Ground rising towards the fire would bring it nearer than that;
    the flat take-off ground is what the ray projection assumes too.

    Without a yaw, or without a pitch (a camera looking straight down sees every bearing), the bearing is unknown:
    the whole circle round the drone, a disc of :data:`UNLOCATED_DRONE_RANGE_M` measured on the ground. (It was a
    500 m circle drawn in degrees, 360 m across east-west at 44° N, that claimed a precision the frame did not
    give and caught any fire near the drone.)
    """
    pose = sighting.drone
    yaw = _drone_yaw(pose)
    if yaw is None or pose.gimbal_pitch_deg is None:
        return BearingWedge(pose.latitude, pose.longitude, 0.0, 180.0, 180.0, UNLOCATED_DRONE_RANGE_M)
    width, height = sighting.image_size
    site = CameraSite(pose.latitude, pose.longitude, mast_height_m=0.0)
    ptz = PtzPose(
        pan_deg=yaw,
        tilt_deg=min(90.0, max(-90.0, pose.gimbal_pitch_deg)),
        roll_deg=pose.gimbal_roll_deg or 0.0,
        sigma_pan_deg=DEFAULT_SIGMA_YAW_DEG,
        sigma_tilt_deg=DEFAULT_SIGMA_PITCH_DEG,
    )
    box = sighting.boxes[0].xyxy  # the box this sighting locates (the others follow it)
    wedges = [
        box_to_wedge(site, Intrinsics.from_hfov(width, height, hfov), ptz, box, n_sigma=_WEDGE_SIGMAS)
        for hfov in _LENS_HFOVS_DEG
    ]
    first = wedges[0].centre_bearing_deg
    offsets = [(w.centre_bearing_deg - first + 180.0) % 360.0 - 180.0 for w in wedges]
    left = min(o - w.half_width_deg for o, w in zip(offsets, wedges, strict=True))
    right = max(o + w.half_width_deg for o, w in zip(offsets, wedges, strict=True))
    near_m = 0.0
    if pose.relative_altitude_m is not None and pose.relative_altitude_m > 0.0:
        steepest = replace(ptz, tilt_deg=max(-90.0, ptz.tilt_deg - _WEDGE_SIGMAS * ptz.sigma_tilt_deg))
        along_bottom = np.linspace(box[0], box[2], 9)
        depression = max(
            -float(angles_from_directions(pixel_rays(site, Intrinsics.from_hfov(width, height, hfov), steepest,
                                                     along_bottom, np.full(9, box[3])))[1].min())
            for hfov in _LENS_HFOVS_DEG
        )  # fmt: skip
        if 0.0 < depression < 90.0:
            near_m = pose.relative_altitude_m / math.tan(math.radians(depression))
    return BearingWedge(
        latitude=pose.latitude,
        longitude=pose.longitude,
        centre_bearing_deg=normalise_bearing(first + (left + right) / 2.0),
        half_width_deg=min(180.0, (right - left) / 2.0),
        box_half_width_deg=min(180.0, (right - left) / 2.0),
        max_range_m=max(UNLOCATED_DRONE_RANGE_M, 2.0 * near_m),
        min_range_m=near_m,
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
