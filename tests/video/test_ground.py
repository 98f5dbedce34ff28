"""Single-camera ground fixes: flat ground in closed form, curvature, tilt sensitivity, DEM ray marching."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from shapely import Point

from tests.video.terrain import GlobalBoundTerrain, SampleCounter, rolling_plain_dem, rolling_plain_heights
from video.camera import GEOD, CameraSite, Intrinsics, PtzPose, Ray, pixel_to_ray
from video.errors import DemError, InputError, NoGroundIntersectionError
from video.ground import (
    DemTerrain,
    FlatTerrain,
    GroundStatus,
    curvature_drop_m,
    ground_fix,
    intersect_ray,
    locate_box,
    locate_pixel,
)

LAT, LON = 43.9, 125.3
GROUND = 200.0


def depression_for(height_m: float, range_m: float) -> float:
    return -math.degrees(math.atan(height_m / range_m))


def test_flat_ground_closed_form_without_curvature() -> None:
    for height, elevation in [(40.0, -0.76), (40.0, -2.29), (120.0, -30.0), (15.0, -89.0)]:
        hit = intersect_ray(LAT, LON, GROUND + height, Ray(57.0, elevation), FlatTerrain(GROUND), curvature=False)
        expected = height / math.tan(math.radians(-elevation))
        assert hit.horizontal_range_m == pytest.approx(expected, rel=1e-12)
        azimuth, _, distance = GEOD.inv(LON, LAT, hit.longitude, hit.latitude)
        assert distance == pytest.approx(expected, rel=1e-9, abs=1e-6)
        assert azimuth == pytest.approx(57.0, abs=1e-6)
        assert hit.slant_range_m == pytest.approx(math.hypot(expected, height))
        assert hit.ground_altitude_m == GROUND


def test_nadir_ray_lands_under_the_camera() -> None:
    hit = intersect_ray(LAT, LON, GROUND + 100.0, Ray(0.0, -90.0), FlatTerrain(GROUND))
    assert hit.horizontal_range_m == pytest.approx(0.0, abs=1e-6)
    assert hit.slant_range_m == pytest.approx(100.0)


def test_curvature_and_refraction_drop_matches_reference() -> None:
    # closed-loop.md § 1.1: 0.61 m at 3 km, 1.71 m at 5 km for k = 0.13.
    assert curvature_drop_m(3000.0) == pytest.approx(0.61, abs=0.01)
    assert curvature_drop_m(5000.0) == pytest.approx(1.71, abs=0.01)
    elevation = depression_for(40.0, 5000.0)
    flat = intersect_ray(LAT, LON, GROUND + 40.0, Ray(0.0, elevation), FlatTerrain(GROUND), curvature=False)
    curved = intersect_ray(LAT, LON, GROUND + 40.0, Ray(0.0, elevation), FlatTerrain(GROUND))
    # The ground dropping away lets the ray fly on: ~1.7 m of 40 m is ~4 % more range, ~200 m at 5 km.
    assert curved.horizontal_range_m - flat.horizontal_range_m == pytest.approx(230.0, abs=30.0)
    d = curved.horizontal_range_m
    ray_height = 40.0 + d * math.tan(math.radians(elevation))
    assert ray_height == pytest.approx(-curvature_drop_m(d), abs=1e-6)


@pytest.mark.parametrize(
    ("mast", "near_shift", "far_shift"),
    [
        (40.0, -347.0, 452.0),  # closed-loop.md § 1.4: 393 m per 0.1° (first order)
        (30.0, -446.0, 634.0),  # cameras-and-drones.md § 5: −450/+630 m
    ],
)
def test_tilt_sensitivity_at_3_km(mast: float, near_shift: float, far_shift: float) -> None:
    elevation = depression_for(mast, 3000.0)
    fix = ground_fix(
        LAT,
        LON,
        GROUND + mast,
        Ray(10.0, elevation),
        FlatTerrain(GROUND),
        sigma_bearing_deg=0.1,
        sigma_elevation_deg=0.1,
        n_sigma=1.0,
        curvature=False,
    )
    assert fix.status is GroundStatus.HIT
    assert fix.hit is not None
    assert fix.hit.horizontal_range_m == pytest.approx(3000.0)
    assert fix.near_range_m - 3000.0 == pytest.approx(near_shift, abs=2.0)
    assert fix.far_range_m - 3000.0 == pytest.approx(far_shift, abs=2.0)
    assert not fix.far_open
    first_order = mast / math.sin(math.radians(-elevation)) ** 2 * math.radians(0.1)
    if mast == 40.0:
        assert first_order == pytest.approx(393.0, abs=1.0)
    assert fix.near_range_m < 3000.0 - 0.8 * first_order
    assert fix.far_range_m > 3000.0 + first_order
    assert fix.region.contains(Point(fix.hit.longitude, fix.hit.latitude))
    assert fix.cross_range_m == pytest.approx(3000.0 * math.tan(math.radians(0.1)))


def test_above_horizon_returns_the_wedge_alone() -> None:
    fix = ground_fix(
        LAT, LON, GROUND + 40.0, Ray(45.0, 0.5), FlatTerrain(GROUND), sigma_bearing_deg=0.2, sigma_elevation_deg=0.1
    )
    assert fix.status is GroundStatus.ABOVE_HORIZON
    assert not fix.located
    assert fix.hit is None
    assert fix.cross_range_m is None
    assert (fix.near_range_m, fix.far_range_m, fix.far_open) == (0.0, 8000.0, True)
    assert fix.half_width_deg == pytest.approx(0.4)
    assert fix.region.contains(Point(*GEOD.fwd(LON, LAT, 45.0, 7000.0)[:2]))
    assert not fix.region.contains(Point(*GEOD.fwd(LON, LAT, 45.0, 8100.0)[:2]))


def test_too_flat_ray_skims_over_the_curved_horizon() -> None:
    # From 40 m the sea-level horizon is ~0.19° down (k = 0.13); a ray at −0.15° never lands.
    ray = Ray(0.0, -0.15)
    with pytest.raises(NoGroundIntersectionError) as info:
        intersect_ray(LAT, LON, GROUND + 40.0, ray, FlatTerrain(GROUND), max_range_m=1e5)
    assert info.value.reason == "above_horizon"
    # On a flat Earth the same ray lands 15.3 km out: beyond an 8 km tower range.
    with pytest.raises(NoGroundIntersectionError) as info:
        intersect_ray(LAT, LON, GROUND + 40.0, ray, FlatTerrain(GROUND), curvature=False)
    assert info.value.reason == "beyond_max_range"


def test_far_open_when_upper_sigma_misses() -> None:
    fix = ground_fix(
        LAT,
        LON,
        GROUND + 40.0,
        Ray(0.0, depression_for(40.0, 6000.0)),
        FlatTerrain(GROUND),
        sigma_bearing_deg=0.2,
        sigma_elevation_deg=0.1,
        n_sigma=2.0,
    )
    assert fix.status is GroundStatus.HIT
    assert fix.far_open
    assert fix.far_range_m == 8000.0
    assert 3500.0 < fix.near_range_m < 5000.0


def test_camera_below_ground_is_refused() -> None:
    with pytest.raises(InputError, match="not above the ground"):
        intersect_ray(LAT, LON, GROUND - 1.0, Ray(0.0, -10.0), FlatTerrain(GROUND))


def test_locate_pixel_and_box_use_the_camera_pose() -> None:
    site = CameraSite(LAT, LON, mast_height_m=40.0, ground_elevation_m=GROUND, heading_offset_deg=3.0)
    lens = Intrinsics.from_hfov(1920, 1080, 30.0)
    pose = PtzPose(pan_deg=87.0, tilt_deg=-1.0)
    fix = locate_pixel(site, lens, pose, 960.0, 540.0)
    assert fix.hit is not None
    assert fix.ray.bearing_deg == pytest.approx(90.0)
    box = (900.0, 400.0, 1020.0, 540.0)
    boxed = locate_box(site, lens, pose, box)
    assert boxed.hit is not None
    # The ray goes through the box's bottom centre (the plume's base), here the image centre row.
    assert boxed.hit.horizontal_range_m == pytest.approx(fix.hit.horizontal_range_m, rel=1e-3)
    base = pixel_to_ray(site, lens, pose, 960.0, 540.0)
    assert boxed.ray.elevation_deg == pytest.approx(base.elevation_deg)
    assert boxed.half_width_deg > fix.half_width_deg


def from_origin(west: float, north: float, xsize: float, ysize: float) -> Affine:
    """North-up transform (rasterio's helper of the same name warns under affine 3)."""
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)


