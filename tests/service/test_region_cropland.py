"""A unit's cropland area (the density basis of the scores) must be a finite, non-negative number of hectares:
anything else is refused naming the file, the feature and the attribute, and nothing of that import is stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapefile

from service.errors import InputError
from service.regions.loader import read_units
from service.regions.types import RegionLevel
from tests.service.test_loader import WGS, feature, square, write_geojson
from tests.test_cli import run


@pytest.mark.parametrize(
    ("attribute", "value", "problem"),
    [
        ("cropland_ha", float("nan"), "nan is not a finite number"),  # JSON's NaN, which json.loads reads
        ("cropland_ha", float("inf"), "inf is not a finite number"),  # JSON's Infinity
        ("cropland", "-Infinity", "'-Infinity' is not a finite number"),
        ("GDMJ_HA", "1e999", "'1e999' is not a finite number"),  # too large for a float: infinity
        ("cropland_ha", "NaN", "'NaN' is not a finite number"),
        ("cropland_ha", -12.5, "-12.5 is negative"),
        ("cropland_ha", True, "True is not a number"),
        ("cropland_ha", "三千", "'三千' is not a number"),
    ],
)
def test_a_cropland_area_that_is_not_a_finite_non_negative_number_is_refused(
    tmp_path: Path, attribute: str, value: object, problem: str
) -> None:
    path = write_geojson(
        tmp_path / "towns.geojson",
        [feature("1", "a", square(0, 0), cropland_ha=100.0), feature("2", "b", square(1, 1), **{attribute: value})],
    )
    with pytest.raises(InputError) as info:
        read_units(path, level=RegionLevel.TOWNSHIP, crs=WGS)
    assert str(info.value) == f"{path}, feature 2, field {attribute!r}: cropland area {problem} (hectares)"


def test_good_cropland_areas_are_read(tmp_path: Path) -> None:
    path = write_geojson(
        tmp_path / "towns.geojson",
        [
            feature("1", "a", square(0, 0), cropland_ha=1234.5),
            feature("2", "b", square(1, 1), cropland=" 0 "),  # a street with no cropland: density by area
            feature("3", "c", square(2, 2), gdmj_ha=""),  # blank: no figure
            feature("4", "d", square(3, 3)),
        ],
    )
    units, _ = read_units(path, level=RegionLevel.TOWNSHIP, crs=WGS)
    assert [u.cropland_ha for u in units] == [1234.5, 0.0, None, None]


def test_a_shapefile_with_a_negative_cropland_area_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "towns"
    with shapefile.Writer(str(base), shapeType=shapefile.POLYGON) as writer:
        writer.field("code", "C", 12)
        writer.field("cropland", "N", 12, 2)
        writer.poly([[[0, 0], [0, 1], [1, 1], [1, 0], [0, 0]]])
        writer.record("1", 10.0)
        writer.poly([[[2, 0], [2, 1], [3, 1], [3, 0], [2, 0]]])
        writer.record("2", -3.5)
    with pytest.raises(InputError, match=r"towns\.shp, feature 2, field 'cropland': cropland area -3\.5 is negative"):
        read_units(base.with_suffix(".shp"), level=RegionLevel.TOWNSHIP, crs=WGS)


def test_a_refused_import_stores_nothing_and_keeps_the_units_before_it(tmp_path: Path) -> None:
    good = write_geojson(tmp_path / "good.geojson", [feature("901", "旧镇", square(125, 44), cropland_ha=500)])
    first = run("regions", "import", str(good), "--level", "township", "--crs", "wgs84", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    bad = tmp_path / "bad.geojson"
    bad.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    feature("902", "新镇", square(125, 44), cropland_ha=700),
                    feature("903", "坏镇", square(126, 44), cropland_ha=float("nan")),
                ],
            }
        ),
        encoding="utf-8",
    )
    assert "NaN" in bad.read_text(encoding="utf-8")  # what a GIS export writes for a missing float
    refused = run("regions", "import", str(bad), "--level", "township", "--crs", "wgs84", cwd=tmp_path)
    assert refused.returncode == 2
    assert f"{bad}, feature 2, field 'cropland_ha': cropland area nan is not a finite number" in refused.stderr
    listing = run("regions", "list", "--level", "township", cwd=tmp_path)
    assert "旧镇" in listing.stdout
    assert "新镇" not in listing.stdout
