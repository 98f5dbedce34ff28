"""Reading boundary files: formats, CRS, code lists, repairs and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import prcoords
import pytest
import shapefile
import shapely

from service.errors import InputError, UnknownCRSError
from service.regions.crs import parse_crs, to_wgs84_xy
from service.regions.loader import CodeList, read_units
from service.regions.types import RegionLevel

WGS = parse_crs("wgs84")


def write_geojson(path: Path, features: list[dict[str, object]]) -> Path:
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False), encoding="utf-8"
    )
    return path


def feature(code: object, name: str, geometry: dict[str, object], **extra: object) -> dict[str, object]:
    return {"type": "Feature", "properties": {"code": code, "name": name, **extra}, "geometry": geometry}


def square(x: float, y: float, size: float = 0.1) -> dict[str, object]:
    return shapely.geometry.mapping(shapely.box(x, y, x + size, y + size))


def test_crs_names_and_unknown_names() -> None:
    assert parse_crs("GCJ-02").name == "gcj02"
    assert parse_crs("Baidu").name == "bd09"
    assert parse_crs("EPSG:4490").name == "cgcs2000"
    assert parse_crs("epsg:4527").name == "epsg:4527"
    with pytest.raises(UnknownCRSError, match="unknown CRS 'mercator'"):
        parse_crs("mercator")
    with pytest.raises(UnknownCRSError):
        parse_crs("epsg:999999")


def test_gcj02_and_bd09_inverse_agree_with_the_forward_transform() -> None:
    import numpy as np

    lat, lon = 43.88, 125.35
    gcj = prcoords.wgs_gcj(prcoords.Coords(lat, lon), False)
    bd = prcoords.wgs_bd(prcoords.Coords(lat, lon), False)
    back = to_wgs84_xy(parse_crs("gcj02"), np.array([gcj.lon]), np.array([gcj.lat]))
    back_bd = to_wgs84_xy(parse_crs("bd09"), np.array([bd.lon]), np.array([bd.lat]))
    for x, y in (back, back_bd):
        assert x[0] == pytest.approx(lon, abs=1e-6)
        assert y[0] == pytest.approx(lat, abs=1e-6)
    # The offset is hundreds of metres around Changchun: conversion really moves things.
    assert abs(gcj.lon - lon) > 0.003


def test_geojson_with_multipolygon_hole_and_codes_from_list(tmp_path: Path) -> None:
    holed = {
        "type": "Polygon",
        "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]], [[1, 1], [2, 1], [2, 2], [1, 2], [1, 1]]],
    }
    multi = {
        "type": "MultiPolygon",
        "coordinates": [
            [[[5, 0], [6, 0], [6, 1], [5, 1], [5, 0]]],
            [[[7, 0], [8, 0], [8, 1], [7, 1], [7, 0]]],
        ],
    }
    path = write_geojson(
        tmp_path / "t.geojson",
        [
            {"type": "Feature", "properties": {"name": "南岭街道"}, "geometry": holed},  # code from the list
            feature(220102002, "", multi),  # name from the list
        ],
    )
    codes = tmp_path / "codes.csv"
    codes.write_text(
        'code,name,areaCode,provinceCode,cityCode\n220102001,"南岭街道",220102,22,2201\n'
        '220102002,"自强街道",220102,22,2201\n',
        encoding="utf-8",
    )
    units, report = read_units(path, level=RegionLevel.TOWNSHIP, crs=WGS, codes=CodeList.read(codes))
    assert [(u.code, u.name, u.parent_code) for u in units] == [
        ("220102001", "南岭街道", "220102"),
        ("220102002", "自强街道", "220102"),
    ]
    assert len(units[0].geometry.interiors) == 1
    assert isinstance(units[1].geometry, shapely.MultiPolygon)
    assert report.repairs == []


def test_datav_properties_are_understood(tmp_path: Path) -> None:
    path = write_geojson(
        tmp_path / "datav.json",
        [
            {
                "type": "Feature",
                "properties": {"adcode": 220102, "name": "南关区", "parent": {"adcode": 220100}},
                "geometry": square(125.3, 43.8),
            }
        ],
    )
    units, _ = read_units(path, level=RegionLevel.COUNTY, crs=parse_crs("gcj02"))
    assert (units[0].code, units[0].parent_code) == ("220102", "220100")
    # Converted to WGS-84: GCJ-02 is east/north of WGS-84 here, so the polygon moves west/south.
    assert units[0].geometry.bounds[0] < 125.3


def test_invalid_polygon_is_repaired_and_reported(tmp_path: Path) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    units, report = read_units(
        write_geojson(tmp_path / "b.geojson", [feature("1", "bow", bowtie)]), level=RegionLevel.GRID, crs=WGS
    )
    assert units[0].geometry.is_valid
    assert units[0].geometry.area == pytest.approx(0.5)
    assert len(report.repairs) == 1
    assert "Self-intersection" in report.repairs[0].reason


def test_shapefile_with_gbk_names(tmp_path: Path) -> None:
    base = tmp_path / "towns"
    with shapefile.Writer(str(base), shapeType=shapefile.POLYGON, encoding="gbk") as writer:
        writer.field("XZQDM", "C", 12)
        writer.field("XZQMC", "C", 40)
        writer.poly([[(125.0, 44.0), (125.0, 44.1), (125.1, 44.1), (125.1, 44.0), (125.0, 44.0)]])
        writer.record("220122100", "农安镇")
    units, _ = read_units(base.with_suffix(".shp"), level=RegionLevel.TOWNSHIP, crs=parse_crs("cgcs2000"))
    assert (units[0].code, units[0].name) == ("220122100", "农安镇")
    assert units[0].geometry.area == pytest.approx(0.01, rel=1e-6)


def _utf8_towns(base: Path) -> None:
    with shapefile.Writer(str(base), shapeType=shapefile.POLYGON, encoding="utf-8") as writer:
        writer.field("XZQDM", "C", 12)
        writer.field("XZQMC", "C", 40)
        writer.poly([[(125.0, 44.0), (125.0, 44.1), (125.1, 44.1), (125.1, 44.0), (125.0, 44.0)]])
        writer.record("220102001", "南岭街道")


def test_a_zipped_shapefile_takes_the_cpg_inside_the_zip(tmp_path: Path) -> None:
    """The .cpg inside the archive was ignored and GBK forced: UTF-8 names came out garbled, without a word."""
    import zipfile

    base = tmp_path / "towns"
    _utf8_towns(base)
    base.with_suffix(".cpg").write_text("UTF-8")
    archive = tmp_path / "towns.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for suffix in (".shp", ".shx", ".dbf", ".cpg"):
            out.write(base.with_suffix(suffix), f"towns{suffix}")
    units, _ = read_units(archive, level=RegionLevel.TOWNSHIP, crs=WGS)
    assert units[0].name == "南岭街道"


@pytest.mark.parametrize(("declared", "works"), [("65001", True), ("ANSI 65001", True), ("System", False)])
def test_cpg_code_pages_are_read_and_an_unknown_one_is_a_clear_error(
    tmp_path: Path, declared: str, works: bool
) -> None:
    base = tmp_path / "towns"
    _utf8_towns(base)
    base.with_suffix(".cpg").write_text(declared)
    if works:
        units, _ = read_units(base.with_suffix(".shp"), level=RegionLevel.TOWNSHIP, crs=WGS)
        assert units[0].name == "南岭街道"
    else:  # was a LookupError traceback
        with pytest.raises(InputError, match=r"the \.cpg names the encoding 'System', which is unknown"):
            read_units(base.with_suffix(".shp"), level=RegionLevel.TOWNSHIP, crs=WGS)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("{not json", "not valid JSON"),
        ('{"type": "FeatureCollection", "features": []}', "no features"),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [feature("1", "a", {"type": "Point", "coordinates": [1, 2]})],
                }
            ),
            "feature 1, field 'geometry': geometry is a Point",
        ),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [
                        feature("1", "a", square(0, 0)),
                        {"type": "Feature", "properties": {"name": "b"}, "geometry": square(1, 1)},
                    ],
                }
            ),
            "feature 2, field 'code'",
        ),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [feature("1", "a", square(0, 0)), feature("1", "b", square(1, 1))],
                }
            ),
            "code 1 appears twice",
        ),
        (
            json.dumps({"type": "FeatureCollection", "features": [feature("1", "a", square(500000, 4800000, 1000))]}),
            "outside longitude/latitude range",
        ),
    ],
)
def test_bad_files_give_clear_errors_naming_file_and_feature(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_units(path, level=RegionLevel.COUNTY, crs=WGS)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_unsupported_or_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_units(tmp_path / "nope.geojson", level=RegionLevel.COUNTY, crs=WGS)
    other = tmp_path / "x.kml"
    other.write_text("<kml/>")
    with pytest.raises(InputError, match="unsupported file type"):
        read_units(other, level=RegionLevel.COUNTY, crs=WGS)
    broken = tmp_path / "broken.shp"
    broken.write_bytes(b"not a shapefile")
    with pytest.raises(InputError, match=r"broken\.shp"):
        read_units(broken, level=RegionLevel.COUNTY, crs=WGS)