def write_dem(path: Path, heights: np.ndarray, transform: object, crs: str, nodata: float | None = None) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=heights.shape[1],
        height=heights.shape[0],
        count=1,
        dtype="float32",
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as ds:
        ds.write(heights.astype(np.float32), 1)
    return path


@pytest.fixture
def hill_dem(tmp_path: Path) -> tuple[Path, tuple[float, float]]:
    """A 12 × 6 km UTM 51N DEM at 30 m: flat at 200 m with a 120 m Gaussian hill 3 km east of the camera."""
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True)
    x0, y0 = to_utm.transform(LON, LAT)
    west, north = x0 - 1500.0, y0 + 3000.0
    cols, rows = 400, 200
    xs = west + (np.arange(cols) + 0.5) * 30.0
    ys = north - (np.arange(rows) + 0.5) * 30.0
    gx, gy = np.meshgrid(xs, ys)
    hill_x, hill_y = x0 + 3000.0, y0
    heights = GROUND + 120.0 * np.exp(-((gx - hill_x) ** 2 + (gy - hill_y) ** 2) / (2 * 600.0**2))
    path = write_dem(tmp_path / "hill.tif", heights, from_origin(west, north, 30.0, 30.0), "EPSG:32651")
    return path, (hill_x, hill_y)


def test_dem_hit_lands_on_the_hill(hill_dem: tuple[Path, tuple[float, float]]) -> None:
    path, (hill_x, hill_y) = hill_dem
    dem = DemTerrain.from_file(path)
    bearing_east = GEOD.inv(
        LON, LAT, *Transformer.from_crs("EPSG:32651", "EPSG:4326", always_xy=True).transform(hill_x, hill_y)
    )[0]
    ray = Ray(bearing_east, -0.5)
    flat = intersect_ray(LAT, LON, GROUND + 40.0, ray, FlatTerrain(GROUND))
    hit = intersect_ray(LAT, LON, GROUND + 40.0, ray, dem)
    assert flat.horizontal_range_m > 4500.0  # on flat ground the ray would pass the hill
    assert 1000.0 < hit.horizontal_range_m < 3000.0  # it stops on the hill's near slope
    assert hit.ground_altitude_m > GROUND + 20.0
    terrain_there = float(dem.elevation(hit.longitude, hit.latitude))
    assert hit.ground_altitude_m == pytest.approx(terrain_there)
    d = hit.horizontal_range_m
    ray_height = GROUND + 40.0 + d * math.tan(math.radians(-0.5)) + curvature_drop_m(d)
    assert ray_height == pytest.approx(terrain_there, abs=0.05)
    # Nothing on the way was below the ray: the first crossing, not a later one.
    before = np.linspace(1.0, d - 1.0, 400)
    lons, lats, _ = GEOD.fwd(np.full(400, LON), np.full(400, LAT), np.full(400, bearing_east), before)
    heights_before = dem.elevation(lons, lats)
    rays_before = GROUND + 40.0 + before * math.tan(math.radians(-0.5)) + curvature_drop_m(1.0) * before**2
    assert np.all(rays_before > heights_before)

    fix = ground_fix(LAT, LON, GROUND + 40.0, ray, dem, sigma_bearing_deg=0.2, sigma_elevation_deg=0.1)
    assert fix.status is GroundStatus.HIT
    assert fix.near_range_m < d < fix.far_range_m
    assert fix.region.contains(Point(hit.longitude, hit.latitude))


