"""Raster fire rules: synthetic scenes with known fires and look-alikes, vectorisation, the GeoTIFF reader, the CLI.

Every scene is built here, in ``tmp_path`` or memory, on a UTM zone 51N grid near Changchun (EPSG:32651), so the
expected fires, areas and positions can be computed by hand (with pyproj for the projection only).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS, Geod, Proj, Transformer
from rasterio.errors import NotGeoreferencedWarning
from typer.testing import CliRunner

from satellite import raster
from satellite.cli import app, parse_bands
from satellite.errors import RasterBandError, RasterError, RasterReadError, SatelliteError
from satellite.raster import (
    BAND_ORDER,
    LandsatThresholds,
    PixelFlag,
    RuleSet,
    Sensor,
    fire_points,
    landsat_contextual_test,
    landsat_pixel_codes,
    resolve_band_map,
    scan_bands,
    scan_scene,
    sentinel2_pixel_codes,
    slstr_pixel_codes,
)

UTM51 = "EPSG:32651"
X0, Y0, RES = 650_000.0, 4_850_000.0, 30.0
TRANSFORM = Affine(RES, 0.0, X0, 0.0, -RES, Y0)
TO_WGS84 = Transformer.from_crs(UTM51, "EPSG:4326", always_xy=True)

VEGETATION = {"B01": 0.10, "B02": 0.08, "B03": 0.07, "B04": 0.05, "B05": 0.30, "B06": 0.20, "B07": 0.10}
"""Cropland stubble in OLI TOA reflectance: R75 = 0.33, no test passes."""
HOT = {"B05": 0.30, "B06": 0.40, "B07": 0.90}
"""Unambiguous fire (eq. 1): rho7 0.9 > 0.5, R75 3.0 > 2.5, rho7 - rho5 0.6 > 0.3."""
WARM = {"B05": 0.30, "B06": 0.30, "B07": 0.60}
"""Potential fire only (eqs. 3, 6): R75 2.0 (< 2.5), rho7 - rho5 0.3 > 0.17, rho7/rho6 2.0 > 1.6."""
DESERT = {"B01": 0.25, "B02": 0.28, "B03": 0.32, "B04": 0.35, "B05": 0.45, "B06": 0.60, "B07": 0.55}
"""Bright sand: rho7 0.55 > 0.5 but R75 1.22 — no test passes."""
CLOUD = {"B01": 0.75, "B02": 0.74, "B03": 0.74, "B04": 0.76, "B05": 0.80, "B06": 0.85, "B07": 0.70}
"""Bright cloud: rho6 0.85 > 0.8 (eq. 2) but rho1 0.75 is not < 0.2."""
WATER = {"B01": 0.12, "B02": 0.09, "B03": 0.07, "B04": 0.05, "B05": 0.03, "B06": 0.02, "B07": 0.01}
"""Clear water (eqs. 7, 9): rho4 > rho5 > rho6 > rho7, rho1 - rho7 0.11 < 0.2, rho1 > rho2 > rho3 > rho4."""


def centre_lonlat(row: float, col: float) -> tuple[float, float]:
    """WGS-84 position of a pixel centre on the test grid, by hand: x = X0 + (col + 0.5) * 30, y = Y0 - ..."""
    lon, lat = TO_WGS84.transform(X0 + (col + 0.5) * RES, Y0 - (row + 0.5) * RES)
    return lon, lat


def geodesic_pixel_area(row: float, col: float) -> float:
    """30 m x 30 m divided by the projection's areal scale factor at that point (UTM is conformal, not equal-area)."""
    lon, lat = centre_lonlat(row, col)
    return RES * RES / Proj(UTM51).get_factors(lon, lat).areal_scale


def landsat_scene(shape: tuple[int, int] = (100, 100), seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: (v + rng.normal(0.0, 0.004, shape)).astype(np.float32) for k, v in VEGETATION.items()}


def paint(bands: dict[str, np.ndarray], rows: slice | int, cols: slice | int, values: dict[str, float]) -> None:
    for name, value in values.items():
        bands[name][rows, cols] = value


def landsat_fixture_scene() -> dict[str, np.ndarray]:
    """A 3x3 unambiguous patch (one pixel brighter), a lone potential fire, and look-alikes that must not fire."""
    b = landsat_scene()
    paint(b, slice(20, 23), slice(30, 33), HOT)
    paint(b, 20, 32, {"B07": 0.95})
    paint(b, 70, 75, WARM)
    paint(b, slice(80, 90), slice(5, 15), DESERT)
    paint(b, slice(5, 12), slice(60, 70), CLOUD)
    paint(b, slice(40, 50), slice(85, 95), WATER)
    return b


