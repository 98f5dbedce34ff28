"""Single-camera ground fixes: intersect a viewing ray with flat ground or a DEM, with an uncertainty region.

Why a fix always comes with a region, and often with only a wedge: on the flat Songliao plain a tower camera
sees its targets at grazing angles. From a 40 m mast a field 3 km away is 0.76° below the horizon, and a 0.1°
tilt error moves the flat-ground point by −350/+450 m (closed-loop.md § 1.4); at 0.2° above the horizon
there is no ground at all. So the range is reported as a near/far interval obtained by re-intersecting the
ray tilted by ±n·σ, and when the central ray does not land within the maximum range the result is the bearing
wedge alone, flagged, never an invented point.

Earth curvature and refraction: relative to the camera's horizontal plane the ground falls away by
``drop = d²·(1 − k) / (2·R_e)`` at horizontal distance ``d`` (``R_e`` = 6371 km, refraction coefficient
``k`` ≈ 0.13 for a standard atmosphere, which bends the ray down and so cancels about 1/7 of the curvature).
That is 0.61 m at 3 km and 1.71 m at 5 km — from a 40 m mast, 4 % of the height and ~200 m of range at 5 km,
so it is always applied unless ``curvature=False`` (which exists for textbook comparisons).

Vertical datum: the camera altitude, the flat-ground elevation and the DEM heights must share one datum.
DJI's ``AbsoluteAltitude`` and SRTM/Copernicus DEMs are both EGM96/EGM2008 heights above the geoid, which is
what strawfire assumes everywhere.

Horizontal positions along the ray are computed with ``pyproj.Geod.fwd`` along the ray's bearing; the DEM's
own CRS is handled with a ``pyproj.Transformer``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from video.camera import (
    GEOD,
    CameraSite,
    Lens,
    PtzPose,
    Ray,
    box_to_wedge,
    normalise_bearing,
    pixel_to_ray,
    sector_polygon,
)
from video.errors import DemError, InputError, NoGroundIntersectionError

if TYPE_CHECKING:
    from shapely import Polygon

__all__ = [
    "EARTH_RADIUS_M",
    "REFRACTION_K",
    "DemTerrain",
    "FlatTerrain",
    "GroundFix",
    "GroundStatus",
    "RayHit",
    "Terrain",
    "curvature_drop_m",
    "ground_fix",
    "intersect_ray",
    "locate_box",
    "locate_pixel",
]

EARTH_RADIUS_M: Final = 6_371_000.0
REFRACTION_K: Final = 0.13
_BISECTION_TOLERANCE_M: Final = 0.01
# The most terrain height the marcher's dense sampling can leave unseen above the ray between two samples.
_MAX_HIDDEN_TERRAIN_M: Final = 0.05
# Caps one dense scan's memory; with a 30 m DEM and slopes up to ~1.5 the cap is never reached.
_MAX_SAMPLES_PER_SCAN: Final = 4096
# Heights above the geoid that ground can have, metres; a DEM value outside is a void marker (see DemTerrain).
_PLAUSIBLE_HEIGHT_M: Final = (-1000.0, 9000.0)

log = logging.getLogger(__name__)


def curvature_drop_m(distance_m: float, refraction_k: float = REFRACTION_K) -> float:
    """How far the ground lies below the camera's horizontal plane at ``distance_m``, refraction included."""
    return distance_m * distance_m * (1.0 - refraction_k) / (2.0 * EARTH_RADIUS_M)


class Terrain(Protocol):
    """A ground surface: heights at WGS-84 points, plus what ray marching needs to step safely."""

    @property
    def resolution_m(self) -> float:
        """The finest horizontal detail of the surface, metres (the smallest marching step)."""
        ...

    def elevation(self, longitude: ArrayLike, latitude: ArrayLike) -> NDArray[np.float64]:
        """Heights at the points; NaN where the surface is unknown."""
        ...

    def bounds_near(self, longitude: float, latitude: float, radii_m: Sequence[float]) -> list[tuple[float, float]]:
        """For each radius: upper bounds of the height and of the gradient (m/m) of the surface within that ground
        distance of the point. The height bound is ``inf`` where unknown ground (no data, off the surface) lies
        within the radius; the gradient bound covers the known surface only."""
        ...


@dataclass(frozen=True, slots=True)
class FlatTerrain:
    """Level ground at one elevation (intersected in closed form)."""

    elevation_m: float

    @property
    def max_slope(self) -> float:
        """Flat."""
        return 0.0

    @property
    def resolution_m(self) -> float:
        """Any step is exact on a plane; one metre keeps generic marching cheap."""
        return 1.0

    def elevation(self, longitude: ArrayLike, latitude: ArrayLike) -> NDArray[np.float64]:
        """The same height everywhere."""
        shape = np.broadcast(np.asarray(longitude), np.asarray(latitude)).shape
        return np.full(shape, self.elevation_m, dtype=np.float64)

    def bounds_near(self, longitude: float, latitude: float, radii_m: Sequence[float]) -> list[tuple[float, float]]:
        """The one height, no slope, at every radius."""
        return [(self.elevation_m, 0.0)] * len(radii_m)


