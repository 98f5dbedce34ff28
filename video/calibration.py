"""Camera north (heading) and levelling (tilt) calibration from known landmarks.

Why: a tower camera's ``pan`` reading is relative to wherever its pan zero happened to point when it was mounted;
``CameraSite.heading_offset_deg`` turns it into a true bearing. Set by eye or by compass, that offset is easily off
by a few degrees, and every degree moves a fire 70 m sideways per 4 km of range: enough to put it in the
neighbouring township, and to make two towers' bearings cross in the wrong field (or not at all). The tower
systems in the field notes (``../shared/reference/cameras-and-drones.md`` § 5.5) calibrate heading and field of
view against **known landmarks**: SmokeyNet's engineering repository keeps each landmark's latitude/longitude with
its pixel in each camera direction. This module does the same for strawfire's geometry:

* each :class:`Landmark` is a point of known position (a chimney, a water tower, a grain silo, a village's mobile
  mast; its top, when its height is known) seen at pixel ``(u, v)`` of a frame taken at a PTZ reading;
* the true bearing (and, with a height, the apparent elevation: earth curvature and refraction included) from the
  mast to the landmark is compared with the ray :func:`video.camera.pixel_rays` gives through that pixel with the
  site's current offsets;
* ``heading_offset_deg`` becomes the circular mean of the bearing differences, ``tilt_offset_deg`` the mean of the
  elevation differences (landmarks with a height only), iterated because a tilt change turns off-centre pixels a
  little sideways too;
* the residuals stay in the result: their RMS is the bearing error left after calibration (use it, with the PTZ
  read-back, as the camera's ``sigma_pan_deg``), and a residual far from the others is a misidentified landmark.
  Residuals that grow with the distance from the frame centre mean the lens's field of view is wrong.

Everything here is pure computation; nothing reads files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from video.camera import (
    GEOD,
    CameraSite,
    Lens,
    PtzPose,
    angles_from_directions,
    lens_intrinsics,
    normalise_bearing,
    pixel_rays,
)
from video.errors import InputError
from video.ground import REFRACTION_K, curvature_drop_m

__all__ = ["MIN_LANDMARK_DISTANCE_M", "Calibration", "Landmark", "calibrate_site"]

#: Closer than this, a 5 m error in the mast's or the landmark's position turns the bearing by over 0.5°.
MIN_LANDMARK_DISTANCE_M: Final = 500.0
_ITERATIONS: Final = 8


@dataclass(frozen=True, slots=True)
class Landmark:
    """A point of known position seen in a frame.

    Attributes:
        latitude, longitude: WGS-84 degrees of the landmark.
        u, v: its pixel in the frame (top-left origin, the frame's full resolution).
        pan_deg, tilt_deg, zoom, roll_deg: the camera's PTZ reading for that frame (a preset's, usually).
        altitude_m: height of the point marked at ``(u, v)`` in the site's vertical datum (ground elevation plus
            the structure's height for its top); ``None`` when unknown: it then calibrates the heading only.
        name: for messages.
    """

    latitude: float
    longitude: float
    u: float
    v: float
    pan_deg: float
    tilt_deg: float
    zoom: float = 1.0
    roll_deg: float = 0.0
    altitude_m: float | None = None
    name: str = ""

    def pose(self) -> PtzPose:
        return PtzPose(self.pan_deg, self.tilt_deg, self.zoom, self.roll_deg)


@dataclass(frozen=True, slots=True)
class Calibration:
    """The offsets that best fit the landmarks, with what is left over.

    ``bearing_residuals_deg[i]`` is true − calibrated bearing of landmark ``i`` (signed, ``(-180, 180]``);
    ``elevation_residuals_deg[i]`` likewise, ``None`` for a landmark without a height. ``tilt_offset_deg`` is the
    site's own value when no landmark has a height. ``warnings`` name landmarks too close to trust.
    """

    heading_offset_deg: float
    tilt_offset_deg: float
    tilt_fitted: bool
    bearing_residuals_deg: tuple[float, ...]
    elevation_residuals_deg: tuple[float | None, ...]
    distances_m: tuple[float, ...]
    warnings: tuple[str, ...]

    @property
    def rms_bearing_deg(self) -> float:
        """RMS of the bearing residuals, with the one degree of freedom the heading fit used (0 for one landmark)."""
        n = len(self.bearing_residuals_deg)
        if n < 2:
            return 0.0
        return math.sqrt(sum(r * r for r in self.bearing_residuals_deg) / (n - 1))

    @property
    def max_abs_bearing_residual_deg(self) -> float:
        return max(abs(r) for r in self.bearing_residuals_deg)

    def apply(self, site: CameraSite) -> CameraSite:
        """``site`` with the calibrated offsets."""
        return replace(site, heading_offset_deg=self.heading_offset_deg, tilt_offset_deg=self.tilt_offset_deg)


def _wrap(angle_deg: float) -> float:
    """An angle difference folded into ``(-180, 180]``."""
    folded = (angle_deg + 180.0) % 360.0 - 180.0
    return 180.0 if folded == -180.0 else folded


def _observed(site: CameraSite, lens: Lens, landmarks: Sequence[Landmark]) -> tuple[np.ndarray, np.ndarray]:
    bearings = np.empty(len(landmarks))
    elevations = np.empty(len(landmarks))
    for i, mark in enumerate(landmarks):
        b, e = angles_from_directions(pixel_rays(site, lens, mark.pose(), mark.u, mark.v))
        bearings[i], elevations[i] = float(b[0]), float(e[0])
    return bearings, elevations


def calibrate_site(
    site: CameraSite,
    lens: Lens,
    landmarks: Sequence[Landmark],
    *,
    fit_tilt: bool = True,
    refraction_k: float = REFRACTION_K,
) -> Calibration:
    """Fit ``site``'s heading (and, with landmark heights, tilt) offset to ``landmarks``.

    The fit starts from the site's current offsets and replaces them (it does not add to them). At least one
    landmark is needed; use three or more, spread across the pan range, so that a misidentified one shows as an
    outlying residual.

    Raises:
        InputError: no landmarks, a landmark pixel outside its frame, a landmark at the mast, or bad numbers.
    """
    if not landmarks:
        raise InputError("at least one landmark is needed", field="landmarks")
    warnings: list[str] = []
    true_bearings = np.empty(len(landmarks))
    true_elevations: list[float | None] = []
    distances: list[float] = []
    for i, mark in enumerate(landmarks):
        label = mark.name or f"landmark {i}"
        where = f"landmarks[{i}]"
        for attr in ("latitude", "longitude", "u", "v"):
            value = getattr(mark, attr)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InputError(f"must be a finite number, got {value!r}", field=f"{where}.{attr}")
        try:
            mark.pose()
        except InputError as exc:
            raise InputError(str(exc).removeprefix(f"{exc.field}: "), field=f"{where}.{exc.field}") from exc
        intrinsics = lens_intrinsics(lens, mark.zoom)
        if not (0.0 <= mark.u <= intrinsics.width and 0.0 <= mark.v <= intrinsics.height):
            raise InputError(
                f"pixel ({mark.u:g}, {mark.v:g}) is outside the {intrinsics.width}×{intrinsics.height} frame",
                field=where,
            )
        azimuth, _, distance = GEOD.inv(site.longitude, site.latitude, mark.longitude, mark.latitude)
        if distance < 1.0:
            raise InputError(f"{label} is at the mast: its bearing is undefined", field=where)
        if distance < MIN_LANDMARK_DISTANCE_M:
            warnings.append(
                f"{label} is only {distance:.0f} m from the mast: a few metres of position error turn its bearing "
                f"by {math.degrees(math.atan2(5.0, distance)):.1f}°"
            )
        true_bearings[i] = azimuth % 360.0
        distances.append(float(distance))
        if mark.altitude_m is None:
            true_elevations.append(None)
        else:
            if not math.isfinite(mark.altitude_m):
                raise InputError("must be a finite number", field=f"{where}.altitude_m")
            rise = mark.altitude_m - site.camera_altitude_m - curvature_drop_m(distance, refraction_k)
            true_elevations.append(math.degrees(math.atan2(rise, distance)))

    with_height = [i for i, e in enumerate(true_elevations) if e is not None]
    tilt_fitted = fit_tilt and bool(with_height)
    current = site
    for _ in range(_ITERATIONS):
        # Rays with a zero heading offset: the heading offset turns every ray about the vertical by itself.
        bearings, elevations = _observed(replace(current, heading_offset_deg=0.0), lens, landmarks)
        diffs = np.radians(true_bearings - bearings)
        heading = math.degrees(math.atan2(float(np.sin(diffs).mean()), float(np.cos(diffs).mean())))
        tilt = current.tilt_offset_deg
        if tilt_fitted:
            misses = [float(e) - elevations[i] for i, e in enumerate(true_elevations) if e is not None]
            tilt = max(-90.0, min(90.0, tilt + float(np.mean(misses))))
        updated = replace(site, heading_offset_deg=normalise_bearing(heading), tilt_offset_deg=tilt)
        converged = abs(_wrap(updated.heading_offset_deg - current.heading_offset_deg)) < 1e-9 and (
            abs(updated.tilt_offset_deg - current.tilt_offset_deg) < 1e-9
        )
        current = updated
        if converged:
            break

    bearings, elevations = _observed(current, lens, landmarks)
    bearing_residuals = tuple(_wrap(float(t - b)) for t, b in zip(true_bearings, bearings, strict=True))
    elevation_residuals = tuple(
        None if t is None else float(t - e) for t, e in zip(true_elevations, elevations, strict=True)
    )
    return Calibration(
        heading_offset_deg=current.heading_offset_deg,
        tilt_offset_deg=current.tilt_offset_deg,
        tilt_fitted=tilt_fitted,
        bearing_residuals_deg=bearing_residuals,
        elevation_residuals_deg=elevation_residuals,
        distances_m=tuple(distances),
        warnings=tuple(warnings),
    )