def write_tif(
    path: Path,
    bands: list[np.ndarray],
    *,
    crs: str | None = UTM51,
    descriptions: list[str] | None = None,
    nodata: float | None = None,
) -> Path:
    profile = {
        "driver": "GTiff",
        "height": bands[0].shape[0],
        "width": bands[0].shape[1],
        "count": len(bands),
        "dtype": bands[0].dtype,
    }
    if crs is not None:
        profile.update(crs=crs, transform=TRANSFORM)
    if nodata is not None:
        profile["nodata"] = nodata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # the no-CRS case is written on purpose
        with rasterio.open(path, "w", **profile) as dst:
            for i, band in enumerate(bands, start=1):
                dst.write(band, i)
                if descriptions:
                    dst.set_band_description(i, descriptions[i - 1])
    return path


# --- Landsat-8/9 (Schroeder et al. 2016) --------------------------------------------------------------------------


def test_landsat_patch_and_lone_potential_fire_are_found_and_lookalikes_are_not() -> None:
    scan = scan_bands(landsat_fixture_scene(), TRANSFORM, UTM51, "landsat8")

    assert [(p.pixel_count, p.row, p.col) for p in scan.fire_points] == [(9, 21.0, 31.0), (1, 70.0, 75.0)]
    patch, lone = scan.fire_points
    assert scan.fire_pixels == 10
    assert scan.water_pixels == 100
    assert scan.valid_pixels == 100 * 100
    assert not scan.mask[80:90, 5:15].any()
    assert not scan.mask[5:12, 60:70].any()

    lon, lat = centre_lonlat(21, 31)
    assert patch.longitude == pytest.approx(lon, abs=1e-9)
    assert patch.latitude == pytest.approx(lat, abs=1e-9)
    assert patch.area_m2 == pytest.approx(9 * geodesic_pixel_area(21, 31), rel=1e-6)
    assert patch.area_m2 == pytest.approx(8100.0, rel=2e-3)  # UTM scale error near Changchun is ~0.02 %
    assert (patch.max_row, patch.max_col) == (20, 32)
    assert patch.max_value == pytest.approx(0.95)
    max_lon, max_lat = centre_lonlat(20, 32)
    assert patch.max_longitude == pytest.approx(max_lon)
    assert patch.max_latitude == pytest.approx(max_lat)

    assert lone.area_m2 == pytest.approx(geodesic_pixel_area(70, 75), rel=1e-6)
    assert scan.codes[70, 75] == PixelFlag.CANDIDATE  # found only through the contextual test
    assert scan.codes[21, 31] == PixelFlag.FIRE


def test_landsat_saturated_swir_pixel_is_unambiguous_by_eq2() -> None:
    b = landsat_scene((40, 40))
    # Folded/saturated SWIR-2 reads low while SWIR-1 is very bright and the coastal band stays dark.
    paint(b, 10, 10, {"B01": 0.1, "B05": 0.45, "B06": 0.9, "B07": 0.05})
    scan = scan_bands(b, TRANSFORM, UTM51, Sensor.LANDSAT9)
    assert [(p.row, p.col) for p in scan.fire_points] == [(10.0, 10.0)]


def test_landsat_uniform_fire_like_surface_fails_the_contextual_test() -> None:
    b = landsat_scene((70, 70))
    # Every pixel is a potential fire (R75 1.9, rho7 - rho5 0.19, rho7/rho6 1.73): nothing stands out locally.
    rng = np.random.default_rng(7)
    b["B05"][:] = 0.2 + rng.normal(0, 0.002, (70, 70))
    b["B06"][:] = 0.22
    b["B07"][:] = 0.38 + rng.normal(0, 0.002, (70, 70))
    codes = landsat_pixel_codes(b)
    assert (codes == PixelFlag.CANDIDATE).mean() > 0.9
    scan = scan_bands(b, TRANSFORM, UTM51, "landsat8")
    assert scan.fire_points == ()


