"""Issue #2 re-checked as an acceptance tester: inputs that slipped through the earlier checks.

Each test names the defect it guards: a half-merged level after two concurrent imports on PostgreSQL, codes and
names the database cannot hold (SQLite took them, PostgreSQL failed with a traceback), UTF-8 shapefiles without a
``.cpg`` read as GBK mojibake, footprints and points with impossible coordinates, CRS declarations that are not
horizontal, properties that are not an object, GBK points CSVs refused for columns that are ignored, and database
passwords shown in part (an unencoded ``@``) or whole (a ``password=`` parameter).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import shapefile
import shapely
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine

from service.auth.service import create_user
from service.config import Settings
from service.db import make_session_factory, transaction
from service.errors import InputError, UnknownCRSError
from service.incidents.states import Role
from service.main import create_app
from service.regions.crs import parse_crs
from service.regions.index import RegionIndex
from service.regions.loader import ReadReport, read_units
from service.regions.service import import_units
from service.regions.tables import Region
from service.regions.types import RegionLevel, RegionUnit

WGS = parse_crs("wgs84")


def _units(prefix: str, n: int) -> list[RegionUnit]:
    return [
        RegionUnit(
            f"{prefix}{i}", f"镇 {i}", RegionLevel.TOWNSHIP, shapely.box(125 + i * 0.1, 44, 125.1 + i * 0.1, 44.1)
        )
        for i in range(n)
    ]


def _geojson(path: Path, properties: object, geometry: dict[str, object] | None = None) -> Path:
    geometry = geometry or shapely.geometry.mapping(shapely.box(125, 43, 125.1, 43.1))
    feature = {"type": "Feature", "properties": properties, "geometry": geometry}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}, ensure_ascii=False), "utf-8")
    return path


# --- atomic re-import -------------------------------------------------------------------------------------------


def test_two_concurrent_imports_of_a_level_leave_exactly_one_of_them(engine: Engine) -> None:
    """On PostgreSQL the second import's DELETE did not see the first's uncommitted rows and deleted nothing, so
    after both committed the level held the units of both files (A0..A2 and B0..B2)."""
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        import_units(session, _units("OLD", 2), level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("old"))
    first = factory()
    first.begin()
    import_units(first, _units("A", 3), level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("a"))
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with transaction(factory) as session:
                import_units(session, _units("B", 3), level=RegionLevel.TOWNSHIP, crs=WGS, report=ReadReport("b"))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(1.0)  # the second import is now waiting (or, before the fix, done with its DELETE)
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert errors == []
    with factory() as session:
        codes = sorted(session.scalars(select(Region.code).where(Region.level == "township")))
    assert codes == ["B0", "B1", "B2"]


# --- what the database can hold ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        ({"code": "X" * 33, "name": "a"}, "code"),
        ({"code": "220101", "name": "名" * 201}, "name"),
        ({"code": "220101", "name": "a", "parent_code": "9" * 33}, "parent_code"),
    ],
)
def test_codes_and_names_longer_than_the_columns_are_refused_naming_the_feature(
    tmp_path: Path, properties: dict[str, str], field: str
) -> None:
    """SQLite stored a 40-character code; PostgreSQL's VARCHAR(32) failed the import with a traceback."""
    path = _geojson(tmp_path / "long.geojson", properties)
    with pytest.raises(InputError, match=rf"feature 1, field '{field}': .*at most"):
        read_units(path, level=RegionLevel.GRID, crs=WGS)


def test_a_code_of_exactly_the_column_width_imports_on_both_databases(engine: Engine, tmp_path: Path) -> None:
    path = _geojson(tmp_path / "ok.geojson", {"code": "G" * 32, "name": "名" * 200, "parent_code": "P" * 32})
    units, report = read_units(path, level=RegionLevel.GRID, crs=WGS)
    with transaction(make_session_factory(engine)) as session:
        import_units(session, units, level=RegionLevel.GRID, crs=WGS, report=report)
    with make_session_factory(engine)() as session:
        assert session.scalars(select(Region.code)).one() == "G" * 32


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"code": "   ", "name": "a"}, "feature 1, field 'code': no unit code"),
        ({"code": {"adcode": 1}, "name": "a"}, "feature 1, field 'code': .*not a text or number"),
        ({"code": "1", "name": ["a"]}, "feature 1, field 'name': .*not a text or number"),
    ],
)
def test_blank_or_structured_codes_and_names_are_refused(
    tmp_path: Path, properties: dict[str, object], message: str
) -> None:
    """A blank code was stored as the empty code; a list as a name became the text "['a']"."""
    with pytest.raises(InputError, match=message):
        read_units(_geojson(tmp_path / "b.geojson", properties), level=RegionLevel.TOWNSHIP, crs=WGS)