def test_flat_dem_agrees_with_the_closed_form(tmp_path: Path) -> None:
    heights = np.full((300, 300), GROUND)
    path = write_dem(tmp_path / "flat.tif", heights, from_origin(LON - 0.05, LAT + 0.05, 0.0005, 0.0005), "EPSG:4326")
    dem = DemTerrain.from_file(path)
    assert dem.max_slope == 0.0
    for elevation in (-0.9, -3.0, -45.0):
        ray = Ray(200.0, elevation)
        closed = intersect_ray(LAT, LON, GROUND + 40.0, ray, FlatTerrain(GROUND))
        marched = intersect_ray(LAT, LON, GROUND + 40.0, ray, dem)
        assert marched.horizontal_range_m == pytest.approx(closed.horizontal_range_m, abs=0.05)
        assert marched.slant_range_m == pytest.approx(closed.slant_range_m, abs=0.05)


def test_ray_leaving_the_dem_is_flagged(tmp_path: Path) -> None:
    heights = np.full((50, 50), GROUND)
    path = write_dem(tmp_path / "small.tif", heights, from_origin(LON - 0.01, LAT + 0.01, 0.0004, 0.0004), "EPSG:4326")
    dem = DemTerrain.from_file(path)
    fix = ground_fix(LAT, LON, GROUND + 40.0, Ray(90.0, -0.3), dem, sigma_bearing_deg=0.2, sigma_elevation_deg=0.1)
    assert fix.status is GroundStatus.OUTSIDE_DEM
    assert fix.hit is None