def test_landsat_unambiguous_pixel_that_is_also_water_is_dropped() -> None:
    b = landsat_scene((40, 40))
    paint(b, slice(0, 40), slice(20, 40), WATER)
    # Glint-like spectrum: passes eq. 2 (rho6 0.85, rho1 0.15, rho5 0.9) and the water test (eqs. 7-8).
    paint(b, 10, 10, {"B01": 0.15, "B02": 0.10, "B03": 0.90, "B04": 0.95, "B05": 0.90, "B06": 0.85, "B07": 0.05})
    codes = landsat_pixel_codes(b)
    assert codes[10, 10] == PixelFlag.FIRE | PixelFlag.WATER
    assert (codes[:, 20:] == PixelFlag.WATER).all()
    scan = scan_bands(b, TRANSFORM, UTM51, "landsat8")
    assert scan.fire_points == ()
    assert scan.water_pixels == 40 * 20 + 1


def brute_force_context(codes: np.ndarray, rho7: np.ndarray, rho5: np.ndarray, t: LandsatThresholds) -> np.ndarray:
    """Eqs. 4-5 the slow, obvious way (as L8_FIRE_ALL_MASKS_v3.py does it): nanmean/nanstd per window."""
    r75 = rho7 / rho5
    ignored = ((codes & (PixelFlag.FIRE | PixelFlag.WATER | PixelFlag.NODATA)) != 0) | (rho7 <= 0)
    r75_bg = np.where(ignored, np.nan, r75)
    r7_bg = np.where(ignored, np.nan, rho7)
    out = np.zeros(codes.shape, dtype=bool)
    half = t.ctx_window // 2
    for y, x in zip(*np.nonzero(codes & PixelFlag.CANDIDATE), strict=True):
        win = (slice(max(0, y - half), y + half + 1), slice(max(0, x - half), x + half + 1))
        if np.isnan(r75_bg[win]).all():
            continue
        sd_r75, sd_r7 = float(np.nanstd(r75_bg[win])), float(np.nanstd(r7_bg[win]))
        ok4 = r75[y, x] > np.nanmean(r75_bg[win]) + max(t.ctx_r75_k * sd_r75, t.ctx_r75_floor)
        ok5 = rho7[y, x] > np.nanmean(r7_bg[win]) + max(t.ctx_rho7_k * sd_r7, t.ctx_rho7_floor)
        out[y, x] = ok4 and ok5
    return out


@pytest.mark.parametrize(("window", "block_rows"), [(61, 512), (9, 512), (61, 13)])
def test_contextual_test_matches_a_per_window_brute_force(
    window: int, block_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raster, "_BLOCK_ROWS", block_rows)  # strips of candidate rows must not change anything
    rng = np.random.default_rng(window)
    shape = (90, 110)
    codes = rng.choice(np.array([0] * 12 + [1, 2, 4, 16], dtype=np.uint8), size=shape)
    rho7 = rng.uniform(0.05, 0.15, shape)
    rho5 = rng.uniform(0.25, 0.35, shape)
    hot = (codes & (PixelFlag.FIRE | PixelFlag.CANDIDATE)) != 0
    rho7[hot] = rng.uniform(0.1, 0.9, hot.sum())  # some candidates stand out, some do not
    rho7[rng.random(shape) < 0.02] = -0.01  # rho7 <= 0 is never background
    t = LandsatThresholds(ctx_window=window)
    fast = landsat_contextual_test(codes, rho7, rho5, thresholds=t)
    slow = brute_force_context(codes, rho7, rho5, t)
    candidates = (codes & PixelFlag.CANDIDATE) != 0
    assert 10 < slow.sum() < candidates.sum()
    np.testing.assert_array_equal(fast, slow)


def test_row_blocks_do_not_change_the_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    b = landsat_fixture_scene()
    whole = landsat_pixel_codes(b)
    monkeypatch.setattr(raster, "_BLOCK_ROWS", 7)
    np.testing.assert_array_equal(landsat_pixel_codes(b), whole)


def test_valid_mask_and_nan_make_no_data_without_touching_the_callers_arrays() -> None:
    b = landsat_fixture_scene()
    b["B04"][3, 3] = np.nan
    valid = np.ones(b["B01"].shape, dtype=bool)
    valid[21, 31] = False
    codes = landsat_pixel_codes(b, valid=valid)
    assert codes[3, 3] == PixelFlag.NODATA
    assert codes[21, 31] == PixelFlag.NODATA
    assert valid.sum() == valid.size - 1  # not and-ed with the NaN test in place
    s2 = sentinel2_scene()
    s2_valid = np.ones(s2["B02"].shape, dtype=bool)
    s2["B12"][0, 0] = np.nan
    assert sentinel2_pixel_codes(s2, valid=s2_valid)[0, 0] == PixelFlag.NODATA
    assert s2_valid.all()


