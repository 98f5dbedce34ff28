"""Tower PTZ cameras: site, lens and pose records, pixel → viewing ray, detection box → bearing wedge.

Why the exact pinhole model: the usual shortcut ``bearing = pan + HFOV·(x/W − 0.5)`` treats angle as linear in
pixels. It is not: a pinhole maps angle α to ``u = cx + fx·tan α``. At HFOV 87° the shortcut is off by 3.6° a
quarter of the width from the centre, ~250 m at 4 km — more than the whole bearing error budget of a calibrated
camera. Here every pixel goes through ``cv2.undistortPoints`` (when the lens has distortion) and a full 3-D
rotation, so tilt and roll are exact too: once the camera looks down, a pixel left of centre is *not* at
``pan + atan((u − cx)/fx)``, it lies on a cone.

Conventions (used by the whole ``video`` package):

* **World frame**: local East-North-Up at the camera; heights in metres in the vertical datum of the site
  elevation (and of the DEM, when one is used).
* **Bearing**: degrees clockwise from *true* north, in ``[0, 360)``. A camera's ``pan`` reading is turned into a
  true bearing by adding the site's ``heading_offset_deg`` (the mount's north calibration).
* **Tilt / elevation**: degrees above the horizontal, **positive up**: ``0`` looks at the horizon, ``-90`` straight
  down. This is DJI's ``GimbalPitchDegree`` convention; a tower camera aimed at a field 3 km from a 40 m mast
  has tilt ``-0.76``. (cameratransform and some PTZ firmware count from the nadir instead; convert on read.)
* **Roll**: degrees of right-handed rotation about the optical axis; positive dips the camera's right side
  (aircraft convention, as DJI's ``GimbalRollDegree``).
* **Camera frame**: OpenCV's — x right, y down, z forward — and pixel ``(u, v)`` from the top-left corner.

Everything here is pure computation; nothing reads files.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pyproj import Geod

from video.errors import InputError

if TYPE_CHECKING:
    from shapely import Polygon

__all__ = [
    "GEOD",
    "OPENCV_DISTORTION_LENGTHS",
    "BearingWedge",
    "CameraSite",
    "Intrinsics",
    "Lens",
    "PtzPose",
    "Ray",
    "ZoomLens",
    "angles_from_directions",
    "box_to_wedge",
    "directions_to_pixels",
    "lens_intrinsics",
    "normalise_bearing",
    "pixel_rays",
    "pixel_to_ray",
    "rotation_matrix",
    "sector_polygon",
]

GEOD: Final = Geod(ellps="WGS84")
OPENCV_DISTORTION_LENGTHS: Final = frozenset({0, 4, 5, 8, 12, 14})
# cv2.undistortPoints stops after 5 iterations by default, which leaves ~1e-3 of normalised error at the edge of
# a strongly distorted wide-angle lens (~1 px); iterate to convergence instead.
_UNDISTORT_CRITERIA: Final = (3, 100, 1e-12)  # cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, without importing cv2


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"must be a finite number, got {value!r}", field=name)
    return float(value)


def _in_range(name: str, value: float, low: float, high: float) -> float:
    value = _finite(name, value)
    if not low <= value <= high:
        raise InputError(f"must be within [{low:g}, {high:g}], got {value:g}", field=name)
    return value


def normalise_bearing(bearing_deg: float) -> float:
    """A bearing folded into ``[0, 360)``."""
    folded = math.fmod(bearing_deg, 360.0)
    if folded < 0.0:
        folded += 360.0
    # fmod(-1e-15, 360) + 360 rounds to 360.0 exactly.
    return 0.0 if folded >= 360.0 else folded


@dataclass(frozen=True, slots=True)
class CameraSite:
    """Where a camera is and how its mount is oriented.

    Attributes:
        latitude, longitude: WGS-84 degrees of the mast.
        mast_height_m: height of the lens above the ground at the mast foot.
        ground_elevation_m: elevation of the mast foot; flat-ground fixes intersect this level, DEM fixes use the
            DEM instead, so it must be in the DEM's vertical datum when both are used.
        heading_offset_deg: true bearing of the camera's pan zero (north calibration against landmarks).
        tilt_offset_deg: tilt reading error of the mount (levelling calibration), added to every tilt.
    """

    latitude: float
    longitude: float
    mast_height_m: float
    ground_elevation_m: float = 0.0
    heading_offset_deg: float = 0.0
    tilt_offset_deg: float = 0.0

    def __post_init__(self) -> None:
        _in_range("latitude", self.latitude, -90.0, 90.0)
        _in_range("longitude", self.longitude, -180.0, 180.0)
        _in_range("mast_height_m", self.mast_height_m, 0.0, 10_000.0)
        _finite("ground_elevation_m", self.ground_elevation_m)
        _finite("heading_offset_deg", self.heading_offset_deg)
        _in_range("tilt_offset_deg", self.tilt_offset_deg, -90.0, 90.0)

    @property
    def camera_altitude_m(self) -> float:
        """Height of the lens in the site's vertical datum."""
        return self.ground_elevation_m + self.mast_height_m