def test_nodata_counts_as_unknown_ground(tmp_path: Path) -> None:
    heights = np.full((50, 50), GROUND)
    heights[:, 30:] = -9999.0
    path = write_dem(
        tmp_path / "holes.tif", heights, from_origin(LON - 0.01, LAT + 0.01, 0.0004, 0.0004), "EPSG:4326", -9999.0
    )
    dem = DemTerrain.from_file(path)
    assert math.isnan(float(dem.elevation(LON + 0.008, LAT)))
    with pytest.raises(NoGroundIntersectionError) as info:
        intersect_ray(LAT, LON, GROUND + 40.0, Ray(90.0, -0.5), dem)
    assert info.value.reason == "outside_dem"


def test_camera_outside_the_dem_and_bad_files(tmp_path: Path) -> None:
    heights = np.full((20, 20), GROUND)
    path = write_dem(tmp_path / "away.tif", heights, from_origin(LON + 1.0, LAT + 1.0, 0.001, 0.001), "EPSG:4326")
    with pytest.raises(DemError, match="not over the DEM"):
        intersect_ray(LAT, LON, GROUND + 40.0, Ray(0.0, -1.0), DemTerrain.from_file(path))
    with pytest.raises(DemError, match="no such DEM"):
        DemTerrain.from_file(tmp_path / "missing.tif")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a raster")
    with pytest.raises(DemError, match="cannot read"):
        DemTerrain.from_file(junk)


def deepest_dip_m(
    dem: DemTerrain, latitude: float, longitude: float, altitude_m: float, ray: Ray, start_m: float, end_m: float
) -> float:
    """How far the terrain rises above the ray between two distances (curvature and refraction included), by
    sampling every 5 mm; 0 when the ray stays above it."""
    distances = np.arange(start_m, end_m, 0.005)
    n = len(distances)
    lons, lats, _ = GEOD.fwd(np.full(n, longitude), np.full(n, latitude), np.full(n, ray.bearing_deg), distances)
    ray_heights = altitude_m + distances * math.tan(math.radians(ray.elevation_deg)) + curvature_drop_m(distances)
    above_ray = dem.elevation(lons, lats) - ray_heights
    return max(0.0, float(np.nanmax(above_ray))) if np.any(np.isfinite(above_ray)) else 0.0


