"""Coordinates audit, regions: a footprint's status follows its centre (a pixel centred beyond the tolerance but
overlapping a unit is at the edge, ``nearest``, not ``inside``); a GeoJSON ``crs`` member naming GCJ-02 or BD-09 is
understood; satellite coverage is the township and county levels', not the coarsest level imported."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely
from pyproj import Geod
from sqlalchemy.engine import Engine

from satellite.firms import read_firms_csv
from service.db import make_session_factory, transaction
from service.regions.crs import parse_crs
from service.regions.index import RegionIndex
from service.regions.loader import ReadReport, read_units
from service.regions.service import RegionIndexCache, import_units, units_coverage
from service.regions.types import AssignStatus, RegionLevel, RegionUnit
from tests.conftest import shared_path
from tests.service.test_region_index import offset_east, two_squares
from tests.service.test_unitfix_region_reading import feature, geojson, warnings_of

GEOD = Geod(ellps="WGS84")
WGS = parse_crs("wgs84")


def pixel(lon: float, lat: float, width_m: float) -> shapely.Polygon:
    """A square footprint ``width_m`` wide centred on (lon, lat)."""
    west, _, _ = GEOD.fwd(lon, lat, 270.0, width_m / 2)
    east, _, _ = GEOD.fwd(lon, lat, 90.0, width_m / 2)
    _, south, _ = GEOD.fwd(lon, lat, 180.0, width_m / 2)
    _, north, _ = GEOD.fwd(lon, lat, 0.0, width_m / 2)
    return shapely.box(west, south, east, north)


def test_a_footprint_centred_beyond_the_tolerance_but_overlapping_a_unit_is_nearest() -> None:
    """Any overlap had made a footprint ``inside``: a 1.4 km pixel centred 600 m east of 001 (100 m of it inside)."""
    index = RegionIndex(two_squares(), tolerance_m=500)
    lon, lat = offset_east(125.6, 44.05, 600.0)
    edge = index.assign_footprint(pixel(lon, lat, 1400.0))
    assert edge.status is AssignStatus.NEAREST
    assert [s.code for s in edge.shares] == ["001"]  # the unit it reaches, with its share
    assert edge.shares[0].share == pytest.approx(100 / 1400, rel=0.02)
    assert edge.outside_share == pytest.approx(1300 / 1400, rel=0.01)
    assert edge.distance_m == pytest.approx(600.0, abs=1.0)  # how far outside its centre lies
    # The centre the caller gives decides (a camera's ground point is no centroid of its wedge).
    inside_centre = index.assign_footprint(pixel(lon, lat, 1400.0), centre=(125.5999, 44.05))
    assert (inside_centre.status, inside_centre.distance_m) == (AssignStatus.INSIDE, 0.0)
    # Centred inside, partly outside: inside, as before; centred just outside (within the tolerance): nearest.
    assert index.assign_footprint(pixel(*offset_east(125.6, 44.05, -300.0), 1400.0)).status is AssignStatus.INSIDE
    just_out = index.assign_footprint(pixel(*offset_east(125.6, 44.05, 200.0), 1400.0))
    assert (just_out.status, just_out.shares[0].code) == (AssignStatus.NEAREST, "001")
    with pytest.raises(ValueError, match="centre"):
        index.assign_footprint(pixel(lon, lat, 1400.0), centre=(float("nan"), 44.05))


@pytest.mark.shared_data
def test_the_real_modis_pixel_at_the_edge_of_changchun_is_nearest(changchun_counties: Path) -> None:
    """The audit's row: Aqua, 43.99067 N 126.01398 E, scan 1.15 × track 1.07 km, centred 558 m outside 九台区,
    2.4 % of it inside."""
    units, _ = read_units(changchun_counties, level=RegionLevel.COUNTY, crs=parse_crs("gcj02"))
    index = RegionIndex(units)
    rows = read_firms_csv(shared_path("firms", "MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv")).hotspots
    (hotspot,) = [h for h in rows if (h.latitude, h.longitude) == (43.99067, 126.01398)]
    assert (hotspot.scan_km, hotspot.track_km) == (1.15, 1.07)
    result = index.assign_footprint(hotspot.footprint(), centre=(hotspot.longitude, hotspot.latitude))
    assert result.status is AssignStatus.NEAREST
    assert [(s.code, s.name) for s in result.shares] == [("220113", "九台区")]
    assert result.shares[0].share == pytest.approx(0.024, abs=0.002)
    assert result.outside_share == pytest.approx(0.976, abs=0.002)
    assert result.distance_m == pytest.approx(558.0, abs=5.0)


@pytest.mark.parametrize(
    ("declared", "given", "warned"),
    [
        ("GCJ02", "gcj02", None),
        ("GCJ-02", "gcj02", None),
        ("urn:ogc:def:crs:GCJ02", "gcj02", None),
        ("bd09ll", "bd09", None),
        ("BD09", "gcj02", "BD09 (BD-09), not gcj02"),
        ("GCJ02", "wgs84", "GCJ02 (GCJ-02), not wgs84"),
    ],
)
def test_a_crs_member_naming_gcj02_or_bd09_is_understood(
    tmp_path: Path, declared: str, given: str, warned: str | None
) -> None:
    """A "GCJ02" member imported with --crs gcj02 was warned about as "a CRS pyproj does not know"."""
    notes = warnings_of(geojson(tmp_path, [feature("T1")], declared), given)
    if warned is None:
        assert notes == []
    else:
        assert notes == [
            f"the file's 'crs' member declares {warned}: the coordinates were read as {given}, the CRS the import "
            "was given; check which is right"
        ]


def _import(engine: Engine, units: list[RegionUnit], level: RegionLevel) -> None:
    with transaction(make_session_factory(engine)) as session:
        import_units(session, units, level=level, crs=WGS, report=ReadReport("test"))


def test_coverage_is_the_township_and_county_levels_not_a_coarser_one(engine: Engine) -> None:
    """A city imported after its counties widened coverage to the city: its other hotspots became incidents no
    township or county had."""
    county = RegionUnit("C1", "甲县", RegionLevel.COUNTY, shapely.box(125.0, 44.0, 125.2, 44.1), "S1")
    town = RegionUnit("T1", "乙镇", RegionLevel.TOWNSHIP, shapely.box(125.3, 44.0, 125.4, 44.1), "C2")
    city = RegionUnit("S1", "丙市", RegionLevel.CITY, shapely.box(124.0, 43.0, 127.0, 46.0))
    _import(engine, [county], RegionLevel.COUNTY)
    _import(engine, [town], RegionLevel.TOWNSHIP)
    _import(engine, [city], RegionLevel.CITY)
    indexes = RegionIndexCache(500.0)
    with make_session_factory(engine)() as session:
        coverage = units_coverage(session, indexes)
        assert coverage is not None
        covered = shapely.union_all(coverage)
        assert covered.contains(shapely.Point(125.1, 44.05))  # the county
        assert covered.contains(shapely.Point(125.35, 44.05))  # the township of a county not imported
        assert covered.contains(shapely.Point(*offset_east(125.2, 44.05, 450.0)))  # within the tolerance
        assert not covered.contains(shapely.Point(126.0, 45.0))  # the city's other land
        assert not covered.contains(shapely.Point(125.25, 44.05))  # between the two
        again = units_coverage(session, indexes)
        assert again is not None
        assert again == coverage  # the same area …
        assert all(a is b for a, b in zip(again, coverage, strict=True))  # … not united again: the cached parts


def test_no_coverage_without_township_or_county_units(engine: Engine) -> None:
    _import(
        engine, [RegionUnit("S1", "丙市", RegionLevel.CITY, shapely.box(124.0, 43.0, 127.0, 46.0))], RegionLevel.CITY
    )
    with make_session_factory(engine)() as session:
        assert units_coverage(session, RegionIndexCache(500.0)) is None  # no hotspot could be given to anyone