@dataclass(frozen=True, slots=True)
class Intrinsics:
    """A calibrated pinhole camera at one zoom: focal lengths and principal point in pixels.

    ``distortion`` holds OpenCV's coefficients ``(k1, k2, p1, p2[, k3[, k4, k5, k6[, s1..s4[, τx, τy]]]])``;
    empty means an ideal pinhole.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InputError(f"must be a positive integer, got {value!r}", field=name)
        for name in ("fx", "fy"):
            if _finite(name, getattr(self, name)) <= 0.0:
                raise InputError("must be positive", field=name)
        _finite("cx", self.cx)
        _finite("cy", self.cy)
        if len(self.distortion) not in OPENCV_DISTORTION_LENGTHS:
            raise InputError(
                f"OpenCV takes 4, 5, 8, 12 or 14 coefficients, got {len(self.distortion)}", field="distortion"
            )
        for i, k in enumerate(self.distortion):
            _finite(f"distortion[{i}]", k)

    @classmethod
    def from_hfov(cls, width: int, height: int, hfov_deg: float, distortion: Sequence[float] = ()) -> Intrinsics:
        """Square pixels, principal point at the image centre, focal length from the horizontal field of view."""
        _in_range("hfov_deg", hfov_deg, 1e-6, 179.999)
        fx = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(width, height, fx, fx, width / 2.0, height / 2.0, tuple(float(k) for k in distortion))

    @property
    def hfov_deg(self) -> float:
        """Horizontal field of view of the undistorted pinhole (edge to edge through the principal point)."""
        return math.degrees(math.atan(self.cx / self.fx) + math.atan((self.width - self.cx) / self.fx))

    def camera_matrix(self) -> NDArray[np.float64]:
        """OpenCV's 3×3 camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def normalise(self, u: ArrayLike, v: ArrayLike) -> NDArray[np.float64]:
        """Pixels → undistorted normalised image coordinates ``(x, y) = (X/Z, Y/Z)``, shape ``(n, 2)``."""
        uu = np.atleast_1d(np.asarray(u, dtype=np.float64))
        vv = np.atleast_1d(np.asarray(v, dtype=np.float64))
        uu, vv = np.broadcast_arrays(uu, vv)
        if not (np.all(np.isfinite(uu)) and np.all(np.isfinite(vv))):
            raise InputError("pixel coordinates must be finite", field="pixel")
        if not any(self.distortion):
            return np.column_stack(((uu - self.cx) / self.fx, (vv - self.cy) / self.fy))
        import cv2  # a ~0.3 s import, only needed for real lenses

        points = np.column_stack((uu, vv)).reshape(-1, 1, 2)
        undistorted = cv2.undistortPoints(
            points,
            self.camera_matrix(),
            np.asarray(self.distortion, dtype=np.float64),
            None,
            np.eye(3),
            np.eye(3),
            _UNDISTORT_CRITERIA,
        )
        return np.asarray(undistorted, dtype=np.float64).reshape(-1, 2)