def test_a_blank_name_falls_back_to_the_code_with_a_warning(tmp_path: Path) -> None:
    units, report = read_units(
        _geojson(tmp_path / "n.geojson", {"code": "220101", "name": "  "}), level=RegionLevel.TOWNSHIP, crs=WGS
    )
    assert units[0].name == "220101"
    assert any("no name" in w for w in report.warnings)


def test_properties_that_are_not_an_object_are_an_error_naming_the_feature(tmp_path: Path) -> None:
    """A list as ``properties`` ended the import with AttributeError."""
    with pytest.raises(InputError, match=r"feature 1: .*properties"):
        read_units(_geojson(tmp_path / "p.geojson", [1, 2]), level=RegionLevel.TOWNSHIP, crs=WGS)


def test_a_feature_that_is_not_an_object_is_named_as_a_feature(tmp_path: Path) -> None:
    path = tmp_path / "f.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [null]}', "utf-8")
    with pytest.raises(InputError, match="feature 1: feature is not a JSON object"):
        read_units(path, level=RegionLevel.TOWNSHIP, crs=WGS)


# --- shapefile text without a .cpg ------------------------------------------------------------------------------


def _shapefile(stem: Path, names: list[str], encoding: str) -> Path:
    writer = shapefile.Writer(str(stem), shapeType=shapefile.POLYGON, encoding=encoding)
    writer.field("XZQDM", "C", 12)
    writer.field("XZQMC", "C", 50)
    for i, name in enumerate(names):
        x = 125 + i * 0.1
        writer.poly([[[x, 43], [x, 43.1], [x + 0.1, 43.1], [x + 0.1, 43], [x, 43]]])
        writer.record(f"22010{i}", name)
    writer.close()
    return stem.with_suffix(".shp")


def test_a_utf8_shapefile_without_cpg_is_not_read_as_gbk_mojibake(tmp_path: Path) -> None:
    """pyshp (and many scripts) write UTF-8 without a .cpg. 丙镇 and 113 of Changchun's 246 township names in UTF-8
    are also valid GBK byte sequences, so they were imported silently as 涓欓晣-style mojibake."""
    path = _shapefile(tmp_path / "u8", ["丙镇", "南岭街道"], "utf-8")
    units, report = read_units(path, level=RegionLevel.TOWNSHIP, crs=WGS)
    assert [u.name for u in units] == ["丙镇", "南岭街道"]
    assert any("UTF-8" in w and ".cpg" in w for w in report.warnings)


def test_a_gbk_shapefile_without_cpg_is_still_read_as_gbk(tmp_path: Path) -> None:
    path = _shapefile(tmp_path / "gbk", ["合隆镇", "南岭街道"], "gbk")
    units, report = read_units(path, level=RegionLevel.TOWNSHIP, crs=WGS)
    assert [u.name for u in units] == ["合隆镇", "南岭街道"]
    assert not any("UTF-8" in w for w in report.warnings)


def test_an_ascii_shapefile_without_cpg_gets_no_encoding_note(tmp_path: Path) -> None:
    _, report = read_units(_shapefile(tmp_path / "a", ["Helong"], "utf-8"), level=RegionLevel.TOWNSHIP, crs=WGS)
    assert report.warnings == []


def test_a_zip_with_several_shapefiles_is_refused_naming_them(tmp_path: Path) -> None:
    """pyshp's own message showed Python object reprs and suggested ``file.zip/name.shp``, which the import does not
    take; the .cpg of either shapefile would have been used for both."""
    import zipfile

    a = _shapefile(tmp_path / "a", ["合隆镇"], "gbk")
    b = _shapefile(tmp_path / "b", ["南岭街道"], "utf-8")
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for shp in (a, b):
            for suffix in (".shp", ".shx", ".dbf"):
                z.write(shp.with_suffix(suffix), shp.with_suffix(suffix).name)
    with pytest.raises(InputError) as info:
        read_units(archive, level=RegionLevel.TOWNSHIP, crs=WGS)
    assert str(info.value) == f"{archive}: the zip holds 2 shapefiles (a.shp, b.shp): zip one shapefile per file"