class DemTerrain:
    """A single-band elevation raster held in memory, sampled bilinearly; nodata and outside are NaN.

    Heights outside −1,000…9,000 m are no data too: no ground above the geoid lies there (the Dead Sea shore is at
    −430 m, Everest at 8,849 m), so such a value is a void marker of a DEM written without a declared nodata value
    (SRTM's −32768, 32767, −9999) and must not stand in the terrain as a 30 km spike. Each is counted in
    ``implausible_cells`` and logged.

    For the marcher, :meth:`bounds_near` answers "how high and how steep can the ground be within r metres of
    here" from two max-pyramids over the raster's cells (level ``l`` holds, per block of 2^l × 2^l cells, the
    highest corner and the steepest bilinear gradient). A local bound keeps one outlier — a spike, a mast in a DSM
    — from slowing every ray: with one global maximum slope, a single 1,000 m/m cell made every step crawl.
    """

    def __init__(
        self,
        heights: ArrayLike,
        transform: Any,
        crs: Any,
        *,
        source_name: str = "<array>",
    ) -> None:
        """``transform``: a north-up ``affine.Affine``; ``crs``: anything ``pyproj.CRS.from_user_input`` takes."""
        from pyproj import CRS, Transformer

        grid = np.asarray(heights, dtype=np.float64)
        if grid.ndim != 2 or grid.shape[0] < 2 or grid.shape[1] < 2:
            raise DemError(f"{source_name}: a DEM needs a 2-D grid of at least 2×2 cells, got shape {grid.shape}")
        if transform.b != 0.0 or transform.d != 0.0:
            raise DemError(f"{source_name}: rotated rasters are not supported (transform {tuple(transform)[:6]})")
        lowest, highest = _PLAUSIBLE_HEIGHT_M
        with np.errstate(invalid="ignore"):
            implausible = np.isinf(grid) | (grid < lowest) | (grid > highest)
        self.implausible_cells = int(np.count_nonzero(implausible))
        if self.implausible_cells:
            grid = np.where(implausible, np.nan, grid)  # a copy: the caller's array stays as it was
            log.warning(
                "%s: %d cells with heights outside %g…%g m (void markers without a declared nodata value) "
                "are read as no data",
                source_name,
                self.implausible_cells,
                lowest,
                highest,
            )
        self.source_name = source_name
        self.heights = grid
        self._transform = transform
        try:
            dem_crs = CRS.from_user_input(crs)
        except Exception as exc:  # pyproj raises CRSError, but also TypeError for odd inputs
            raise DemError(f"{source_name}: unusable CRS {crs!r}: {exc}") from None
        self._to_dem = Transformer.from_crs("EPSG:4326", dem_crs, always_xy=True)
        self._pixel_m = self._pixel_size_m(dem_crs)

    @classmethod
    def from_file(cls, path: str | Path) -> DemTerrain:
        """Read band 1 of a GeoTIFF (or any raster GDAL reads) into memory."""
        import rasterio
        from rasterio.errors import RasterioError

        path = Path(path)
        if not path.is_file():
            raise DemError(f"{path}: no such DEM file")
        try:
            with rasterio.open(path) as ds:
                if ds.crs is None:
                    raise DemError(f"{path}: the raster has no CRS")
                band = ds.read(1, masked=True).astype(np.float64)
                heights = np.ma.filled(band, np.nan)
                return cls(heights, ds.transform, ds.crs.to_wkt(), source_name=str(path))
        except RasterioError as exc:
            raise DemError(f"{path}: cannot read as a raster: {exc}") from None

    def _pixel_size_m(self, dem_crs: Any) -> tuple[float, float]:
        """The smallest ground length (metres, geodesic) of one pixel step along the columns and along the rows.

        Measured on the ground, not read off the CRS units: a projected CRS's metre is a ground metre only where its
        scale factor is 1 (Web Mercator's is 1/cos φ, so at Changchun one EPSG:3857 "metre" is 0.72 m of ground),
        and degrees shrink poleward. Taking the smallest length over a 3×3 grid of places (corners, edge midpoints,
        centre) keeps the gradient bounds upper bounds of the true gradient, and ``bounds_near``'s cell reach at least
        the disc's, which the ray marcher's step bounds need.
        """
        from pyproj import Transformer

        t = self._transform
        rows, cols = self.heights.shape
        to_lonlat = Transformer.from_crs(dem_crs, "EPSG:4326", always_xy=True)
        fractions = (0.0, 0.5, 1.0)
        cs = np.array([f * (cols - 1) for f in fractions for _ in fractions])
        rs = np.array([f * (rows - 1) for _ in fractions for f in fractions])
        x, y = t.c + (cs + 0.5) * t.a, t.f + (rs + 0.5) * t.e
        lon, lat = to_lonlat.transform(x, y)
        lon_x, lat_x = to_lonlat.transform(x + t.a, y)
        lon_y, lat_y = to_lonlat.transform(x, y + t.e)
        lengths = []
        for end_lon, end_lat in ((lon_x, lat_x), (lon_y, lat_y)):
            _, _, dist = GEOD.inv(lon, np.clip(lat, -89.9, 89.9), end_lon, np.clip(end_lat, -89.9, 89.9))
            dist = np.asarray(dist, dtype=np.float64)
            if not np.all(np.isfinite(dist)) or float(dist.min()) <= 0.0:
                raise DemError(f"{self.source_name}: cannot measure the raster's cells on the ground")
            lengths.append(float(dist.min()))
        return lengths[0], lengths[1]

    @cached_property
    def _pyramids(self) -> tuple[list[NDArray[np.float32]], list[NDArray[np.float32]]]:
        """Per-block upper bounds of height and gradient, levels 1, 2, … (index 0 is level 1; see the class doc).

        Built on first use (the first marched ray, or ``max_slope``), not when the DEM is read: they are nearly all
        of a DEM's set-up (a 3,600 × 3,600 grid: 2–3 s, against 0.1 s for the rest), and a DEM that only answers
        heights never needs them.

        Level 0 is one bilinear cell (the square between four pixel centres): its height is at most its highest
        corner, and its gradient at most ``hypot(max |Δ across| / dx, max |Δ down| / dy)`` over its two pairs of
        opposite edges (the bilinear surface's partial derivatives vary linearly between them). A cell with a
        nodata corner has no height bound (NaN, which ``np.maximum`` carries up the pyramid); its finite edges still
        count for the gradient, as they did for the old global bound. Level 0 itself is not kept: the marcher's
        smallest disc (half a cell) already spans two cells, and without it the pyramids take a third of the
        heights' memory. Stored as float32 rounded up, so they stay bounds.
        """
        h = self.heights
        dx, dy = self._pixel_m
        highest = np.maximum(np.maximum(h[:-1, :-1], h[:-1, 1:]), np.maximum(h[1:, :-1], h[1:, 1:]))
        with np.errstate(invalid="ignore"):
            across = np.fmax(np.abs(h[:-1, 1:] - h[:-1, :-1]), np.abs(h[1:, 1:] - h[1:, :-1])) / dx
            down = np.fmax(np.abs(h[1:, :-1] - h[:-1, :-1]), np.abs(h[1:, 1:] - h[:-1, 1:])) / dy
        steepest = np.hypot(np.nan_to_num(across, nan=0.0), np.nan_to_num(down, nan=0.0))
        heights_up = [_coarser(_float32_rounded_up(highest), -np.inf)]
        slopes_up = [_coarser(_float32_rounded_up(steepest), 0.0)]
        while heights_up[-1].shape != (1, 1):
            heights_up.append(_coarser(heights_up[-1], -np.inf))
            slopes_up.append(_coarser(slopes_up[-1], 0.0))
        return heights_up, slopes_up

    @property
    def max_slope(self) -> float:
        """An upper bound of the bilinear surface's gradient anywhere in the raster, m/m."""
        return float(self._pyramids[1][-1][0, 0])

    def bounds_near(self, longitude: float, latitude: float, radii_m: Sequence[float]) -> list[tuple[float, float]]:
        """Upper bounds of height and gradient within each of ``radii_m`` metres of the point (see :class:`Terrain`).

        A disc of radius r is covered by the cells within r / (smallest ground length of a pixel step) columns and
        rows of the point, 1 % more for the grid's curvature; those cells lie in at most 2 × 2 blocks of the
        pyramid level whose blocks are at least that wide, and the bound is the largest of those blocks' — a
        bound over slightly more ground than the disc, never less.
        """
        x, y = self._to_dem.transform(longitude, latitude)
        t = self._transform
        column = (float(x) - t.c) / t.a - 0.5
        row = (float(y) - t.f) / t.e - 0.5
        rows, cols = self.heights.shape
        dx, dy = self._pixel_m
        highest_up, steepest_up = self._pyramids
        top = len(highest_up)  # the coarsest level
        bounds: list[tuple[float, float]] = []
        for radius in radii_m:
            reach_columns, reach_rows = 1.01 * radius / dx, 1.01 * radius / dy
            off_raster = (
                column - reach_columns < 0.0
                or row - reach_rows < 0.0
                or column + reach_columns > cols - 1
                or row + reach_rows > rows - 1
            )
            # Cell j spans pixel centres j..j+1, so the cells touched are floor(low)..floor(high), on the raster.
            c0 = min(max(math.floor(column - reach_columns), 0), cols - 2)
            c1 = min(max(math.floor(column + reach_columns), 0), cols - 2)
            r0 = min(max(math.floor(row - reach_rows), 0), rows - 2)
            r1 = min(max(math.floor(row + reach_rows), 0), rows - 2)
            level = min(max(1, max(c1 - c0, r1 - r0).bit_length()), top)  # blocks of 2^level cells, ≥ the span
            blocks = np.s_[r0 >> level : (r1 >> level) + 1, c0 >> level : (c1 >> level) + 1]
            highest = float(highest_up[level - 1][blocks].max())  # NaN when any cell in them has no data
            steepest = float(steepest_up[level - 1][blocks].max())
            bounds.append((math.inf if off_raster or math.isnan(highest) else highest, steepest))
        return bounds

    @property
    def resolution_m(self) -> float:
        """The smaller pixel side, metres."""
        return min(self._pixel_m)

    def elevation(self, longitude: ArrayLike, latitude: ArrayLike) -> NDArray[np.float64]:
        """Bilinear heights between pixel centres; NaN outside the raster or next to a nodata cell."""
        lon, lat = np.broadcast_arrays(np.asarray(longitude, dtype=np.float64), np.asarray(latitude, dtype=np.float64))
        x, y = self._to_dem.transform(lon, lat)
        t = self._transform
        # North-up raster (checked at construction): column and row are independent linear maps; -0.5 puts
        # integers on pixel centres, where the heights are.
        c = (np.asarray(x, dtype=np.float64) - t.c) / t.a - 0.5
        r = (np.asarray(y, dtype=np.float64) - t.f) / t.e - 0.5
        rows, cols = self.heights.shape
        inside = (c >= 0.0) & (c <= cols - 1) & (r >= 0.0) & (r <= rows - 1)
        c0 = np.clip(np.floor(np.where(inside, c, 0.0)).astype(np.intp), 0, cols - 2)
        r0 = np.clip(np.floor(np.where(inside, r, 0.0)).astype(np.intp), 0, rows - 2)
        fc = np.where(inside, c - c0, 0.0)
        fr = np.where(inside, r - r0, 0.0)
        h = self.heights
        top = h[r0, c0] * (1.0 - fc) + h[r0, c0 + 1] * fc
        bottom = h[r0 + 1, c0] * (1.0 - fc) + h[r0 + 1, c0 + 1] * fc
        return np.asarray(np.where(inside, top * (1.0 - fr) + bottom * fr, np.nan), dtype=np.float64)


