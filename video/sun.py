"""The sun in a tower camera's frame: where its glare is, so that detections in it can be ignored.

Why: a camera facing the low autumn or spring sun sees glare, lens flare and backlit haze that a detector scores
as smoke or fire (D-Fire's tower frames with the sun in the lens are among our negatives for that reason), and
the glare stays for the many minutes the sun takes to cross the frame: long enough for sequence verification to
confirm it. The issue lists "the sun's path" among the per-position ignore masks; a drawn polygon would have to
cover the whole band the sun crosses over a season, hiding fields all day for an hour of glare. So the patrol
computes, for each frame's capture time, the cone of ``glare_deg`` around the sun (apparent position, refraction
included: astral's NOAA solar position) through the camera's calibrated pose and lens, and ignores the boxes
mostly inside it, by the same area rule as a drawn mask (``detector.sequence.IgnoreMask``).

It needs a calibrated heading (``CameraSite.heading_offset_deg``): an uncalibrated mount puts the computed sun
degrees away from the real one. That is why it is switched on per preset (``PresetRecord.sun_glare_deg``), not
by default.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Final

import numpy as np
from numpy.typing import NDArray

from video.camera import CameraSite, Lens, PtzPose, Ray, directions_to_pixels, lens_intrinsics
from video.errors import InputError

__all__ = ["GLARE_VERTICES", "glare_polygon", "sun_ray"]

#: Vertices of the glare cone's outline (a 24-gon is within 1 % of the circle's area).
GLARE_VERTICES: Final = 24

Polygon = tuple[tuple[float, float], ...]


def sun_ray(latitude: float, longitude: float, when: datetime) -> Ray:
    """The apparent direction of the sun's centre seen from ``latitude``/``longitude`` at ``when`` (a timezone-aware
    time): true bearing and elevation above the horizon, atmospheric refraction included."""
    if when.tzinfo is None:
        raise InputError("a capture time needs its UTC offset", field="captured_at")
    from astral import Observer
    from astral.sun import azimuth, elevation

    observer = Observer(latitude=latitude, longitude=longitude)
    return Ray(azimuth(observer, when) % 360.0, elevation(observer, when, with_refraction=True))


def _cone(axis: NDArray[np.float64], half_angle_deg: float, vertices: int) -> NDArray[np.float64]:
    """Unit directions ``(vertices, 3)`` at ``half_angle_deg`` around the unit vector ``axis``."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(axis[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    first = np.cross(axis, helper)
    first /= np.linalg.norm(first)
    second = np.cross(axis, first)
    angles = np.linspace(0.0, 2.0 * math.pi, vertices, endpoint=False)
    half = math.radians(half_angle_deg)
    ring = np.cos(angles)[:, None] * first + np.sin(angles)[:, None] * second
    return np.asarray(math.cos(half) * axis + math.sin(half) * ring, dtype=np.float64)


def glare_polygon(
    site: CameraSite,
    lens: Lens,
    pose: PtzPose,
    when: datetime,
    glare_deg: float,
    *,
    vertices: int = GLARE_VERTICES,
) -> Polygon | None:
    """The outline, in the lens's calibrated pixels, of the cone of ``glare_deg`` around the sun at ``when``; None
    when none of it is in the frame (the sun below the horizon by more than ``glare_deg``, behind the camera, or
    off to the side) or ``glare_deg`` is 0.

    The outline is the cone's edge projected through the lens, so it is a circle at the centre of a pinhole and an
    ellipse toward the edges, and follows the lens's distortion.
    """
    if not 0.0 <= glare_deg < 90.0:
        raise InputError(f"must be in [0, 90), got {glare_deg:g}", field="sun_glare_deg")
    if glare_deg == 0.0:
        return None
    sun = sun_ray(site.latitude, site.longitude, when)
    if sun.elevation_deg < -glare_deg:
        return None
    pixels, in_front = directions_to_pixels(site, lens, pose, _cone(sun.direction, glare_deg, vertices))
    if not in_front.all():
        # The cone reaches behind the lens: the sun is 90° − glare_deg or more off the axis. A tower camera's
        # half field of view is well under that; a wider lens with a wide cone goes unmasked here.
        return None
    intrinsics = lens_intrinsics(lens, pose.zoom)
    x, y = pixels[:, 0], pixels[:, 1]
    if x.max() < 0 or y.max() < 0 or x.min() > intrinsics.width or y.min() > intrinsics.height:
        return None
    return tuple((float(u), float(v)) for u, v in pixels)
