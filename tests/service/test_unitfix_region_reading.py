"""Reading boundary files: a GeoJSON ``crs`` member that contradicts the import's CRS is named, a NaN coordinate is
one clear error without a shapely warning, and warnings name the feature as errors do."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from service.errors import InputError
from service.regions.crs import parse_crs
from service.regions.loader import CodeList, read_units
from service.regions.types import RegionLevel

BOX = [[[125.0, 44.0], [125.1, 44.0], [125.1, 44.1], [125.0, 44.1], [125.0, 44.0]]]


def geojson(tmp_path: Path, features: list[dict[str, Any]], crs_name: str | None = None) -> Path:
    data: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if crs_name is not None:
        data["crs"] = {"type": "name", "properties": {"name": crs_name}}
    path = tmp_path / "towns.geojson"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def feature(code: str, name: str | None = "甲镇", coordinates: Any = BOX) -> dict[str, Any]:
    properties = {"code": code} if name is None else {"code": code, "name": name}
    return {"type": "Feature", "properties": properties, "geometry": {"type": "Polygon", "coordinates": coordinates}}


def warnings_of(path: Path, crs: str, codes: CodeList | None = None) -> list[str]:
    _, report = read_units(path, level=RegionLevel.TOWNSHIP, crs=parse_crs(crs), codes=codes)
    return report.warnings


def test_a_crs_member_that_contradicts_the_imports_crs_is_named(tmp_path: Path) -> None:
    """The audit's file: degrees that say they are Web Mercator, imported as WGS-84."""
    path = geojson(tmp_path, [feature("T1")], "urn:ogc:def:crs:EPSG::3857")
    assert warnings_of(path, "wgs84") == [
        "the file's 'crs' member declares urn:ogc:def:crs:EPSG::3857 (WGS 84 / Pseudo-Mercator), not wgs84: the "
        "coordinates were read as wgs84, the CRS the import was given; check which is right"
    ]


@pytest.mark.parametrize(
    ("declared", "given"),
    [
        ("urn:ogc:def:crs:OGC:1.3:CRS84", "wgs84"),  # RFC 7946's default, axis order aside
        ("EPSG:4326", "wgs84"),
        ("EPSG:4490", "cgcs2000"),
        ("EPSG:4326", "gcj02"),  # GCJ-02 and BD-09 have no code: their files say WGS-84's
        ("urn:ogc:def:crs:EPSG::4490", "wgs84"),  # CGCS2000 is WGS-84 within a metre
        ("EPSG:4527", "epsg:4527"),
    ],
)
def test_a_crs_member_that_agrees_is_accepted_silently(tmp_path: Path, declared: str, given: str) -> None:
    coordinates = BOX
    if given == "epsg:4527":  # a CGCS2000 Gauss-Krüger zone (3°, zone 39): metres around Changchun
        coordinates = [
            [[39_500_000, 4_900_000], [39_505_000, 4_900_000], [39_505_000, 4_905_000], [39_500_000, 4_900_000]]
        ]
    path = geojson(tmp_path, [feature("T1", coordinates=coordinates)], declared)
    assert warnings_of(path, given) == []


def test_a_crs_member_pyproj_does_not_know_is_named(tmp_path: Path) -> None:
    path = geojson(tmp_path, [feature("T1")], "my local grid")
    assert warnings_of(path, "wgs84") == [
        "the file's 'crs' member declares 'my local grid', a CRS pyproj does not know: the coordinates were read as "
        "wgs84, the CRS the import was given; check which is right"
    ]


def test_a_nan_coordinate_is_one_error_without_a_shapely_warning(tmp_path: Path) -> None:
    nan_box = [[[125.0, 44.0], [125.1, float("nan")], [125.1, 44.1], [125.0, 44.0]]]
    path = geojson(tmp_path, [feature("T1"), feature("T7", coordinates=nan_box)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match="feature 2, field 'geometry': geometry has non-finite coordinates"):
            read_units(path, level=RegionLevel.TOWNSHIP, crs=parse_crs("wgs84"))
    assert [str(w.message) for w in caught] == []


def test_warnings_name_the_feature_as_errors_do(tmp_path: Path) -> None:
    path = geojson(tmp_path, [feature("T1"), feature("T4", name=None), feature("T5", name="丙镇")])
    codes_csv = tmp_path / "codes.csv"
    codes_csv.write_text("code,name\nT1,甲镇\nT5,丁镇\n", encoding="utf-8")
    assert warnings_of(path, "wgs84", CodeList.read(codes_csv)) == [
        "feature 2: code T4 is not in the code list",
        "feature 2: unit T4 has no name; using its code",
        "feature 3: name '丙镇' differs from the code list's '丁镇' for T5",
    ]