def _float32_rounded_up(values: NDArray[np.float64]) -> NDArray[np.float32]:
    """``values`` as float32, each rounded towards +inf so an upper bound stays one (NaN stays NaN)."""
    rounded = values.astype(np.float32)
    with np.errstate(invalid="ignore"):
        low = rounded < values
    rounded[low] = np.nextafter(rounded[low], np.float32(np.inf))
    return rounded


def _coarser(level: NDArray[np.float32], fill: float) -> NDArray[np.float32]:
    """The next pyramid level: the maximum of each 2 × 2 block (``fill`` pads an odd edge; NaN propagates)."""
    rows, cols = level.shape
    padded = np.pad(level, ((0, rows % 2), (0, cols % 2)), constant_values=fill)
    return np.maximum(
        np.maximum(padded[0::2, 0::2], padded[0::2, 1::2]), np.maximum(padded[1::2, 0::2], padded[1::2, 1::2])
    )


@dataclass(frozen=True, slots=True)
class RayHit:
    """Where a ray meets the ground: position, ground height, horizontal and slant distance from the camera."""

    latitude: float
    longitude: float
    ground_altitude_m: float
    horizontal_range_m: float
    slant_range_m: float


def _check_origin(latitude: float, longitude: float, altitude_m: float, max_range_m: float) -> None:
    for name, value, low, high in (
        ("latitude", latitude, -90.0, 90.0),
        ("longitude", longitude, -180.0, 180.0),
        ("max_range_m", max_range_m, 1e-3, 1e6),
    ):
        if not (math.isfinite(value) and low <= value <= high):
            raise InputError(f"must be within [{low:g}, {high:g}], got {value!r}", field=name)
    if not math.isfinite(altitude_m):
        raise InputError(f"must be finite, got {altitude_m!r}", field="altitude_m")