# --- CRS declarations -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["epsg:5773", "epsg:4978"])
def test_a_crs_that_is_not_horizontal_is_refused_by_name(name: str) -> None:
    """A vertical (EGM96 height) or geocentric CRS was accepted and failed later as a self-intersection or a range
    error on feature 1."""
    with pytest.raises(UnknownCRSError, match=rf"{name}.*not a longitude/latitude or projected CRS"):
        parse_crs(name)


def test_projected_and_geographic_epsg_codes_are_still_accepted() -> None:
    assert parse_crs("epsg:4547").name == "epsg:4547"
    assert parse_crs("epsg:4979").name == "epsg:4979"
    assert parse_crs("epsg:32651").name == "epsg:32651"


# --- points CSV -------------------------------------------------------------------------------------------------


def test_a_gbk_csv_with_chinese_columns_is_read_since_other_columns_are_ignored(tmp_path: Path) -> None:
    """Excel on a Chinese Windows saves CSV as GBK: a 名称 column made the whole file "not a readable CSV", though
    only the latitude and longitude columns are read."""
    from service.regions.points import read_points_csv

    path = tmp_path / "gbk.csv"
    path.write_bytes("名称,latitude,longitude,备注\n合隆镇,43.9,125.3,秸秆\n".encode("gbk"))
    lon, lat = read_points_csv(path)
    assert (lon.tolist(), lat.tolist()) == ([125.3], [43.9])


def test_an_undecodable_coordinate_is_still_an_error_naming_line_and_field(tmp_path: Path) -> None:
    from service.regions.points import read_points_csv

    path = tmp_path / "bad.csv"
    path.write_bytes(b"latitude,longitude\n43.9,125.3\n43.9,12\xff5.3\n")
    with pytest.raises(InputError, match=r"line 3, field 'longitude': .* is not a number"):
        read_points_csv(path)


# --- the index refuses impossible input -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index() -> RegionIndex:
    return RegionIndex(
        [
            RegionUnit("A", "a", RegionLevel.COUNTY, shapely.box(125, 43, 125.5, 44)),
            RegionUnit("B", "b", RegionLevel.COUNTY, shapely.box(125.5, 43, 126, 44)),
        ]
    )


@pytest.mark.parametrize(
    ("lon", "lat"), [(np.nan, 43.5), (125.2, np.nan), (np.inf, 43.5), (125.2, -np.inf), (125.2, 91.0), (181.0, 43.5)]
)
def test_non_finite_or_impossible_points_are_refused_not_called_outside(
    index: RegionIndex, lon: float, lat: float
) -> None:
    """NaN and inf were answered ``outside`` (and warned about as a numpy RuntimeWarning)."""
    with pytest.raises(ValueError, match=r"row 1 .*not a WGS-84 longitude/latitude"):
        index.assign_points(np.array([125.2, lon]), np.array([43.5, lat]))
    with pytest.raises(ValueError, match="not a WGS-84 longitude/latitude"):
        index.assign_point(lon, lat)


@pytest.mark.parametrize(
    "footprint",
    [
        shapely.Polygon([(125.1, 43.1), (125.2, 95), (125.3, 43.1)]),
        shapely.Polygon([(125.1, 43.1), (500, 43.2), (125.3, 43.1)]),
        shapely.Polygon([(125.1, 43.1), (1e300, 43.2), (125.3, 43.1)]),
        shapely.Polygon(),
    ],
)
def test_footprints_with_impossible_coordinates_are_refused(index: RegionIndex, footprint: shapely.Polygon) -> None:
    with pytest.raises(ValueError, match="footprint"):
        index.assign_footprint(footprint)


@pytest.mark.parametrize("tolerance", [-1.0, float("nan"), float("inf")])
def test_an_impossible_tolerance_is_refused(tolerance: float) -> None:
    with pytest.raises(ValueError, match="tolerance_m"):
        RegionIndex([RegionUnit("A", "a", RegionLevel.COUNTY, shapely.box(0, 0, 1, 1))], tolerance_m=tolerance)