@dataclass(frozen=True, slots=True)
class ZoomLens:
    """A zoom lens described the way PTZ datasheets do: horizontal FOV at each zoom step.

    ``hfov_table`` holds ``(zoom, hfov_deg)`` rows sorted by increasing zoom. Between rows the *focal length*
    is interpolated linearly (zoom motors move the focal length, so angle is the wrong thing to interpolate);
    outside the table the lens refuses, because extrapolating a zoom curve gives silently wrong bearings.
    Pixels are square and the principal point is the image centre.
    """

    width: int
    height: int
    hfov_table: tuple[tuple[float, float], ...]
    distortion: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.hfov_table:
            raise InputError("needs at least one (zoom, hfov_deg) row", field="hfov_table")
        zooms = [_finite(f"hfov_table[{i}].zoom", z) for i, (z, _) in enumerate(self.hfov_table)]
        for i, (_, hfov) in enumerate(self.hfov_table):
            _in_range(f"hfov_table[{i}].hfov_deg", hfov, 1e-6, 179.999)
        if any(b <= a for a, b in itertools.pairwise(zooms)):
            raise InputError("zoom values must strictly increase", field="hfov_table")
        # Validates size and distortion once, at construction.
        Intrinsics.from_hfov(self.width, self.height, self.hfov_table[0][1], self.distortion)

    def intrinsics(self, zoom: float) -> Intrinsics:
        """The pinhole at ``zoom``."""
        zoom = _finite("zoom", zoom)
        zooms = [z for z, _ in self.hfov_table]
        if not zooms[0] <= zoom <= zooms[-1]:
            raise InputError(f"outside the lens table [{zooms[0]:g}, {zooms[-1]:g}], got {zoom:g}", field="zoom")
        focals = [(self.width / 2.0) / math.tan(math.radians(h) / 2.0) for _, h in self.hfov_table]
        fx = float(np.interp(zoom, zooms, focals))
        return Intrinsics(self.width, self.height, fx, fx, self.width / 2.0, self.height / 2.0, self.distortion)


Lens = Intrinsics | ZoomLens


def lens_intrinsics(lens: Lens, zoom: float) -> Intrinsics:
    """The pinhole of ``lens`` at ``zoom`` (a fixed :class:`Intrinsics` ignores the zoom)."""
    return lens.intrinsics(zoom) if isinstance(lens, ZoomLens) else lens


@dataclass(frozen=True, slots=True)
class PtzPose:
    """A PTZ reading at the moment of the frame, with its uncertainty.

    ``sigma_pan_deg`` is the whole azimuth uncertainty (read-back resolution + north calibration + mast sway);
    ``sigma_tilt_deg`` likewise for elevation. The defaults (0.2°, 0.1°) assume a landmark-calibrated camera
    with a 0.1° read-back; an uncalibrated one is worse by an order of magnitude.
    """

    pan_deg: float
    tilt_deg: float
    zoom: float = 1.0
    roll_deg: float = 0.0
    sigma_pan_deg: float = 0.2
    sigma_tilt_deg: float = 0.1

    def __post_init__(self) -> None:
        _finite("pan_deg", self.pan_deg)
        _in_range("tilt_deg", self.tilt_deg, -90.0, 90.0)
        _finite("zoom", self.zoom)
        _in_range("roll_deg", self.roll_deg, -180.0, 180.0)
        _in_range("sigma_pan_deg", self.sigma_pan_deg, 0.0, 90.0)
        _in_range("sigma_tilt_deg", self.sigma_tilt_deg, 0.0, 90.0)


def rotation_matrix(bearing_deg: float, elevation_deg: float, roll_deg: float = 0.0) -> NDArray[np.float64]:
    """Camera-to-world rotation: columns are the camera's x (right), y (down), z (forward) axes in ENU.

    Built from the forward axis ``f`` (the optical axis at ``bearing``/``elevation``), the horizontal right
    axis ``r0`` and the up axis ``u0 = r0 × f``, then ``r0``/``u0`` rolled about ``f``. This is
    ``R_z(heading)·R_x(tilt)·R_y(roll)`` of closed-loop.md § 1.1 written out, with tilt counted from the
    horizon instead of the nadir.
    """
    psi = math.radians(bearing_deg)
    theta = math.radians(elevation_deg)
    phi = math.radians(roll_deg)
    sp, cp, st, ct = math.sin(psi), math.cos(psi), math.sin(theta), math.cos(theta)
    forward = np.array([sp * ct, cp * ct, st])
    right0 = np.array([cp, -sp, 0.0])
    up0 = np.array([-sp * st, -cp * st, ct])
    right = right0 * math.cos(phi) - up0 * math.sin(phi)
    up = up0 * math.cos(phi) + right0 * math.sin(phi)
    return np.column_stack((right, -up, forward))