def test_thresholds_are_parameters() -> None:
    b = landsat_fixture_scene()
    strict = LandsatThresholds(unamb_rho7=0.92, cand_r75=2.1)
    scan = scan_bands(b, TRANSFORM, UTM51, "landsat8", thresholds=strict)
    # Only the 0.95 pixel stays unambiguous; the rest of the patch becomes potential fires next to it.
    assert scan.codes[20, 32] == PixelFlag.FIRE
    assert scan.codes[21, 31] == PixelFlag.CANDIDATE
    assert scan.codes[70, 75] == 0
    with pytest.raises(TypeError, match="LandsatThresholds"):
        scan_bands(b, TRANSFORM, UTM51, "landsat8", thresholds=raster.SENTINEL2_THRESHOLDS)
    with pytest.raises(ValueError, match="odd"):
        LandsatThresholds(ctx_window=60)


# --- Sentinel-2 -------------------------------------------------------------------------------------------------


def sentinel2_scene() -> dict[str, np.ndarray]:
    shape = (60, 60)
    rng = np.random.default_rng(3)
    base = {"B02": 0.06, "B03": 0.08, "B04": 0.07, "B11": 0.22, "B12": 0.14}
    b = {k: (v + rng.normal(0, 0.003, shape)).astype(np.float32) for k, v in base.items()}
    paint(b, slice(10, 13), slice(10, 13), {"B04": 0.08, "B11": 0.60, "B12": 1.10})  # flaming: Markuse + B12 > 1
    paint(b, 40, 40, {"B04": 0.05, "B11": 0.10, "B12": 0.25})  # smouldering: SAHM 0.43, on the Hu line
    paint(b, slice(30, 36), slice(2, 8), {"B02": 0.30, "B03": 0.33, "B04": 0.35, "B11": 0.55, "B12": 0.50})  # sand
    paint(b, slice(2, 8), slice(40, 50), {"B02": 0.60, "B03": 0.58, "B04": 0.60, "B11": 0.50, "B12": 0.45})  # cloud
    paint(b, slice(50, 55), slice(50, 55), {"B02": 0.04, "B03": 0.05, "B04": 0.03, "B11": 0.01, "B12": 0.03})  # water
    return b


def test_sentinel2_fires_and_lookalikes() -> None:
    b = sentinel2_scene()
    codes = sentinel2_pixel_codes(b)
    # The sand passes Markuse (B11 + B12 = 1.05) and the dark water passes SAHM (0.5): the Hu line rejects both.
    assert (codes[30:36, 2:8] == 0).all()
    assert (codes[50:55, 50:55] == 0).all()
    assert (codes[2:8, 40:50] == PixelFlag.CLOUD).all()
    scan = scan_bands(b, TRANSFORM, UTM51, "sentinel2")
    assert [(p.pixel_count, p.row, p.col) for p in scan.fire_points] == [(9, 11.0, 11.0), (1, 40.0, 40.0)]
    assert scan.cloud_pixels == 60
    assert scan.fire_points[0].max_value == pytest.approx(1.10)
    assert scan.value_unit == "B12 reflectance"


# --- Sentinel-3 SLSTR -------------------------------------------------------------------------------------------


def slstr_scene() -> dict[str, np.ndarray]:
    shape = (30, 30)
    f1 = np.full(shape, 295.0, dtype=np.float32)
    s7 = np.full(shape, 294.0, dtype=np.float32)
    f1[5, 5], s7[5, 5] = 372.0, 311.0  # S7 saturated, F1 sees the fire
    f1[20, 20], s7[20, 20] = 340.0, 311.0  # hot bare ground by day: above the night threshold only
    f1[25, 3], s7[25, 3] = np.nan, 365.0  # F1 missing: S7 alone decides
    f1[0, 29], s7[0, 29] = np.nan, 0.0  # neither present: no data
    return {"F1": f1, "S7": s7}