@pytest.mark.parametrize("crs", ["EPSG:32651", "EPSG:4326"])
def test_dem_local_bounds_find_the_same_ground_as_the_global_bound(crs: str) -> None:
    # The per-block bounds only lengthen the marcher's safe steps: on random rays over a rolling-plain DEM (towers,
    # drones, grazing and steep rays, some leaving the DEM or passing over the horizon) the answer is the one the
    # global-bound march gives — the same status and the same point to the 1 cm bisection tolerance. The one
    # allowed difference is the marcher's stated tolerance: a ray that only grazes the terrain, dipping less than
    # 5 cm below it, may be stepped over by either (their samples fall in different places); then the point the
    # other one found must be such a graze.
    dem = rolling_plain_dem(rolling_plain_heights(300, 300, seed=11), crs)
    reference = GlobalBoundTerrain(dem)
    rng = np.random.default_rng(5)
    statuses: set[str] = set()
    grazes = 0
    for _ in range(80):
        lon, lat, _ = GEOD.fwd(LON, LAT, rng.uniform(0.0, 360.0), rng.uniform(0.0, 3500.0))
        altitude = float(dem.elevation(lon, lat)) + rng.uniform(5.0, 150.0)
        ray = Ray(rng.uniform(0.0, 360.0), -(10.0 ** rng.uniform(-1.0, 1.9)))
        answers = []
        for terrain in (dem, reference):
            try:
                hit = intersect_ray(lat, lon, altitude, ray, terrain, max_range_m=6000.0)
            except NoGroundIntersectionError as exc:
                answers.append((exc.reason, 6000.0))
            else:
                answers.append(("hit", hit.horizontal_range_m))
        (status, local), (reference_status, global_) = answers
        statuses.add(status)
        if status == reference_status and (status != "hit" or abs(local - global_) <= 0.011):
            continue
        grazes += 1
        earlier, later = sorted((local, global_))
        assert deepest_dip_m(dem, lat, lon, altitude, ray, earlier - 0.02, later - 0.02) < 0.05, (ray, answers)
    assert statuses == {"hit", "outside_dem", "beyond_max_range"}
    assert grazes <= 2


def test_dem_bounds_near_bound_the_ground_in_the_disc() -> None:
    # Checked against the surface itself: the bilinear heights sampled densely over each disc never exceed the
    # height bound, and the slope between neighbouring samples never exceeds the slope bound.
    dem = rolling_plain_dem(rolling_plain_heights(200, 200, seed=3), "EPSG:4326")
    rng = np.random.default_rng(8)
    for _ in range(20):
        lon, lat, _ = GEOD.fwd(LON, LAT, rng.uniform(0.0, 360.0), rng.uniform(0.0, 2000.0))
        radii = [15.0, 60.0, 240.0, 900.0]
        for radius, (highest, steepest) in zip(radii, dem.bounds_near(lon, lat, radii), strict=True):
            distances = np.linspace(0.0, radius, 60)
            bearings = np.linspace(0.0, 360.0, 73)
            d, b = np.meshgrid(distances, bearings)
            lons, lats, _ = GEOD.fwd(np.full(d.size, lon), np.full(d.size, lat), b.ravel(), d.ravel())
            ground = dem.elevation(lons, lats).reshape(d.shape)
            if np.all(np.isfinite(ground)):
                assert float(ground.max()) <= highest
            else:
                assert highest == math.inf  # the disc reaches off the DEM
            rise = np.abs(np.diff(ground, axis=1)) / np.diff(distances)
            assert float(np.nanmax(rise)) <= steepest + 1e-6
            assert steepest <= dem.max_slope


