"""Regression tests from the geometry audit: DEM ray marching and its metric scale, rays past the nadir.

Each expectation is checked against an independent computation (brute-force sampling of the DEM along the ray,
pyproj's Geod for ground distances), not against the code under test.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from PIL import Image, ImageOps
from pyproj import Transformer
from shapely import Point

from tests.conftest import shared_path
from video.camera import GEOD, Ray
from video.drone import locate, read_drone_metadata
from video.errors import InputError, NoGroundIntersectionError
from video.ground import DemTerrain, FlatTerrain, curvature_drop_m, ground_fix, intersect_ray

LAT, LON = 43.9, 125.3
GROUND = 200.0
CELL = 30.0


def first_crossing_brute_force(
    dem: DemTerrain,
    altitude_m: float,
    ray: Ray,
    max_range_m: float,
    spacing_m: float = 0.02,
    *,
    curvature: bool = False,
) -> float | None:
    """The first distance where the ray is at or below the DEM, by dense sampling; with ``curvature`` the datum
    falls away by ``curvature_drop_m`` (closed-loop.md § 1.1), so the ray's clearance gains it."""
    distances = np.arange(spacing_m, max_range_m, spacing_m)
    lons, lats, _ = GEOD.fwd(
        np.full(len(distances), LON), np.full(len(distances), LAT), np.full(len(distances), ray.bearing_deg), distances
    )
    ground = dem.elevation(lons, lats)
    ray_height = altitude_m + distances * math.tan(math.radians(ray.elevation_deg))
    if curvature:
        ray_height += curvature_drop_m(1.0) * distances**2
    below = np.nonzero(np.isfinite(ground) & (ray_height <= ground))[0]
    return float(distances[below[0]]) if len(below) else None


def ridge_dem(crs: str) -> DemTerrain:
    """Flat ground at 200 m with a one-cell-wide, 60 m high north-south ridge (an embankment, a tree line in a DSM)
    40 cells east of the camera."""
    x0, y0 = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(LON, LAT)
    cols, rows = 120, 40
    heights = np.full((rows, cols), GROUND)
    heights[:, 60] = GROUND + 60.0
    return DemTerrain(heights, Affine(CELL, 0.0, x0 - 20 * CELL, 0.0, -CELL, y0 + 20 * CELL), crs)


@pytest.mark.parametrize("camera_height_m", [51.0, 53.3, 55.0, 56.2, 57.5, 59.0])
def test_geometry_dem_ray_does_not_pass_through_a_narrow_ridge(camera_height_m: float) -> None:
    # The ridge's top stands above the (horizontal) ray, so the ray must stop on its near face. Before the fix the
    # marcher's "at least half a cell" step jumped over the ridge top in most of these cases and reported the ray
    # as leaving the DEM ~3.9 km out (or a point far behind the ridge).
    dem = ridge_dem("EPSG:32651")
    ray = Ray(90.0, 0.0)
    expected = first_crossing_brute_force(dem, GROUND + camera_height_m, ray, 2000.0)
    assert expected is not None
    hit = intersect_ray(LAT, LON, GROUND + camera_height_m, ray, dem, max_range_m=2000.0, curvature=False)
    assert hit.horizontal_range_m == pytest.approx(expected, abs=0.1)


def test_geometry_dem_in_web_mercator_measures_its_cells_on_the_ground() -> None:
    # EPSG:3857 metres are not ground metres: at 43.9° N one Mercator "metre" is cos(43.9°) = 0.72 m on the ground.
    # The marcher's step bound needs the true (steepest) slope; before the fix it took the CRS units at face value
    # and reported a 60 m ridge over a 30-unit cell as a slope of 2.0 instead of 2.77.
    dem = ridge_dem("EPSG:3857")
    to_lonlat = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    x0, y0 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(LON, LAT)
    (lon_a, lon_b), (lat_a, lat_b) = to_lonlat.transform([x0, x0 + CELL], [y0, y0])
    _, _, cell_on_ground = GEOD.inv(lon_a, lat_a, lon_b, lat_b)
    assert cell_on_ground == pytest.approx(CELL * math.cos(math.radians(LAT)), rel=0.01)
    assert dem.resolution_m <= cell_on_ground
    assert dem.max_slope >= 60.0 / cell_on_ground
    for camera_height_m in (51.0, 55.0, 59.0):
        expected = first_crossing_brute_force(dem, GROUND + camera_height_m, Ray(90.0, 0.0), 2000.0)
        hit = intersect_ray(
            LAT, LON, GROUND + camera_height_m, Ray(90.0, 0.0), dem, max_range_m=2000.0, curvature=False
        )
        assert expected is not None
        assert hit.horizontal_range_m == pytest.approx(expected, abs=0.1)


def test_geometry_dem_march_is_still_fast_on_a_grazing_ray() -> None:
    # A tower ray 0.3° below the horizon over gently rolling farmland: the fix must not turn the march into a
    # metre-by-metre crawl (bounded here by counting terrain lookups).
    x0, y0 = Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True).transform(LON, LAT)
    cols, rows = 400, 60
    xs = np.arange(cols) * CELL
    heights = np.tile(GROUND + 3.0 * np.sin(xs / 400.0), (rows, 1))
    dem = DemTerrain(heights, Affine(CELL, 0.0, x0 - 30 * CELL, 0.0, -CELL, y0 + 30 * CELL), "EPSG:32651")
    calls = 0
    original = dem.elevation

    def counting(longitude: object, latitude: object) -> np.ndarray:
        nonlocal calls
        calls += 1
        return original(longitude, latitude)  # type: ignore[arg-type]

    dem.elevation = counting  # type: ignore[method-assign]
    hit = intersect_ray(LAT, LON, GROUND + 40.0, Ray(90.0, -0.3), dem, max_range_m=10_000.0)
    expected = first_crossing_brute_force(dem, GROUND + 40.0, Ray(90.0, -0.3), 10_000.0, 0.05, curvature=True)
    assert expected is not None
    assert hit.horizontal_range_m == pytest.approx(expected, abs=0.1)
    assert calls < 200


