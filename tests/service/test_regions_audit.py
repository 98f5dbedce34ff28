"""Audit of the regions domain: each test failed before its fix (file encodings, attribute names, areas)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapefile
import shapely
from pyproj import Geod

from service.errors import InputError
from service.regions.crs import parse_crs
from service.regions.loader import read_units
from service.regions.service import geodesic_area_ha
from service.regions.types import RegionLevel

WGS = parse_crs("wgs84")
GEOD = Geod(ellps="WGS84")
# Two-character names are 6 bytes in UTF-8, which GBK decodes without an error into other characters:
# 长春 → 闀挎槬. Only the right encoding gives the names back.
EVEN_NAMES = ("长春", "南关", "绿园")


def _utf8_shapefile(base: Path, names: tuple[str, ...]) -> None:
    with shapefile.Writer(str(base), shapeType=shapefile.POLYGON, encoding="utf-8") as writer:
        writer.field("XZQDM", "C", 12)
        writer.field("XZQMC", "C", 40)
        for i, name in enumerate(names):
            x = 125.0 + 0.1 * i
            writer.poly([[(x, 44.0), (x, 44.1), (x + 0.1, 44.1), (x + 0.1, 44.0), (x, 44.0)]])
            writer.record(f"22010200{i}", name)


def _upper_case_extensions(base: Path) -> Path:
    for suffix in (".shp", ".shx", ".dbf"):
        base.with_suffix(suffix).rename(base.with_suffix(suffix.upper()))
    return base.with_suffix(".SHP")


@pytest.mark.parametrize("cpg_suffix", [".CPG", ".Cpg"])
def test_a_cpg_with_upper_case_extension_is_honoured(tmp_path: Path, cpg_suffix: str) -> None:
    """Windows/ArcGIS exports write TOWNS.SHP + TOWNS.CPG. Only ``towns.cpg`` was looked for, GBK was assumed and
    the UTF-8 names came out as mojibake without a word (pyshp finds the .CPG, but the loader's encoding won)."""
    base = tmp_path / "TOWNS"
    _utf8_shapefile(base, EVEN_NAMES)
    shp = _upper_case_extensions(base)
    base.with_suffix(cpg_suffix).write_text("UTF-8")
    units, _ = read_units(shp, level=RegionLevel.TOWNSHIP, crs=WGS)
    assert [u.name for u in units] == list(EVEN_NAMES)


def test_undecodable_shapefile_text_names_the_encoding_fix(tmp_path: Path) -> None:
    """pyshp 3 reports undecodable text as its own dbfFileException, not UnicodeDecodeError: the hint to add a
    .cpg was never shown, only pyshp's raw bytes."""
    base = tmp_path / "towns"
    # Windows-1252 "é" before the space padding is neither UTF-8 nor GBK (valid UTF-8 is read as UTF-8 without a .cpg).
    with shapefile.Writer(str(base), shapeType=shapefile.POLYGON, encoding="cp1252") as writer:
        writer.field("XZQMC", "C", 40)
        writer.poly([[(125.0, 44.0), (125.0, 44.1), (125.1, 44.1), (125.1, 44.0), (125.0, 44.0)]])
        writer.record("Café")
    with pytest.raises(InputError) as info:
        read_units(base.with_suffix(".shp"), level=RegionLevel.TOWNSHIP, crs=WGS)
    message = str(info.value)
    assert "towns.shp" in message
    assert "add a .cpg file naming it (GBK was assumed)" in message


def _square_feature(properties: dict[str, object]) -> dict[str, object]:
    return {
        "type": "Feature",
        "properties": properties,
        "geometry": shapely.geometry.mapping(shapely.box(125.3, 43.8, 125.4, 43.9)),
    }


@pytest.mark.parametrize(
    "properties",
    [
        {"行政区划代码": "220102", "名称": "南关区"},
        {"行政区代码": 220102, "行政区名称": "南关区"},
        {"区划代码": "220102", "行政区划名称": "南关区", "上级行政区划代码": "220100"},
    ],
)
def test_chinese_attribute_names_are_detected(tmp_path: Path, properties: dict[str, object]) -> None:
    """Chinese GIS exports name their columns in Chinese; only Latin names were detected and the import stopped
    with 'no unit code'."""
    path = tmp_path / "counties.geojson"
    document = {"type": "FeatureCollection", "features": [_square_feature(properties)]}
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    units, report = read_units(path, level=RegionLevel.COUNTY, crs=WGS)
    assert (units[0].code, units[0].name) == ("220102", "南关区")
    assert units[0].parent_code == properties.get("上级行政区划代码")
    assert report.warnings == []


def test_chinese_field_names_of_a_gbk_shapefile_are_detected(tmp_path: Path) -> None:
    base = tmp_path / "towns"
    with shapefile.Writer(str(base), shapeType=shapefile.POLYGON, encoding="gbk") as writer:
        writer.field("区划代码", "C", 12)
        writer.field("名称", "C", 40)
        writer.poly([[(125.0, 44.0), (125.0, 44.1), (125.1, 44.1), (125.1, 44.0), (125.0, 44.0)]])
        writer.record("220122100", "农安镇")
    units, _ = read_units(base.with_suffix(".shp"), level=RegionLevel.TOWNSHIP, crs=WGS)
    assert (units[0].code, units[0].name) == ("220122100", "农安镇")


def test_gbk_geojson_is_read_and_reported(tmp_path: Path) -> None:
    """GeoJSON written by Python on a Chinese Windows (open() defaults to cp936) is GBK. It was refused with
    "cannot read file: 'utf-8' codec can't decode byte 0xc4 in position 107"."""
    path = tmp_path / "counties.geojson"
    document = {"type": "FeatureCollection", "features": [_square_feature({"adcode": 220102, "name": "南关区"})]}
    path.write_bytes(json.dumps(document, ensure_ascii=False).encode("gbk"))
    units, report = read_units(path, level=RegionLevel.COUNTY, crs=WGS)
    assert units[0].name == "南关区"
    assert any("not UTF-8" in w and "GBK" in w for w in report.warnings)


def test_undecodable_geojson_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.geojson"
    path.write_bytes(b'{"type": "FeatureCollection",\n "features": [], "x": "\xff\xfe\x80"}')
    with pytest.raises(InputError, match=r"bad\.geojson, line 2: .*neither UTF-8 nor GBK"):
        read_units(path, level=RegionLevel.COUNTY, crs=WGS)


def _ring_area_m2(ring: list[tuple[float, float]]) -> float:
    lons, lats = zip(*ring, strict=True)
    area, _ = GEOD.polygon_area_perimeter(lons, lats)
    return abs(area)


def test_area_subtracts_a_hole_whatever_its_winding() -> None:
    """pyproj adds each ring's *signed* area: a hole wound like its exterior (common in GeoJSON that ignores the
    right-hand rule; shapely calls it valid) was added to the area instead of subtracted."""
    exterior = [(125.0, 44.0), (125.1, 44.0), (125.1, 44.1), (125.0, 44.1)]  # counter-clockwise
    hole = [(125.02, 44.02), (125.05, 44.02), (125.05, 44.05), (125.02, 44.05)]  # counter-clockwise too
    polygon = shapely.Polygon(exterior, [hole])
    assert polygon.is_valid
    expected_ha = (_ring_area_m2(exterior) - _ring_area_m2(hole)) / 10_000
    assert geodesic_area_ha(polygon) == pytest.approx(expected_ha, rel=1e-9)


def test_area_adds_multipolygon_parts_whatever_their_winding() -> None:
    """Parts wound in opposite directions cancelled each other: an exclave township got almost no area."""
    west = [(125.0, 44.0), (125.1, 44.0), (125.1, 44.1), (125.0, 44.1)]  # counter-clockwise
    east = [(125.3, 44.0), (125.3, 44.1), (125.4, 44.1), (125.4, 44.0)]  # clockwise
    multi = shapely.MultiPolygon([shapely.Polygon(west), shapely.Polygon(east)])
    expected_ha = (_ring_area_m2(west) + _ring_area_m2(east)) / 10_000
    assert geodesic_area_ha(multi) == pytest.approx(expected_ha, rel=1e-9)