def intersect_ray(
    latitude: float,
    longitude: float,
    altitude_m: float,
    ray: Ray,
    terrain: Terrain,
    *,
    max_range_m: float = 8000.0,
    refraction_k: float = REFRACTION_K,
    curvature: bool = True,
) -> RayHit:
    """The first point where ``ray`` from a camera at ``altitude_m`` meets ``terrain``.

    Flat terrain is solved in closed form: with ``h`` the camera height above the ground, ``t = tan(elevation)``
    and ``a = (1 − k)/(2·R_e)``, the ray height ``h + d·t`` meets the dropping ground ``−a·d²`` at the smaller
    root of ``a·d² + t·d + h = 0``, i.e. ``d = 2h / (−t + √(t² − 4ah))`` (the stable form). No real root means
    the ray passes over the horizon.

    Other terrain is marched: the ray's height above the curved datum is ``z + d·t + a·d²``. At clearance ``g``
    above the surface, for radii r = half a cell, twice that, … up to the rest of the range, the terrain's local
    bounds within r (:meth:`Terrain.bounds_near`: highest ground ``H_r``, steepest slope ``s_r``) each give a step
    that provably cannot cross the surface: ``g / (−t + s_r)`` (the clearance shrinks no faster), and
    ``(z_ray − H_r) / −t`` (the ray stays above everything there); the march takes the longest, up to r. A spike
    or a steep cell therefore only slows the rays that pass near it. Once the longest safe step is under half a
    DEM cell, the next half cell is sampled densely enough that no more than 5 cm of terrain can hide above the
    ray between two samples; the first sample below the surface is bisected to 1 cm.

    Raises:
        NoGroundIntersectionError: ``above_horizon``, ``beyond_max_range`` or ``outside_dem``.
        InputError: the camera is at or below the ground.
        DemError: the camera is not over the DEM.
    """
    _check_origin(latitude, longitude, altitude_m, max_range_m)
    a = (1.0 - refraction_k) / (2.0 * EARTH_RADIUS_M) if curvature else 0.0
    elevation = max(-90.0, min(90.0, ray.elevation_deg))
    if elevation <= -90.0 + 1e-9:
        elevation = -90.0 + 1e-9  # tan(-90°) is infinite; a nanodegree off nadir is the same ground point
    tan_e = math.tan(math.radians(elevation))
    bearing = normalise_bearing(ray.bearing_deg)

    if isinstance(terrain, FlatTerrain):
        height = altitude_m - terrain.elevation_m
        if height <= 0.0:
            raise InputError(f"the camera ({altitude_m:g} m) is not above the ground ({terrain.elevation_m:g} m)")
        disc = tan_e * tan_e - 4.0 * a * height
        if tan_e >= 0.0 or disc < 0.0:
            raise NoGroundIntersectionError(
                f"the ray at {ray.elevation_deg:+.3f}° passes over the horizon of ground {height:.1f} m below",
                reason="above_horizon",
            )
        distance = 2.0 * height / (-tan_e + math.sqrt(disc))
        if distance > max_range_m:
            raise NoGroundIntersectionError(
                f"the ray lands {distance:.0f} m away, beyond the maximum range {max_range_m:.0f} m",
                reason="beyond_max_range",
            )
        lon, lat, _ = GEOD.fwd(longitude, latitude, bearing, distance)
        slant = math.hypot(distance, height + a * distance * distance)
        return RayHit(float(lat), float(lon), terrain.elevation_m, distance, slant)

    return _march(latitude, longitude, altitude_m, bearing, tan_e, a, terrain, max_range_m)