# --- the HTTP API -----------------------------------------------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path / "var", demo=True))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        with transaction(app.state.session_factory) as session:
            create_user(session, "cam", "device-password", Role.DEVICE, None)
        token = test_client.post("/api/v1/auth/token", data={"username": "cam", "password": "device-password"})
        test_client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield test_client


@pytest.mark.parametrize(
    ("coordinates", "message"),
    [
        ([[[125.64, 44.36], [125.69, 95], [125.69, 44.38], [125.64, 44.36]]], "outside"),
        ([[[125.64, 44.36], [1e300, 44.36], [125.69, 44.38], [125.64, 44.36]]], "outside"),
        ([[[125.64, 44.36], [500, 44.36], [125.69, 44.38], [125.64, 44.36]]], "outside"),
        ([], "empty"),
    ],
)
def test_api_footprints_with_impossible_coordinates_are_422_naming_the_footprint(
    client: TestClient, coordinates: list[object], message: str
) -> None:
    """These were 500s (GEOS failed on the projected infinity; an empty polygon has no representative point), and a
    longitude of 500 was answered with shares."""
    body = {"footprints": [{"type": "Polygon", "coordinates": coordinates}]}
    response = client.post("/api/v1/regions/assign", json=body)
    assert response.status_code == 422, response.text
    assert "footprints[0]" in response.json()["detail"]
    assert message in response.json()["detail"]


# --- database URLs shown in messages ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # an unencoded @ in the password: SQLAlchemy ends the password at the first @ and showed the rest
        ("postgresql+psycopg://u:top@s3cretpart@db:5432/x", "postgresql+psycopg://u:***@db:5432/x"),
        # libpq takes the password as a parameter too; it was shown as it is
        (
            "postgresql+psycopg://u@db:5432/x?password=s3cretpart&sslmode=require",
            "postgresql+psycopg://u@db:5432/x?password=***&sslmode=require",
        ),
        ("postgresql+psycopg://u:s3cret/part@db/x", "postgresql+psycopg://u:***@db/x"),
        ("postgresql+psycopg://u:s3cret?part@db/x", "postgresql+psycopg://u:***@db/x"),
        (
            "postgresql+psycopg://u:s3cretpart@db/x?application_name=a@b",
            "postgresql+psycopg://u:***@db/x?application_name=a@b",
        ),
        ("postgresql+psycopg://u:s3cretpart@db:5432/x", "postgresql+psycopg://u:***@db:5432/x"),
        ("postgresql+psycopg://db:5432/x", "postgresql+psycopg://db:5432/x"),
        ("postgresql+psycopg://u@db/x", "postgresql+psycopg://u@db/x"),
        ("sqlite:///var/strawfire.sqlite3", "sqlite:///var/strawfire.sqlite3"),
    ],
)
def test_database_urls_are_shown_without_any_part_of_the_password(url: str, shown: str) -> None:
    from service.config import redact_url

    assert redact_url(url) == shown
    assert "s3cret" not in repr(Settings(database_url=url))


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:top@s3cretpart@127.0.0.1:9/x",  # the driver names the host 's3cretpart@127.0.0.1'
        "postgresql+psycopg://u@127.0.0.1:9/x?password=s3cretpart",
    ],
)
def test_a_database_that_cannot_be_opened_is_named_without_the_password(url: str) -> None:
    from service.db import open_database
    from service.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        open_database(url)
    assert "s3cret" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


@pytest.mark.parametrize("tolerance", ["-1", "nan", "inf", "50001"])
def test_regions_assign_refuses_an_impossible_tolerance_in_one_line(tmp_path: Path, tolerance: str) -> None:
    """`regions assign --tolerance-m -1|nan|inf` ended in a traceback; above the settings' cap it was accepted."""
    import os
    import subprocess
    import sys

    points = tmp_path / "points.csv"
    points.write_text("latitude,longitude\n44.3,125.3\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    command = [str(Path(sys.executable).with_name("strawfire")), "regions", "assign", str(points)]
    result = subprocess.run(
        [*command, "--tolerance-m", tolerance],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--tolerance-m must be 0–50000 metres" in result.stderr
    assert "Traceback" not in result.stderr