def test_slstr_day_and_night_thresholds() -> None:
    day = scan_bands(slstr_scene(), Affine(1000, 0, X0, 0, -1000, Y0), UTM51, "slstr")
    assert [(p.row, p.col, p.max_value) for p in day.fire_points] == [(5.0, 5.0, 372.0), (25.0, 3.0, 365.0)]
    assert day.valid_pixels == 899
    night = scan_bands(slstr_scene(), Affine(1000, 0, X0, 0, -1000, Y0), UTM51, "slstr", daytime=False)
    assert [(p.row, p.col) for p in night.fire_points] == [(5.0, 5.0), (20.0, 20.0), (25.0, 3.0)]
    assert night.fire_points[0].area_m2 == pytest.approx(1e6, rel=2e-3)


def test_slstr_swir_rule_only_when_asked_and_only_by_day() -> None:
    b = slstr_scene()
    shape = b["F1"].shape
    b["S1"] = np.full(shape, 0.05, dtype=np.float32)
    b["S5"] = np.full(shape, 0.20, dtype=np.float32)
    b["S6"] = np.full(shape, 0.15, dtype=np.float32)
    b["S5"][12, 12], b["S6"][12, 12] = 0.20, 0.25  # (S6 - S5)/(S6 + S5) = 0.11 > 0.05, S1 0.05 < 0.23
    assert slstr_pixel_codes(b)[12, 12] == 0
    assert slstr_pixel_codes(b, swir=True)[12, 12] == PixelFlag.FIRE
    assert slstr_pixel_codes(b, swir=True, daytime=False)[12, 12] == 0
    with pytest.raises(RasterBandError, match="band S6"):
        slstr_pixel_codes({"F1": b["F1"], "S7": b["S7"], "S1": b["S1"], "S5": b["S5"]}, swir=True)


# --- vectorisation ----------------------------------------------------------------------------------------------


def test_clusters_are_eight_connected() -> None:
    mask = np.zeros((10, 10), dtype=bool)
    mask[1, 1] = mask[2, 2] = mask[3, 3] = True  # diagonal chain: one fire
    mask[1, 6] = mask[1, 8] = True  # one-pixel gap: two fires
    value = np.arange(100, dtype=np.float64).reshape(10, 10)
    value[3, 3] = np.nan  # never the brightest
    points = fire_points(mask, value, TRANSFORM, UTM51)
    assert [(p.pixel_count, p.max_row, p.max_col) for p in points] == [(3, 2, 2), (1, 1, 6), (1, 1, 8)]
    assert fire_points(np.zeros((3, 3), bool), np.zeros((3, 3)), TRANSFORM, UTM51) == []


def test_area_on_a_geographic_grid_matches_the_ellipsoid_formula() -> None:
    d = 0.0003  # degrees, ~33 m x 24 m at 44 N
    transform = Affine(d, 0.0, 125.0, 0.0, -d, 44.0)
    mask = np.zeros((5, 5), dtype=bool)
    mask[2, 1:4] = True
    (point,) = fire_points(mask, np.ones((5, 5)), transform, "EPSG:4326")
    lat = 44.0 - 2.5 * d
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    w = 1 - e2 * math.sin(math.radians(lat)) ** 2
    meridional = a * (1 - e2) / w**1.5
    normal = a / math.sqrt(w)
    hand = 3 * meridional * normal * math.cos(math.radians(lat)) * math.radians(d) ** 2
    assert point.area_m2 == pytest.approx(hand, rel=1e-6)
    assert point.longitude == pytest.approx(125.0 + 2.5 * d)
    assert point.latitude == pytest.approx(lat)
    assert Geod(ellps="WGS84").inv(125.0, 44.0, point.longitude, point.latitude)[2] > 0


# --- local GeoTIFF scenes ---------------------------------------------------------------------------------------


def test_scan_scene_reads_a_landsat_geotiff_in_the_default_band_order(tmp_path: Path) -> None:
    b = landsat_fixture_scene()
    path = write_tif(tmp_path / "lc08.tif", [b[n] for n in BAND_ORDER[RuleSet.LANDSAT]])
    scan = scan_scene(path, "landsat8")
    expected = scan_bands(b, TRANSFORM, UTM51, "landsat8")
    assert scan.fire_points == expected.fire_points
    assert scan.source_name == str(path)
    assert CRS.from_wkt(scan.crs_wkt).to_epsg() == 32651