@pytest.mark.parametrize("pitch_deg", [-90.0, -89.0])
def test_geometry_ray_past_the_nadir_lands_behind_and_stays_in_the_region(pitch_deg: float) -> None:
    # A drone 120 m above flat ground looking (nearly) straight down with σ_pitch 1°: a true pitch 1.5° "past" the
    # reported one tips the axis over the nadir, so the ground point lies *behind* the drone (bearing + 180°). The
    # region must contain it. Before the fix the perturbed pitch was clamped at −90° and the region was a sliver
    # ahead of the nadir only: at pitch −90° the point 2.1 m behind was outside it.
    height = 120.0
    yaw = 30.0
    fix = ground_fix(
        LAT,
        LON,
        GROUND + height,
        Ray(yaw, pitch_deg),
        FlatTerrain(GROUND),
        sigma_bearing_deg=2.0,
        sigma_elevation_deg=1.0,
    )
    assert fix.hit is not None
    assert fix.region.is_valid
    assert fix.near_range_m == 0.0
    true_pitch = pitch_deg - 1.5  # below −90°: over the nadir
    behind = height * math.tan(math.radians(-90.0 - true_pitch))
    assert behind > 0.0
    lon, lat, _ = GEOD.fwd(LON, LAT, yaw + 180.0, behind)
    assert fix.region.contains(Point(lon, lat))
    # And the direction of the region is still honest ahead of the nadir.
    ahead = height * math.tan(math.radians(90.0 + pitch_deg + 1.5))
    lon, lat, _ = GEOD.fwd(LON, LAT, yaw, ahead)
    assert fix.region.contains(Point(lon, lat))
    wide = ground_fix(
        LAT,
        LON,
        GROUND + height,
        Ray(yaw, pitch_deg),
        FlatTerrain(GROUND),
        sigma_bearing_deg=30.0,
        sigma_elevation_deg=1.0,
    )
    assert wide.region.is_valid
    assert wide.region.contains(Point(*GEOD.fwd(LON, LAT, yaw + 90.0, 1.0)[:2]))


def test_geometry_nadir_ray_off_the_dem_edge_is_still_refused_cleanly() -> None:
    # Guard: the behind-the-nadir extension must not turn a ray that leaves the DEM into a hit.
    x0, y0 = Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True).transform(LON, LAT)
    dem = DemTerrain(
        np.full((20, 20), GROUND), Affine(CELL, 0.0, x0 - 10 * CELL, 0.0, -CELL, y0 + 10 * CELL), "EPSG:32651"
    )
    with pytest.raises(NoGroundIntersectionError):
        intersect_ray(LAT, LON, GROUND + 40.0, Ray(90.0, -0.5), dem, max_range_m=5000.0)


def with_orientation(source: Path, target: Path, orientation: int) -> Path:
    """The frame with its EXIF Orientation value patched in place (every other byte, the XMP included, unchanged)."""
    data = source.read_bytes()
    little = b"\x12\x01\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00"
    big = b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x01\x00\x00"
    if little in data:
        patched = data.replace(little, little[:8] + bytes([orientation, 0, 0, 0]), 1)
    else:
        assert big in data
        patched = data.replace(big, big[:8] + bytes([0, orientation, 0, 0]), 1)
    target.write_bytes(patched)
    return target


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_geometry_drone_pixel_follows_the_exif_orientation(tmp_path: Path, orientation: int) -> None:
    # A frame whose EXIF says "display rotated" (a gallery app's rotate button, a portrait shot) is shown — and
    # detected, detector.images applies exif_transpose — in the displayed frame, while the intrinsics and the
    # gimbal attitude describe the sensor's stored frame. A displayed pixel must be mapped back before the ray.
    # Before the fix the displayed pixel was used as a sensor pixel: with orientation 6 a point near the bottom of
    # the frame landed tens of metres off, and a pixel in the displayed 512 × 640 frame below row 512 was refused.
    source = shared_path("drone", "DJI_H20T.jpg")
    rotated = with_orientation(source, tmp_path / f"h20t_o{orientation}.jpg", orientation)
    upright_meta = read_drone_metadata(source)
    meta = read_drone_metadata(rotated)
    # Where a sensor pixel shows up on screen, found with Pillow's own exif_transpose on a marker image.
    sensor_pixel = (400, 470)
    marker = Image.new("L", (upright_meta.width, upright_meta.height), 0)
    marker.putpixel(sensor_pixel, 255)
    marker.getexif()[0x0112] = orientation
    shown = np.asarray(ImageOps.exif_transpose(marker))
    rows, cols = np.nonzero(shown == 255)
    displayed = (float(cols[0]) + 0.5, float(rows[0]) + 0.5)
    expected = locate(upright_meta, (sensor_pixel[0] + 0.5, sensor_pixel[1] + 0.5))
    got = locate(meta, displayed)
    _, _, gap = GEOD.inv(got.longitude, got.latitude, expected.longitude, expected.latitude)
    assert gap < 0.01
    display_w, display_h = shown.shape[1], shown.shape[0]
    # The whole displayed frame is accepted (a ray may miss the ground, but the pixel is not refused), and nothing
    # outside it.
    for corner in ((0.0, 0.0), (display_w, display_h), (display_w, 0.0), (0.0, display_h)):
        with contextlib.suppress(NoGroundIntersectionError):
            locate(meta, corner)
    with pytest.raises(InputError, match="outside"):
        locate(meta, (display_w + 1.0, 10.0))
