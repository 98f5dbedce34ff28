"""Multi-tower triangulation: weighted least-squares intersection of bearing lines, with an error ellipse.

Why weighted least squares and not "intersect the two cones" (Pyronear) or the closed-form two-line crossing:
a bearing error σ (radians) displaces the line by ``r·σ`` metres at range ``r``, so a far tower's line is
less certain than a near tower's even with the same compass. WLS weights each line by ``1/(r·σ)²``; since ``r``
depends on the answer, it is iterated. The same normal matrix gives the covariance, hence an error ellipse that
township attribution can intersect with polygons, and the residuals give a χ² test that catches towers that
saw *different* fires.

Model (closed-loop.md § 1.2): in a local metric frame, tower ``c_i`` looks along the unit vector ``d_i``; its
line's unit normal is ``n_i`` (``[cos az, −sin az]`` in east/north axes). Minimise ``Σ w_i (n_iᵀ(p − c_i))²``:
``p = (Σ w_i n_i n_iᵀ)⁻¹ Σ w_i n_i n_iᵀ c_i`` and ``cov(p) ≈ (Σ w_i n_i n_iᵀ)⁻¹``.

The local frame is an azimuthal equidistant projection (pyproj ``+proj=aeqd``) centred on the towers. Each
bearing is turned into a frame direction by projecting a point 1 km along the *geodesic* from the tower
(``Geod.fwd``), so meridian convergence between tower and frame centre is accounted for exactly rather than
assumed away.

Rejections (the result is still returned, with ``accepted=False`` and the reasons):

* the point lies behind a camera (the lines cross, the rays do not);
* the best crossing angle is under ``min_crossing_deg`` (15° by default; the position error grows as
  ``1/sin γ``: 144 m at 20° vs 57 m at 60° for 4 km and 0.5°);
* χ² of the normalised residuals exceeds the ``1 − alpha`` quantile with ``N − 2`` degrees of freedom
  (needs ≥ 3 bearings: two lines always meet exactly);
* optionally a range beyond ``max_range_m`` (farther than the tower can see).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from video.camera import GEOD, normalise_bearing
from video.errors import InputError, TriangulationError

if TYPE_CHECKING:
    from pyproj import Transformer
    from shapely import Polygon

__all__ = [
    "BearingObservation",
    "Triangulation",
    "chi2_sf",
    "triangulate",
]

_DIRECTION_PROBE_M: Final = 1000.0
_MIN_RANGE_FOR_WEIGHT_M: Final = 1.0


@dataclass(frozen=True, slots=True)
class BearingObservation:
    """One tower's bearing to the fire.

    Attributes:
        latitude, longitude: WGS-84 degrees of the camera.
        bearing_deg: true bearing, clockwise from north.
        bearing_sigma_deg: one-sigma bearing uncertainty, degrees (> 0).
        height_m: camera height; kept with the observation for the record, not used by the 2-D solution.
    """

    latitude: float
    longitude: float
    bearing_deg: float
    bearing_sigma_deg: float
    height_m: float = 0.0

    def __post_init__(self) -> None:
        checks = (
            ("latitude", self.latitude, -90.0, 90.0),
            ("longitude", self.longitude, -180.0, 180.0),
            ("bearing_deg", self.bearing_deg, -360.0, 360.0),
            ("bearing_sigma_deg", self.bearing_sigma_deg, 1e-6, 45.0),
            ("height_m", self.height_m, -1000.0, 10_000.0),
        )
        for name, value, low, high in checks:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InputError(f"must be a finite number, got {value!r}", field=name)
            if not low <= value <= high:
                raise InputError(f"must be within [{low:g}, {high:g}], got {value:g}", field=name)


@dataclass(frozen=True, slots=True)
class Triangulation:
    """The WLS crossing point with its uncertainty and consistency checks.

    Attributes:
        latitude, longitude: the estimate (WGS-84).
        sigma_major_m, sigma_minor_m: one-sigma semi-axes of the error ellipse.
        orientation_deg: bearing of the major axis, clockwise from north, in ``[0, 180)``.
        crossing_angle_deg: the widest angle between any two bearing lines, ``[0, 90]``.
        chi2, dof, p_value: residual test (``p_value`` is ``None`` with two bearings, which always fit).
        accepted: ``True`` when no rejection rule fired; ``reasons`` lists those that did.
        ranges_m: distance along each bearing from its tower to the estimate (negative: behind the camera).
        residuals_m: perpendicular miss distance of each line.
        covariance_m2: 2×2 covariance in (east, north) metres.
        iterations: WLS re-weighting rounds used.
    """

    latitude: float
    longitude: float
    sigma_major_m: float
    sigma_minor_m: float
    orientation_deg: float
    crossing_angle_deg: float
    chi2: float
    dof: int
    p_value: float | None
    accepted: bool
    reasons: tuple[str, ...]
    ranges_m: tuple[float, ...]
    residuals_m: tuple[float, ...]
    covariance_m2: tuple[tuple[float, float], tuple[float, float]]
    iterations: int

    @property
    def sigma_position_m(self) -> float:
        """Root of the covariance trace (``√(σ_major² + σ_minor²)``), the "σ_pos" of closed-loop.md § 1.3."""
        return math.hypot(self.sigma_major_m, self.sigma_minor_m)

    def ellipse(self, scale: float = 2.4477, *, vertices: int = 72) -> Polygon:
        """The error ellipse as a WGS-84 polygon; ``scale`` 2.4477 is the 95 % contour of a 2-D Gaussian."""
        from shapely import Polygon

        t = np.linspace(0.0, 2.0 * math.pi, vertices, endpoint=False)
        major = scale * self.sigma_major_m * np.cos(t)
        minor = scale * self.sigma_minor_m * np.sin(t)
        theta = math.radians(self.orientation_deg)
        # Major axis along bearing `theta`: east = sin, north = cos; minor axis 90° clockwise from it.
        east = major * math.sin(theta) + minor * math.cos(theta)
        north = major * math.cos(theta) - minor * math.sin(theta)
        azimuths = np.degrees(np.arctan2(east, north))
        distances = np.hypot(east, north)
        lon, lat, _ = GEOD.fwd(np.full(vertices, self.longitude), np.full(vertices, self.latitude), azimuths, distances)
        return Polygon(zip(lon.tolist(), lat.tolist(), strict=True))


def chi2_sf(x: float, dof: int) -> float:
    """Survival function ``P(χ²_dof > x)`` for a positive integer ``dof``, exact.

    Closed forms of the regularised upper incomplete gamma function at integer and half-integer shape (Poisson
    sum for even ``dof``, ``erfc`` plus a finite series for odd), so no SciPy is needed for a test on a handful
    of bearings.
    """
    if dof < 1:
        raise InputError(f"needs dof >= 1, got {dof}", field="dof")
    if x <= 0.0:
        return 1.0
    half = x / 2.0
    if dof % 2 == 0:
        term = math.exp(-half)
        total = term
        for i in range(1, dof // 2):
            term *= half / i
            total += term
        return min(1.0, total)
    total = math.erfc(math.sqrt(half))
    term = math.sqrt(2.0 * x / math.pi) * math.exp(-half)  # j = 1: sqrt(2/π)·e^{-x/2}·x^{1/2}/1
    for j in range(1, (dof - 1) // 2 + 1):
        total += term
        term *= x / (2 * j + 1)
    return min(1.0, total)


@lru_cache(maxsize=64)
def _local_frame(lat0: float, lon0: float) -> Transformer:
    from pyproj import Transformer

    return Transformer.from_crs(
        "EPSG:4326",
        f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m +no_defs",
        always_xy=True,
    )


def _normal_matrix(normals: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(np.einsum("i,ij,ik->jk", weights, normals, normals), dtype=np.float64)


def _solve(
    centres: NDArray[np.float64], normals: NDArray[np.float64], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    b = np.einsum("i,ij,ik,ik->j", weights, normals, normals, centres)
    try:
        return np.asarray(np.linalg.solve(_normal_matrix(normals, weights), b), dtype=np.float64)
    except np.linalg.LinAlgError:
        raise TriangulationError("the bearing lines are (numerically) parallel: they do not cross") from None


def triangulate(
    observations: Sequence[BearingObservation],
    *,
    min_crossing_deg: float = 15.0,
    alpha: float = 0.01,
    max_range_m: float | None = None,
    max_iterations: int = 20,
    tolerance_m: float = 0.01,
) -> Triangulation:
    """Intersect two or more bearings by iterated WLS; see the module docstring for the model and the checks.

    Raises:
        TriangulationError: fewer than two observations, or all bearing lines parallel.
        InputError: option values out of range.
    """
    if len(observations) < 2:
        raise TriangulationError(f"triangulation needs at least 2 bearings, got {len(observations)}")
    if not 0.0 <= min_crossing_deg <= 90.0:
        raise InputError(f"must be within [0, 90], got {min_crossing_deg!r}", field="min_crossing_deg")
    if max_iterations < 1:
        raise InputError(f"must be at least 1, got {max_iterations!r}", field="max_iterations")
    if not 0.0 < alpha < 1.0:
        raise InputError(f"must be within (0, 1), got {alpha!r}", field="alpha")

    lats = np.array([o.latitude for o in observations])
    lons = np.array([o.longitude for o in observations])
    bearings = np.array([normalise_bearing(o.bearing_deg) for o in observations])
    sigmas = np.radians([o.bearing_sigma_deg for o in observations])
    # Round the frame centre so that repeated calls over the same towers reuse one transformer; any nearby
    # centre is as exact (directions are measured in the frame itself).
    frame = _local_frame(round(float(lats.mean()), 2), round(float(lons.mean()), 2))
    probe_lon, probe_lat, _ = GEOD.fwd(lons, lats, bearings, np.full(len(lats), _DIRECTION_PROBE_M))
    cx, cy = frame.transform(lons, lats)
    px, py = frame.transform(probe_lon, probe_lat)
    centres = np.column_stack((cx, cy))
    directions = np.column_stack((px, py)) - centres
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    normals = np.column_stack((directions[:, 1], -directions[:, 0]))

    cosines = np.clip(np.abs(directions @ directions.T), 0.0, 1.0)
    crossing = float(np.degrees(np.arccos(cosines.min())))
    if crossing < 1e-6:
        raise TriangulationError("the bearing lines are parallel: they do not cross")

    weights = 1.0 / sigmas**2  # first pass: every range taken as 1 m
    point = _solve(centres, normals, weights)
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        ranges = np.einsum("ij,ij->i", point - centres, directions)
        weights = 1.0 / (np.maximum(np.abs(ranges), _MIN_RANGE_FOR_WEIGHT_M) * sigmas) ** 2
        new_point = _solve(centres, normals, weights)
        moved = float(np.linalg.norm(new_point - point))
        point = new_point
        if moved < tolerance_m:
            break

    ranges = np.einsum("ij,ij->i", point - centres, directions)
    weights = 1.0 / (np.maximum(np.abs(ranges), _MIN_RANGE_FOR_WEIGHT_M) * sigmas) ** 2
    residuals = np.einsum("ij,ij->i", point - centres, normals)
    chi2 = float(np.sum(weights * residuals**2))
    dof = len(observations) - 2
    p_value = chi2_sf(chi2, dof) if dof > 0 else None
    try:
        covariance = np.linalg.inv(_normal_matrix(normals, weights))
    except np.linalg.LinAlgError:
        raise TriangulationError("the bearing lines are (numerically) parallel: they do not cross") from None
    covariance = (covariance + covariance.T) / 2.0
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    major = eigenvectors[:, 1]
    orientation = math.degrees(math.atan2(float(major[0]), float(major[1]))) % 180.0

    reasons: list[str] = []
    for i, r in enumerate(ranges):
        if r <= 0.0:
            reasons.append(f"behind camera {i}: the point is {-r:.0f} m behind it")
    if crossing < min_crossing_deg:
        reasons.append(f"crossing angle {crossing:.1f}° is under {min_crossing_deg:g}°")
    if p_value is not None and p_value < alpha:
        reasons.append(f"inconsistent bearings: chi2 {chi2:.1f} with {dof} dof (p = {p_value:.2g} < {alpha:g})")
    if max_range_m is not None:
        for i, r in enumerate(ranges):
            if r > max_range_m:
                reasons.append(f"range from camera {i} is {r:.0f} m, beyond {max_range_m:.0f} m")

    lon, lat = frame.transform(float(point[0]), float(point[1]), direction="INVERSE")
    return Triangulation(
        latitude=float(lat),
        longitude=float(lon),
        sigma_major_m=math.sqrt(max(float(eigenvalues[1]), 0.0)),
        sigma_minor_m=math.sqrt(max(float(eigenvalues[0]), 0.0)),
        orientation_deg=orientation,
        crossing_angle_deg=crossing,
        chi2=chi2,
        dof=dof,
        p_value=p_value,
        accepted=not reasons,
        reasons=tuple(reasons),
        ranges_m=tuple(float(r) for r in ranges),
        residuals_m=tuple(float(r) for r in residuals),
        covariance_m2=(
            (float(covariance[0, 0]), float(covariance[0, 1])),
            (float(covariance[1, 0]), float(covariance[1, 1])),
        ),
        iterations=iterations,
    )