def test_scan_scene_finds_bands_by_description_or_band_map(tmp_path: Path) -> None:
    b = sentinel2_scene()
    order = ["B12", "B08", "B04", "B11", "B03", "B02"]
    stack = [b.get(n, np.zeros_like(b["B02"])) for n in order]
    described = write_tif(tmp_path / "s2_described.tif", stack, descriptions=order)
    plain = write_tif(tmp_path / "s2_plain.tif", stack)
    expected = scan_bands(b, TRANSFORM, UTM51, "sentinel2").fire_points
    assert scan_scene(described, "sentinel2").fire_points == expected
    band_map = {"B12": 1, "B04": 3, "B11": 4, "B03": 5, "B02": 6}
    assert scan_scene(plain, "s2", band_map).fire_points == expected
    assert scan_scene(described, "sentinel2", {**band_map, "B12": "b12"}).fire_points == expected


def test_scan_scene_integer_dns_need_a_scale_and_nodata_is_no_data(tmp_path: Path) -> None:
    b = sentinel2_scene()
    dns = [np.round((b[n] + 0.1) * 10000).astype(np.uint16) for n in BAND_ORDER[RuleSet.SENTINEL2]]
    dns[0][0, 0] = 0
    path = write_tif(tmp_path / "l1c_dn.tif", dns, nodata=0)
    with pytest.raises(RasterBandError, match=r"l1c_dn\.tif: band B02: .*integer values \(uint16\); give a scale"):
        scan_scene(path, "sentinel2")
    scan = scan_scene(path, "sentinel2", scale=0.0001, offset=-0.1)
    assert [(p.pixel_count, p.row, p.col) for p in scan.fire_points] == [(9, 11.0, 11.0), (1, 40.0, 40.0)]
    assert scan.valid_pixels == 60 * 60 - 1
    assert scan.codes[0, 0] == PixelFlag.NODATA


def test_scan_scene_errors_name_the_file_and_band(tmp_path: Path) -> None:
    b = landsat_fixture_scene()
    six = write_tif(tmp_path / "six.tif", [b[n] for n in BAND_ORDER[RuleSet.LANDSAT][:6]])
    with pytest.raises(RasterBandError, match=r"six\.tif: band B07: missing: the file has 6 band\(s\)") as info:
        scan_scene(six, "landsat8")
    assert info.value.band == "B07"
    assert info.value.source_name == str(six)

    with pytest.raises(RasterBandError, match=r"band B7: is not a band of the landsat rules"):
        scan_scene(six, "landsat8", {"B7": 6})
    with pytest.raises(RasterBandError, match=r"band B07: band index 9 is outside 1\.\.6"):
        scan_scene(six, "landsat8", {**{f"B0{i}": i for i in range(1, 7)}, "B07": 9})
    with pytest.raises(RasterBandError, match=r"band B07: missing from the band map"):
        scan_scene(six, "landsat8", {f"B0{i}": i for i in range(1, 7)})

    no_crs = write_tif(tmp_path / "no_crs.tif", [b[n] for n in BAND_ORDER[RuleSet.LANDSAT]], crs=None)
    with pytest.raises(RasterReadError, match=r"no_crs\.tif: has no CRS"):
        scan_scene(no_crs, "landsat8")
    with pytest.raises(RasterReadError, match=r"missing\.tif: cannot be opened as a raster"):
        scan_scene(tmp_path / "missing.tif", "landsat8")
    text = tmp_path / "notes.tif"
    text.write_text("not a raster", encoding="utf-8")
    with pytest.raises(RasterReadError, match=r"notes\.tif: cannot be opened"):
        scan_scene(text, "landsat8")
    with pytest.raises(RasterError, match="unknown sensor 'modis'"):
        scan_scene(six, "modis")
    assert issubclass(RasterError, SatelliteError)


def test_numpy_band_errors_name_the_band() -> None:
    b = landsat_fixture_scene()
    with pytest.raises(RasterBandError, match=r"scene-7: band B03: missing"):
        scan_bands({k: v for k, v in b.items() if k != "B03"}, TRANSFORM, UTM51, "landsat8", source_name="scene-7")
    with pytest.raises(RasterBandError, match=r"band B05: shape \(99, 100\) differs"):
        scan_bands({**b, "B05": b["B05"][1:]}, TRANSFORM, UTM51, "landsat8")
    with pytest.raises(RasterBandError, match=r"band B06: dtype int16 is not floating point"):
        scan_bands({**b, "B06": b["B06"].astype(np.int16)}, TRANSFORM, UTM51, "landsat8")
    with pytest.raises(RasterBandError, match=r"band B01: must be a 2-D array, not 1-D"):
        scan_bands({**b, "B01": b["B01"][0]}, TRANSFORM, UTM51, "landsat8")
    with pytest.raises(RasterError, match="unusable CRS"):
        scan_bands(b, TRANSFORM, "EPSG:999999", "landsat8")
    with pytest.raises(RasterError, match="singular"):
        scan_bands(b, Affine(0, 0, 0, 0, 0, 0), UTM51, "landsat8")