def angles_from_directions(directions: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """ENU direction vectors ``(n, 3)`` → (bearing in ``[0, 360)``, elevation above the horizon), degrees."""
    d = np.atleast_2d(np.asarray(directions, dtype=np.float64))
    bearing = np.degrees(np.arctan2(d[:, 0], d[:, 1])) % 360.0
    bearing = np.where(bearing >= 360.0, 0.0, bearing)
    elevation = np.degrees(np.arctan2(d[:, 2], np.hypot(d[:, 0], d[:, 1])))
    return bearing, elevation


@dataclass(frozen=True, slots=True)
class Ray:
    """A viewing direction: true bearing (clockwise from north) and elevation above the horizon, degrees."""

    bearing_deg: float
    elevation_deg: float

    @property
    def direction(self) -> NDArray[np.float64]:
        """Unit ENU vector."""
        b, e = math.radians(self.bearing_deg), math.radians(self.elevation_deg)
        return np.array([math.sin(b) * math.cos(e), math.cos(b) * math.cos(e), math.sin(e)])


def _camera_to_world(site: CameraSite, pose: PtzPose) -> NDArray[np.float64]:
    """The rotation of a pose on a site: its reading plus the site's heading and tilt calibration."""
    return rotation_matrix(pose.pan_deg + site.heading_offset_deg, pose.tilt_deg + site.tilt_offset_deg, pose.roll_deg)


def pixel_rays(site: CameraSite, lens: Lens, pose: PtzPose, u: ArrayLike, v: ArrayLike) -> NDArray[np.float64]:
    """Unit ENU directions ``(n, 3)`` of the rays through pixels ``(u, v)``."""
    normalised = lens_intrinsics(lens, pose.zoom).normalise(u, v)
    camera_dirs = np.column_stack((normalised, np.ones(len(normalised))))
    world = camera_dirs @ _camera_to_world(site, pose).T
    return np.asarray(world / np.linalg.norm(world, axis=1, keepdims=True), dtype=np.float64)


def directions_to_pixels(
    site: CameraSite, lens: Lens, pose: PtzPose, directions: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Pixels ``(n, 2)`` where unit ENU ``directions`` ``(n, 3)`` land, and whether each is in front of the camera
    (the inverse of :func:`pixel_rays`; pixels of directions behind it are NaN).

    With distortion the points go through ``cv2.projectPoints`` — but only those inside the lens's calibrated
    field (no farther off-axis than the frame's corners): beyond it OpenCV's radial polynomial folds back, and a
    direction 70° off a 90° lens's axis can land in the middle of the frame. Those go through the plain pinhole,
    which keeps them outside, where they belong.
    """
    d = np.atleast_2d(np.asarray(directions, dtype=np.float64))
    camera = d @ _camera_to_world(site, pose)  # rows: (x right, y down, z forward); its inverse is its transpose
    in_front = camera[:, 2] > 1e-9
    pixels = np.full((len(d), 2), np.nan)
    if not in_front.any():
        return pixels, in_front
    intrinsics = lens_intrinsics(lens, pose.zoom)
    ahead = camera[in_front]
    normalised = ahead[:, :2] / ahead[:, 2:3]
    pinhole = np.column_stack(
        (intrinsics.fx * normalised[:, 0] + intrinsics.cx, intrinsics.fy * normalised[:, 1] + intrinsics.cy)
    )
    if any(intrinsics.distortion):
        import cv2

        u = np.array([0.0, intrinsics.width, 0.0, intrinsics.width])
        v = np.array([0.0, 0.0, intrinsics.height, intrinsics.height])
        undistorted = np.hypot(*intrinsics.normalise(u, v).T)  # the corners' true off-axis tangents
        distorted = np.hypot((u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy)
        radius = np.hypot(normalised[:, 0], normalised[:, 1])
        calibrated = radius <= float(undistorted.max())
        if calibrated.any():
            projected, _ = cv2.projectPoints(
                ahead[calibrated].reshape(-1, 1, 3),
                np.zeros(3),
                np.zeros(3),
                intrinsics.camera_matrix(),
                np.asarray(intrinsics.distortion, dtype=np.float64),
            )
            pinhole[calibrated] = np.asarray(projected, dtype=np.float64).reshape(-1, 2)
        # Beyond the corners: the pinhole, stretched as much as the lens stretches its corners (a pincushion lens
        # pushes them out), so these points stay outside the frame.
        stretch = max(1.0, float((distorted / undistorted).max()))
        centre = np.array([intrinsics.cx, intrinsics.cy])
        pinhole[~calibrated] = centre + (pinhole[~calibrated] - centre) * stretch
    pixels[in_front] = pinhole
    return pixels, in_front


def pixel_to_ray(site: CameraSite, lens: Lens, pose: PtzPose, u: float, v: float) -> Ray:
    """The ray through one pixel."""
    bearing, elevation = angles_from_directions(pixel_rays(site, lens, pose, u, v))
    return Ray(normalise_bearing(float(bearing[0])), float(elevation[0]))


def sector_polygon(
    latitude: float,
    longitude: float,
    left_bearing_deg: float,
    right_bearing_deg: float,
    max_range_m: float,
    min_range_m: float = 0.0,
    *,
    step_deg: float = 0.5,
) -> Polygon:
    """An annular sector in WGS-84 (lon/lat): bearings clockwise from ``left`` to ``right``, ranges geodesic.

    Arc vertices come from ``Geod.fwd`` at most ``step_deg`` apart, so the straight lon/lat edges between them
    stay within a few metres of the true arc at tower ranges. Antimeridian crossings are not handled (no
    Chinese site is near one).
    """
    from shapely import Polygon

    if not 0.0 <= min_range_m < max_range_m:
        raise InputError(f"need 0 <= min_range_m < max_range_m, got {min_range_m:g}, {max_range_m:g}")
    turn = right_bearing_deg - left_bearing_deg
    # A whole turn or more is the whole circle. Decided before the modulo: ``c ± 180`` comes out a hair either side
    # of 360 in floating point, and the remainder of 360.00000000000006 was a sliver, not the circle.
    span = 360.0 if turn > 360.0 - 1e-9 else turn % 360.0
    if span == 0.0 and turn != 0.0:
        span = 360.0
    n = max(2, math.ceil(span / step_deg) + 1)
    bearings = left_bearing_deg + np.linspace(0.0, span, n)
    lons = np.full(n, longitude)
    lats = np.full(n, latitude)
    out_lon, out_lat, _ = GEOD.fwd(lons, lats, bearings, np.full(n, max_range_m))
    ring = list(zip(out_lon.tolist(), out_lat.tolist(), strict=True))
    if min_range_m > 0.0:
        in_lon, in_lat, _ = GEOD.fwd(lons, lats, bearings, np.full(n, min_range_m))
        inner = list(zip(in_lon.tolist(), in_lat.tolist(), strict=True))
        if span >= 360.0:
            # The whole circle with an inner radius is a ring with a hole (one ring out and back along the same
            # edge would be invalid).
            return Polygon(ring, [inner])
        ring += inner[::-1]
    elif span < 360.0:
        ring.append((longitude, latitude))
    return Polygon(ring)


@dataclass(frozen=True, slots=True)
class BearingWedge:
    """Where a single camera's detection can be: a sector of bearings out to a maximum range.

    ``half_width_deg`` = ``box_half_width_deg`` (the angular half-extent of the detection box) + ``n_sigma``·σ_pan
    (+ the bearing turn of a tilt error off the frame's centre line, :func:`box_to_wedge`), at most 180 (the whole
    circle). The parts are added rather than combined in quadrature because the box is a hard extent, not a random
    error: the fire is somewhere inside it.
    """

    latitude: float
    longitude: float
    centre_bearing_deg: float
    half_width_deg: float
    box_half_width_deg: float
    max_range_m: float
    min_range_m: float = 0.0

    @property
    def left_bearing_deg(self) -> float:
        """Anticlockwise edge."""
        return normalise_bearing(self.centre_bearing_deg - self.half_width_deg)

    @property
    def right_bearing_deg(self) -> float:
        """Clockwise edge."""
        return normalise_bearing(self.centre_bearing_deg + self.half_width_deg)

    def contains_bearing(self, bearing_deg: float) -> bool:
        """Whether a bearing falls inside the wedge (wrap-around safe)."""
        offset = (bearing_deg - self.centre_bearing_deg + 180.0) % 360.0 - 180.0
        return abs(offset) <= self.half_width_deg

    def polygon(self, *, step_deg: float = 0.5) -> Polygon:
        """The wedge as a WGS-84 polygon (lon/lat), apex at the camera unless ``min_range_m`` > 0."""
        return sector_polygon(
            self.latitude,
            self.longitude,
            self.centre_bearing_deg - self.half_width_deg,
            self.centre_bearing_deg + self.half_width_deg,
            self.max_range_m,
            self.min_range_m,
            step_deg=step_deg,
        )


def box_to_wedge(
    site: CameraSite,
    lens: Lens,
    pose: PtzPose,
    box: tuple[float, float, float, float],
    *,
    max_range_m: float = 8000.0,
    min_range_m: float = 0.0,
    n_sigma: float = 2.0,
) -> BearingWedge:
    """A detection box ``(xmin, ymin, xmax, ymax)`` in pixels → the bearing wedge it implies.

    The box's bearing extent is taken over points all around its outline, not just the two vertical edges at
    mid-height: once the camera is tilted or rolled, the extreme bearings sit at corners. ``max_range_m``
    defaults to 8 km, the outer visibility of a 蓝天卫士 tower (closed-loop.md § 1.2). σ_pan widens the wedge by
    ``n_sigma``·σ_pan. A tilt error widens it by as much as it turns the outline's bearings: near the horizon next to
    nothing (it moves rays up and down, and σ_tilt bounds the *range*, :mod:`video.ground`), but a camera looking
    down sees a pixel off the frame's vertical centre line on a cone, whose bearing turns with the tilt (at −20°
    with σ_tilt 3° the σ_pan-only wedge missed the true bearing in 17 % of trials instead of 5 %).
    """
    xmin, ymin, xmax, ymax = (
        _finite(name, float(x)) for name, x in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)
    )
    if xmax < xmin or ymax < ymin:
        raise InputError(f"needs xmin <= xmax and ymin <= ymax, got {box!r}", field="box")
    _in_range("n_sigma", n_sigma, 0.0, 10.0)
    t = np.linspace(0.0, 1.0, 9)
    us = np.concatenate((xmin + (xmax - xmin) * t, np.full(9, xmax), xmax - (xmax - xmin) * t, np.full(9, xmin)))
    vs = np.concatenate((np.full(9, ymin), ymin + (ymax - ymin) * t, np.full(9, ymax), ymax - (ymax - ymin) * t))
    centre = pixel_to_ray(site, lens, pose, (xmin + xmax) / 2.0, (ymin + ymax) / 2.0)
    bearings, _ = angles_from_directions(pixel_rays(site, lens, pose, us, vs))
    offsets = (bearings - centre.bearing_deg + 180.0) % 360.0 - 180.0
    low, high = float(offsets.min()), float(offsets.max())
    box_half = (high - low) / 2.0
    tilt_spread = 0.0  # how far past the box the outline's bearings go with the tilt read ±n·σ_tilt
    if n_sigma * pose.sigma_tilt_deg > 0.0:
        for tilt in (pose.tilt_deg - n_sigma * pose.sigma_tilt_deg, pose.tilt_deg + n_sigma * pose.sigma_tilt_deg):
            tilted = replace(pose, tilt_deg=min(90.0, max(-90.0, tilt)))
            turned, _ = angles_from_directions(pixel_rays(site, lens, tilted, us, vs))
            moved = (turned - centre.bearing_deg + 180.0) % 360.0 - 180.0 - (low + high) / 2.0
            tilt_spread = max(tilt_spread, float(np.abs(moved).max()) - box_half)
    # Past a half circle the bearing is unknown: the wedge is the whole circle round the camera (a disc out to the
    # maximum range), which still places the fire; a camera whose north is not calibrated yet must not lose it.
    half = min(180.0, box_half + tilt_spread + n_sigma * pose.sigma_pan_deg)
    return BearingWedge(
        latitude=site.latitude,
        longitude=site.longitude,
        centre_bearing_deg=normalise_bearing(centre.bearing_deg + (low + high) / 2.0),
        half_width_deg=half,
        box_half_width_deg=box_half,
        max_range_m=max_range_m,
        min_range_m=min_range_m,
    )