def _march(
    latitude: float,
    longitude: float,
    altitude_m: float,
    bearing: float,
    tan_e: float,
    a: float,
    terrain: Terrain,
    max_range_m: float,
) -> RayHit:
    def clearance(d: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """The ray's height above the terrain at distances ``d``, and where those points are (lat, lon)."""
        n = len(d)
        lon, lat, _ = GEOD.fwd(np.full(n, longitude), np.full(n, latitude), np.full(n, bearing), d)
        lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        ground = np.asarray(terrain.elevation(lon, lat), dtype=np.float64)
        # The datum surface falls a·d² below the camera's horizontal plane, so the ray's height above it gains a·d².
        return altitude_m + d * tan_e + a * d * d - ground, lat, lon

    def clearance_at(d: float) -> float:
        return float(clearance(np.array([d]))[0][0])

    def hit_at(lo: float, hi: float) -> RayHit:
        while hi - lo > _BISECTION_TOLERANCE_M:
            mid = 0.5 * (lo + hi)
            g_mid = clearance_at(mid)
            if math.isnan(g_mid) or g_mid > 0.0:
                lo = mid
            else:
                hi = mid
        _, lats, lons = clearance(np.array([hi]))
        ground = float(terrain.elevation(lons, lats)[0])
        slant = math.hypot(hi, altitude_m + a * hi * hi - ground)
        return RayHit(float(lats[0]), float(lons[0]), ground, hi, slant)

    def left_dem(d: float) -> NoGroundIntersectionError:
        return NoGroundIntersectionError(
            f"the ray leaves the DEM {d:.0f} m out without meeting the ground", reason="outside_dem"
        )

    g = clearance_at(0.0)
    if math.isnan(g):
        raise DemError(f"the camera ({latitude:.6f}, {longitude:.6f}) is not over the DEM")
    if g <= 0.0:
        raise InputError(f"the camera ({altitude_m:g} m) is not above the terrain ({altitude_m - g:g} m)")
    descent = max(0.0, -tan_e)
    curvature_rate = 2.0 * a * max_range_m
    min_step = 0.5 * terrain.resolution_m
    d = 0.0
    lon_here, lat_here = longitude, latitude
    while d < max_range_m:
        remaining = max_range_m - d
        radii = [min(min_step, remaining)]
        while radii[-1] < remaining:
            radii.append(min(2.0 * radii[-1], remaining))
        ray_height = altitude_m + d * tan_e + a * d * d
        bounds = terrain.bounds_near(lon_here, lat_here, radii)
        step = 0.0
        for radius, (highest, steepest) in zip(radii, bounds, strict=True):
            # Within `radius` the clearance shrinks at most at -tan(e) + steepest per metre (the curvature term
            # only ever adds clearance), so g / that rate cannot cross the surface; and while the ray stays above
            # the highest ground there, it cannot meet it either.
            rate = descent + steepest
            reach = g / rate if rate > 0.0 else math.inf
            if ray_height > highest:
                reach = max(reach, (ray_height - highest) / descent if descent > 0.0 else math.inf)
            step = max(step, min(radius, reach))
        if step >= radii[0]:
            d_next = d + step if step < remaining else max_range_m
            gs, lats, lons = clearance(np.array([d_next]))
            g_next = float(gs[0])
            if math.isnan(g_next):
                raise left_dem(d_next)
            if g_next <= 0.0:
                return hit_at(d, d_next)
            d, g, lat_here, lon_here = d_next, g_next, float(lats[0]), float(lons[0])
            continue
        # Closer to the surface than half a cell's worth of safe steps, they would crawl: the next half cell is
        # sampled densely instead, in one vectorised call. Between two samples s apart that are both above the
        # surface, the terrain can rise above the ray by at most s·rate/2 (it has to go up and come back down at
        # no more than `rate`), so the spacing bounds the height of terrain a sample gap can hide — a ridge, an
        # embankment or a DSM tree line narrower than a cell is not stepped over (a bare "at least half a cell"
        # step was). The slope bound is the local one of this half cell, so a spike elsewhere costs nothing here.
        span = radii[0]
        scan_rate = abs(tan_e) + bounds[0][1] + curvature_rate
        spacing = 2.0 * _MAX_HIDDEN_TERRAIN_M / scan_rate if scan_rate > 0.0 else span
        count = min(max(1, math.ceil(span / spacing)), _MAX_SAMPLES_PER_SCAN)
        distances = d + span * np.arange(1, count + 1) / count
        gs, lats, lons = clearance(distances)
        stops = np.nonzero(np.isnan(gs) | (gs <= 0.0))[0]
        if len(stops):
            k = int(stops[0])
            if math.isnan(gs[k]):
                raise left_dem(float(distances[k]))
            return hit_at(d if k == 0 else float(distances[k - 1]), float(distances[k]))
        d, g, lat_here, lon_here = float(distances[-1]), float(gs[-1]), float(lats[-1]), float(lons[-1])
    # Past d = -tan(e)/(2a) the ray climbs away from the curved datum: it went over the horizon.
    reason = "above_horizon" if tan_e + 2.0 * a * max_range_m >= 0.0 else "beyond_max_range"
    raise NoGroundIntersectionError(
        f"the ray does not meet the terrain within {max_range_m:.0f} m ({reason.replace('_', ' ')})", reason=reason
    )


class GroundStatus(StrEnum):
    """Whether the central ray found the ground, and if not, why."""

    HIT = "hit"
    ABOVE_HORIZON = "above_horizon"
    BEYOND_MAX_RANGE = "beyond_max_range"
    OUTSIDE_DEM = "outside_dem"


@dataclass(frozen=True, slots=True)
class GroundFix:
    """A single-camera location: a point when the ray lands, always an uncertainty region.

    Attributes:
        status: ``hit``, or why there is no point (then ``hit`` is ``None`` and ``region`` is the whole wedge).
        ray: the central ray.
        hit: the central ray's ground point.
        near_range_m, far_range_m: horizontal ranges of the region (from re-intersecting the ray tilted and
            panned by ±n·σ).
        far_open: some perturbed ray did not land within the maximum range, so ``far_range_m`` is that maximum —
            the usual case at grazing angles.
        half_width_deg: the region's bearing half-width (n·σ_pan plus any box half-width).
        region: the region as a WGS-84 polygon (lon/lat).
    """

    status: GroundStatus
    ray: Ray
    hit: RayHit | None
    near_range_m: float
    far_range_m: float
    far_open: bool
    half_width_deg: float
    region: Polygon

    @property
    def located(self) -> bool:
        """Whether there is a point, not just a wedge."""
        return self.hit is not None

    @property
    def cross_range_m(self) -> float | None:
        """Half-width of the region across the ray at the hit, metres: to the wedge's edge, or to its far arc when
        that comes first (from ±90° on the edge is never met, where ``r·tan`` ran to infinity)."""
        if self.hit is None:
            return None
        r = self.hit.horizontal_range_m
        to_arc = math.sqrt(max(0.0, self.far_range_m**2 - r**2))
        if self.half_width_deg >= 90.0:
            return to_arc
        return min(to_arc, r * math.tan(math.radians(self.half_width_deg)))


def ground_fix(
    latitude: float,
    longitude: float,
    altitude_m: float,
    ray: Ray,
    terrain: Terrain,
    *,
    sigma_bearing_deg: float,
    sigma_elevation_deg: float,
    n_sigma: float = 2.0,
    extra_half_width_deg: float = 0.0,
    max_range_m: float = 8000.0,
    refraction_k: float = REFRACTION_K,
    curvature: bool = True,
) -> GroundFix:
    """Intersect ``ray`` and bound the result by the pose uncertainty.

    The region's ranges are the extremes over the 3×3 combinations of bearing ``{−nσ, 0, +nσ}`` and elevation
    ``{−nσ, 0, +nσ}`` (bearing matters on a DEM, where a hill beside the ray stops a neighbouring ray sooner).
    Perturbing the ray's elevation by σ_tilt is exact for the optical axis and a first-order approximation for
    off-centre pixels. A perturbation that tips the ray over the nadir (a drone looking straight down) lands
    behind the camera; the region then runs through the camera's foot, from the farthest point ahead to the
    farthest behind, and ``near_range_m`` is 0.
    """
    for name, value in (("sigma_bearing_deg", sigma_bearing_deg), ("sigma_elevation_deg", sigma_elevation_deg)):
        if not (math.isfinite(value) and 0.0 <= value <= 45.0):
            raise InputError(f"must be within [0, 45], got {value!r}", field=name)
    if not (math.isfinite(n_sigma) and 0.0 <= n_sigma <= 10.0):
        raise InputError(f"must be within [0, 10], got {n_sigma!r}", field="n_sigma")
    if not (math.isfinite(extra_half_width_deg) and 0.0 <= extra_half_width_deg <= 180.0):
        raise InputError(f"must be within [0, 180], got {extra_half_width_deg!r}", field="extra_half_width_deg")
    half_width = min(180.0, n_sigma * sigma_bearing_deg + extra_half_width_deg)  # at most the whole circle
    options: dict[str, Any] = {"max_range_m": max_range_m, "refraction_k": refraction_k, "curvature": curvature}
    try:
        hit = intersect_ray(latitude, longitude, altitude_m, ray, terrain, **options)
    except NoGroundIntersectionError as exc:
        region = sector_polygon(
            latitude, longitude, ray.bearing_deg - half_width, ray.bearing_deg + half_width, max_range_m
        )
        return GroundFix(GroundStatus(exc.reason), ray, None, 0.0, max_range_m, True, half_width, region)

    ranges = [hit.horizontal_range_m]
    behind_ranges: list[float] = []  # perturbed rays tipped over the nadir land behind the camera
    far_open = False
    behind_open = False
    db, de = n_sigma * sigma_bearing_deg, n_sigma * sigma_elevation_deg
    for bearing_offset in (-db, 0.0, db):
        for elevation_offset in (-de, 0.0, de):
            if bearing_offset == 0.0 and elevation_offset == 0.0:
                continue
            bearing = ray.bearing_deg + bearing_offset
            elevation = min(90.0, ray.elevation_deg + elevation_offset)
            # A ray tilted past straight down (a drone gimbal at −90° ± σ) is not the nadir ray: it looks back, at
            # bearing + 180° and elevation −180° − e, and lands behind the camera.
            behind = elevation < -90.0
            if behind:
                bearing, elevation = bearing + 180.0, -180.0 - elevation
            try:
                landed = intersect_ray(latitude, longitude, altitude_m, Ray(bearing, elevation), terrain, **options)
            except NoGroundIntersectionError:
                if behind:
                    behind_open = True
                else:
                    far_open = True
                continue
            (behind_ranges if behind else ranges).append(landed.horizontal_range_m)
    near = min(ranges)
    far = max_range_m if far_open else max(ranges)
    if behind_ranges or behind_open:
        # The region runs through the nadir: every range from 0 to the farthest point on either side is possible.
        near = 0.0
        behind_far = max_range_m if behind_open else max(behind_ranges)
        region = _through_nadir_polygon(latitude, longitude, ray.bearing_deg, half_width, max(far, 0.5), behind_far)
        return GroundFix(GroundStatus.HIT, ray, hit, near, far, far_open or behind_open, half_width, region)
    if far - near < 1.0:  # zero sigmas: keep the region a polygon with area
        near, far = max(0.0, hit.horizontal_range_m - 0.5), max(0.0, hit.horizontal_range_m - 0.5) + 1.0
    region = sector_polygon(latitude, longitude, ray.bearing_deg - half_width, ray.bearing_deg + half_width, far, near)
    return GroundFix(GroundStatus.HIT, ray, hit, near, far, far_open, half_width, region)


def _through_nadir_polygon(
    latitude: float,
    longitude: float,
    bearing_deg: float,
    half_width_deg: float,
    ahead_m: float,
    behind_m: float,
    *,
    step_deg: float = 0.5,
) -> Polygon:
    """The region of a ray whose uncertainty spans the nadir: the arc ``bearing ± half_width`` at ``ahead_m`` and the
    opposite arc at ``behind_m``, joined into one polygon around the camera's foot.

    The joining edges also take in the ground beside the nadir, which the bearing/elevation model does not reach
    but a gimbal's roll error does; a point-touching "bow tie" of two sectors would not be a single polygon.
    """
    from shapely import Polygon

    if half_width_deg >= 90.0:  # the two arcs would overlap: the region is the whole disc
        radius = max(ahead_m, behind_m, 0.5)
        return sector_polygon(latitude, longitude, bearing_deg, bearing_deg + 360.0, radius, step_deg=step_deg)
    n = max(2, math.ceil(2.0 * half_width_deg / step_deg) + 1)
    offsets = np.linspace(-half_width_deg, half_width_deg, n)
    bearings = np.concatenate((bearing_deg + offsets, bearing_deg + 180.0 + offsets))
    distances = np.concatenate((np.full(n, ahead_m), np.full(n, max(behind_m, 0.5))))
    lons, lats, _ = GEOD.fwd(np.full(2 * n, longitude), np.full(2 * n, latitude), bearings, distances)
    return Polygon(zip(np.asarray(lons).tolist(), np.asarray(lats).tolist(), strict=True))


def locate_pixel(
    site: CameraSite,
    lens: Lens,
    pose: PtzPose,
    u: float,
    v: float,
    *,
    terrain: Terrain | None = None,
    n_sigma: float = 2.0,
    max_range_m: float = 8000.0,
    refraction_k: float = REFRACTION_K,
    curvature: bool = True,
) -> GroundFix:
    """Ground fix of one pixel from a tower camera (flat ground at the site elevation unless a DEM is given)."""
    return ground_fix(
        site.latitude,
        site.longitude,
        site.camera_altitude_m,
        pixel_to_ray(site, lens, pose, u, v),
        terrain if terrain is not None else FlatTerrain(site.ground_elevation_m),
        sigma_bearing_deg=pose.sigma_pan_deg,
        sigma_elevation_deg=pose.sigma_tilt_deg,
        n_sigma=n_sigma,
        max_range_m=max_range_m,
        refraction_k=refraction_k,
        curvature=curvature,
    )


def locate_box(
    site: CameraSite,
    lens: Lens,
    pose: PtzPose,
    box: tuple[float, float, float, float],
    *,
    terrain: Terrain | None = None,
    n_sigma: float = 2.0,
    max_range_m: float = 8000.0,
    refraction_k: float = REFRACTION_K,
    curvature: bool = True,
) -> GroundFix:
    """Ground fix of a detection box ``(xmin, ymin, xmax, ymax)``.

    The ray goes through the box's *bottom* centre: smoke rises from the fire, so the plume's lowest point is
    where it meets the ground, and the box centre would land too far away. The region is as wide as the box's
    bearing wedge (:func:`video.camera.box_to_wedge`: the box, its bearing turn under a tilt error, n·σ_pan).
    """
    wedge = box_to_wedge(site, lens, pose, box, max_range_m=max_range_m, n_sigma=n_sigma)
    beyond_pan = max(0.0, wedge.half_width_deg - n_sigma * pose.sigma_pan_deg)
    base = pixel_to_ray(site, lens, pose, (box[0] + box[2]) / 2.0, box[3])
    return ground_fix(
        site.latitude,
        site.longitude,
        site.camera_altitude_m,
        Ray(wedge.centre_bearing_deg, base.elevation_deg),
        terrain if terrain is not None else FlatTerrain(site.ground_elevation_m),
        sigma_bearing_deg=pose.sigma_pan_deg,
        sigma_elevation_deg=pose.sigma_tilt_deg,
        n_sigma=n_sigma,
        extra_half_width_deg=beyond_pan,
        max_range_m=max_range_m,
        refraction_k=refraction_k,
        curvature=curvature,
    )