def test_band_map_resolution_defaults() -> None:
    assert resolve_band_map("slstr", None, count=2) == {"F1": 1, "S7": 2}
    assert resolve_band_map("slstr", {"F1": 1, "S7": 1}, count=1) == {"F1": 1, "S7": 1}
    assert resolve_band_map("slstr", None, count=5, swir=True) == {"F1": 1, "S7": 2, "S1": 3, "S5": 4, "S6": 5}
    described = resolve_band_map("sentinel2", None, count=5, descriptions=["b12", "B11", "B04", "B03", "B02"])
    assert described == {"B02": 5, "B03": 4, "B04": 3, "B11": 2, "B12": 1}


# --- CLI --------------------------------------------------------------------------------------------------------


def test_cli_scan_json_and_table(tmp_path: Path) -> None:
    b = landsat_fixture_scene()
    path = write_tif(tmp_path / "lc09.tif", [b[n] for n in BAND_ORDER[RuleSet.LANDSAT]])
    runner = CliRunner()
    result = runner.invoke(app, ["scan", str(path), "--sensor", "landsat9", "--json"])
    assert result.exit_code == 0, result.output
    points = json.loads(result.stdout)
    assert [(p["pixel_count"], p["max_row"], p["max_col"]) for p in points] == [(9, 20, 32), (1, 70, 75)]
    lon, lat = centre_lonlat(21, 31)
    assert points[0]["latitude"] == pytest.approx(lat)
    assert points[0]["longitude"] == pytest.approx(lon)
    assert points[0]["area_m2"] == pytest.approx(9 * geodesic_pixel_area(21, 31), rel=1e-6)

    table = runner.invoke(app, ["scan", str(path), "--sensor", "L8"])
    assert table.exit_code == 0
    assert "2 fire point(s), 10 fire pixel(s) of 10000 valid" in table.stdout
    assert f"{lat:.6f}" in table.stdout


def test_cli_band_order_option(tmp_path: Path) -> None:
    b = sentinel2_scene()
    order = ["B01", "B02", "B03", "B04", "B08", "B11", "B12"]
    path = write_tif(tmp_path / "s2.tif", [b.get(n, np.zeros_like(b["B02"])) for n in order])
    result = CliRunner().invoke(app, ["scan", str(path), "--sensor", "sentinel2", "--bands", ",".join(order), "--json"])
    assert result.exit_code == 0, result.output
    assert [p["pixel_count"] for p in json.loads(result.stdout)] == [9, 1]
    assert parse_bands("B12=7, b11=6", BAND_ORDER[RuleSet.SENTINEL2]) == {"B12": 7, "B11": 6}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sensor", "modis"], "error: unknown sensor 'modis'; use one of landsat8, landsat9, sentinel2, slstr"),
        (["--sensor", "landsat8", "--bands", "B01=1,B02"], "error: --bands mixes NAME=INDEX pairs with plain names"),
        (["--sensor", "landsat8", "--bands", "B07=x"], "error: --bands 'B07=x': the index must be an integer"),
        (["--sensor", "landsat8"], "band B07: missing: the file has 6 band(s)"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    b = landsat_fixture_scene()
    path = write_tif(tmp_path / "six.tif", [b[n] for n in BAND_ORDER[RuleSet.LANDSAT][:6]])
    result = CliRunner().invoke(app, ["scan", str(path), *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_cli_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["scan", str(tmp_path / "nope.tif"), "--sensor", "slstr"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {tmp_path / 'nope.tif'}: cannot be opened as a raster")


def test_cli_mounts_as_a_sub_command(tmp_path: Path) -> None:
    import typer

    parent = typer.Typer()
    parent.add_typer(app, name="satellite")
    b = slstr_scene()
    path = write_tif(tmp_path / "slstr.tif", [b["F1"], b["S7"]])
    result = CliRunner().invoke(parent, ["satellite", "scan", str(path), "--sensor", "slstr", "--night", "--json"])
    assert result.exit_code == 0, result.output
    assert [(p["max_row"], p["max_col"]) for p in json.loads(result.stdout)] == [(5, 5), (20, 20), (25, 3)]
