"""Raster fire rules: regressions found in review (band descriptions, CRS, cluster order).

Each test builds its scene here (UTM zone 51N near Changchun, as in ``test_raster.py``) and failed before the fix
it names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from satellite.cli import app
from satellite.errors import RasterBandError, RasterError
from satellite.raster import fire_points, resolve_band_map, scan_bands, scan_scene
from tests.satellite.test_raster import TRANSFORM, UTM51, write_tif

LOCAL_CRS_WKT = 'LOCAL_CS["site grid",UNIT["metre",1]]'
"""An engineering (local) CRS: GDAL and pyproj read it, but nothing converts it to longitude/latitude."""


def sentinel2_bands(shape: tuple[int, int] = (30, 30)) -> dict[str, np.ndarray]:
    """Stubble (no test passes), one 2x2 burning patch at rows 10-11, cols 10-11, and NIR (B08) for the stack."""
    values = {"B02": 0.08, "B03": 0.07, "B04": 0.06, "B08": 0.25, "B11": 0.30, "B12": 0.22}
    bands = {name: np.full(shape, value, dtype=np.float32) for name, value in values.items()}
    # Burning: B11 + B12 = 1.9 > 1.0, and B4 0.10 <= 0.727 * 1.5 - 0.11.
    bands["B11"][10:12, 10:12] = 0.40
    bands["B12"][10:12, 10:12] = 1.50
    bands["B04"][10:12, 10:12] = 0.10
    return bands


# --- band descriptions written without the zero padding (B2, B11: Google Earth Engine's names) --------------------


GEE_ORDER = ["B2", "B3", "B4", "B8", "B11", "B12"]


def test_unpadded_band_descriptions_are_read_as_the_bands_they_name(tmp_path: Path) -> None:
    b = sentinel2_bands()
    stack = [b["B0" + name[1:]] if len(name) == 2 else b[name] for name in GEE_ORDER]
    path = write_tif(tmp_path / "s2_gee_export.tif", stack, descriptions=GEE_ORDER)
    # Before the fix the descriptions were not recognised and the default order put B08 (NIR) in B11's place and
    # B11 in B12's, so the burning patch was missed without a word.
    assert resolve_band_map("sentinel2", None, count=6, descriptions=GEE_ORDER) == {
        "B02": 1,
        "B03": 2,
        "B04": 3,
        "B11": 5,
        "B12": 6,
    }
    scan = scan_scene(path, "sentinel2")
    expected = scan_bands(b, TRANSFORM, UTM51, "sentinel2")
    assert [(p.pixel_count, p.row, p.col) for p in scan.fire_points] == [(4, 10.5, 10.5)]
    assert scan.fire_points == expected.fire_points


def test_descriptions_that_contradict_the_default_order_are_an_error_not_a_guess() -> None:
    # The file names its bands, but not every band the rule needs: the default order would read the band described
    # as B08 as B11. Ask for a band map instead of silently using the wrong band.
    with pytest.raises(RasterBandError, match=r"band B11: .*file band 4, which is described as 'B08'; give a band map"):
        resolve_band_map("sentinel2", None, count=5, descriptions=["B02", "B03", "B04", "B08", "B12"])
    # Descriptions that are not band names (or none at all) still fall back to the default order.
    assert resolve_band_map("sentinel2", None, count=5, descriptions=["blue", "green", "red", "swir1", "swir2"]) == {
        "B02": 1,
        "B03": 2,
        "B04": 3,
        "B11": 4,
        "B12": 5,
    }


# --- a CRS that cannot be converted to longitude/latitude -----------------------------------------------------------


def test_local_crs_is_a_raster_error_naming_the_file(tmp_path: Path) -> None:
    b = sentinel2_bands()
    path = write_tif(tmp_path / "site_grid.tif", [b[n] for n in ("B02", "B03", "B04", "B11", "B12")], crs=LOCAL_CRS_WKT)
    # Before the fix: pyproj.exceptions.ProjError escaped from fire_points (a traceback in the CLI).
    with pytest.raises(RasterError, match=r"site_grid\.tif: .*CRS .*WGS-84"):
        scan_scene(path, "sentinel2")
    result = CliRunner().invoke(app, ["scan", str(path), "--sensor", "sentinel2"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.startswith(f"error: {path}:")


# --- fire points in the order of their clusters' first pixels -----------------------------------------------------


def test_fire_points_are_ordered_by_their_first_pixel_in_row_major_order() -> None:
    mask = np.zeros((6, 8), dtype=bool)
    mask[1, 0] = True  # second row
    mask[0, 5] = True  # first row: this cluster's first pixel comes first in raster order
    points = fire_points(mask, np.ones(mask.shape), TRANSFORM, UTM51)
    assert [(p.row, p.col) for p in points] == [(0.0, 5.0), (1.0, 0.0)]