@pytest.mark.parametrize("spike_m", [3000.0, 800.0])
def test_dem_spike_slows_only_the_rays_near_it(spike_m: float) -> None:
    # One outlier cell (a mast in a DSM, a bad value in a plausible range) made the global maximum slope thousands
    # of times the plain's, and with it every fix: each ray crawled in half-cell dense scans of 4,096 samples
    # (~6 s a ground fix). Now a fix far from the spike looks at about as many ground points as without it, and
    # finds the same ground.
    heights = rolling_plain_heights(400, 400, seed=7)
    clean = rolling_plain_dem(heights)
    spiked_heights = heights.copy()
    spiked_heights[40, 350] = spike_m  # ~5.9 km north-east of the camera
    spiked = rolling_plain_dem(spiked_heights)
    assert spiked.max_slope > 20.0 * clean.max_slope
    camera = float(clean.elevation(LON, LAT)) + 40.0
    fixes, points = [], []
    for dem in (clean, spiked):
        counter = SampleCounter(dem)
        fixes.append(
            [
                ground_fix(LAT, LON, camera, Ray(bearing, -0.6), dem, sigma_bearing_deg=0.2, sigma_elevation_deg=0.1)
                for bearing in (100.0, 200.0, 300.0)
            ]
        )
        points.append(counter.points)
    for on_clean, on_spiked in zip(*fixes, strict=True):
        assert on_spiked.status is on_clean.status is GroundStatus.HIT
        assert on_spiked.hit is not None
        assert on_clean.hit is not None
        assert on_spiked.hit.horizontal_range_m == pytest.approx(on_clean.hit.horizontal_range_m, abs=0.011)
        assert (on_spiked.near_range_m, on_spiked.far_range_m) == pytest.approx(
            (on_clean.near_range_m, on_clean.far_range_m), abs=0.011
        )
    assert points[1] <= 1.2 * points[0]
    # A ray aimed at the spike still stops on it.
    x0, y0 = Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True).transform(LON, LAT)
    spike_lon, spike_lat = Transformer.from_crs("EPSG:32651", "EPSG:4326", always_xy=True).transform(
        x0 + (350.5 - 200.0) * 30.0,
        y0 - (40.5 - 200.0) * 30.0,  # the spike's pixel centre on rolling_plain_dem's grid
    )
    bearing, _, distance = GEOD.inv(LON, LAT, spike_lon, spike_lat)
    # Rising to 300 m at the spike, above every hill of the plain: only the spike's flanks can stop it.
    ray = Ray(bearing, depression_for(camera - 300.0, distance))
    hit = intersect_ray(LAT, LON, camera, ray, spiked)
    assert hit.horizontal_range_m == pytest.approx(distance, abs=45.0)
    assert hit.ground_altitude_m > 300.0


def test_dem_void_markers_without_a_nodata_value_are_no_data(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A DEM written without a declared nodata value keeps its voids as −32768 / 32767 (SRTM's markers). Read as
    # heights they were a 32 km wall (and a 1,000 m/m slope that slowed every fix); they are no data.
    heights = np.full((50, 50), GROUND)
    heights[20, 30] = -32768.0
    heights[:, 40:] = 32767.0
    transform = from_origin(LON - 0.01, LAT + 0.01, 0.0004, 0.0004)
    path = tmp_path / "voids.tif"
    with rasterio.open(
        path, "w", driver="GTiff", width=50, height=50, count=1, dtype="int16", crs="EPSG:4326", transform=transform
    ) as ds:
        ds.write(heights.astype(np.int16), 1)
    with caplog.at_level("WARNING", logger="video.ground"):
        dem = DemTerrain.from_file(path)
    assert dem.implausible_cells == 1 + 50 * 10
    assert "501 cells" in caplog.text
    assert math.isnan(dem.heights[20, 30])
    assert dem.max_slope == 0.0
    with pytest.raises(NoGroundIntersectionError) as info:
        intersect_ray(LAT, LON, GROUND + 40.0, Ray(90.0, -0.5), dem)
    assert info.value.reason == "outside_dem"  # into the void, not against a 32 km wall ~480 m out
    # A ray that passes ~100 m beside the single void cell lands where it would on flat ground (~400 m out).
    ray = Ray(20.0, -5.71)
    assert intersect_ray(LAT, LON, GROUND + 40.0, ray, dem).horizontal_range_m == pytest.approx(
        intersect_ray(LAT, LON, GROUND + 40.0, ray, FlatTerrain(GROUND)).horizontal_range_m, abs=0.05
    )
    # Arrays given directly are read the same way, and the caller's array is left as it was.
    direct = DemTerrain(heights, transform, "EPSG:4326")
    assert direct.implausible_cells == 501
    assert heights[20, 30] == -32768.0


def test_dem_bound_pyramids_are_built_by_the_first_ray_not_by_reading_the_dem() -> None:
    # They are nearly all of a DEM's set-up (2–3 s for a 3,600 × 3,600 county DEM, the rest 0.1 s) and only the
    # marcher reads them: a DEM that only answers heights must not pay for them.
    dem = rolling_plain_dem(rolling_plain_heights(100, 100, seed=2))
    dem.elevation(LON, LAT)
    assert "_pyramids" not in vars(dem)
    camera = float(dem.elevation(LON, LAT)) + 40.0
    intersect_ray(LAT, LON, camera, Ray(45.0, -5.0), dem)
    assert "_pyramids" in vars(dem)
