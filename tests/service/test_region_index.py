"""RegionIndex: exact containment, border determinism, geodesic tolerance, footprint shares."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from pyproj import Geod

from service.regions.index import RegionIndex
from service.regions.types import AssignStatus, RegionLevel, RegionUnit

GEOD = Geod(ellps="WGS84")


def unit(code: str, geometry: shapely.Geometry, name: str | None = None) -> RegionUnit:
    assert isinstance(geometry, shapely.Polygon | shapely.MultiPolygon)
    return RegionUnit(code, name or f"unit {code}", RegionLevel.TOWNSHIP, geometry)


def two_squares() -> list[RegionUnit]:
    # West square B (code 002) and east square A (code 001) share the meridian 125.5.
    return [
        unit("002", shapely.box(125.4, 44.0, 125.5, 44.1)),
        unit("001", shapely.box(125.5, 44.0, 125.6, 44.1)),
    ]


def offset_east(lon: float, lat: float, metres: float) -> tuple[float, float]:
    lon2, lat2, _ = GEOD.fwd(lon, lat, 90.0, metres)
    return lon2, lat2


def test_inside_points_get_their_unit() -> None:
    index = RegionIndex(two_squares())
    assert index.assign_point(125.45, 44.05).code == "002"
    a = index.assign_point(125.55, 44.05)
    assert (a.code, a.status, a.distance_m) == ("001", AssignStatus.INSIDE, 0.0)


@pytest.mark.parametrize("order", [0, 1])
def test_point_on_shared_border_goes_to_one_unit_whatever_the_input_order(order: int) -> None:
    units = two_squares() if order == 0 else list(reversed(two_squares()))
    index = RegionIndex(units)
    # On the shared edge, on a shared corner, and a batch of border points: always the lower code.
    lat = np.linspace(44.0, 44.1, 101)
    result = index.assign_points(np.full(lat.size, 125.5), lat)
    assert set(result.unit.tolist()) == {0}
    assert index.units[0].code == "001"
    assert index.assign_point(125.5, 44.05).code == "001"


def test_nearest_within_tolerance_is_geodesic_and_flagged() -> None:
    index = RegionIndex(two_squares(), tolerance_m=500)
    lon, lat = offset_east(125.6, 44.05, 300.0)
    a = index.assign_point(lon, lat)
    assert a.status is AssignStatus.NEAREST
    assert a.code == "001"
    assert a.distance_m == pytest.approx(300.0, abs=0.5)
    lon, lat = offset_east(125.6, 44.05, 700.0)
    b = index.assign_point(lon, lat)
    assert b.status is AssignStatus.OUTSIDE
    assert b.code is None
    assert b.distance_m == pytest.approx(700.0, abs=0.5)


def test_tolerance_boundary_is_respected_in_both_directions() -> None:
    index = RegionIndex(two_squares(), tolerance_m=1000)
    inside = index.assign_point(*offset_east(125.6, 44.05, 990.0))
    outside = index.assign_point(*offset_east(125.6, 44.05, 1010.0))
    assert inside.status is AssignStatus.NEAREST
    assert outside.status is AssignStatus.OUTSIDE


def test_coverage_reaches_as_far_as_nearest_assignment_in_every_direction() -> None:
    """Screening holds hotspots outside the coverage; a point the assignment places (nearest, within the
    tolerance) must be inside it. Widened in degrees of latitude, the coverage fell short east and west (357 m of
    500 at 44° N)."""
    index = RegionIndex(two_squares(), tolerance_m=500)
    coverage = shapely.union_all(index.coverage())
    for metres in (400.0, 480.0):
        east = offset_east(125.6, 44.05, metres)
        assert index.assign_point(*east).status is AssignStatus.NEAREST
        assert coverage.contains(shapely.Point(east))
        north = GEOD.fwd(125.5, 44.1, 0.0, metres)[:2]
        assert index.assign_point(*north).status is AssignStatus.NEAREST
        assert coverage.contains(shapely.Point(north))
    assert not coverage.contains(shapely.Point(offset_east(125.6, 44.05, 560.0)))  # beyond it: outside both


def test_holes_and_multipolygons() -> None:
    ring = shapely.Polygon(
        [(125.0, 44.0), (125.2, 44.0), (125.2, 44.2), (125.0, 44.2)],
        holes=[[(125.05, 44.05), (125.15, 44.05), (125.15, 44.15), (125.05, 44.15)]],
    )
    enclave = shapely.box(125.08, 44.08, 125.12, 44.12)
    exclave = shapely.MultiPolygon([shapely.box(125.3, 44.0, 125.35, 44.05), shapely.box(125.4, 44.0, 125.45, 44.05)])
    index = RegionIndex([unit("010", ring), unit("020", enclave), unit("030", exclave)], tolerance_m=0)
    assert index.assign_point(125.01, 44.01).code == "010"
    assert index.assign_point(125.10, 44.10).code == "020"  # the enclave inside the hole
    assert index.assign_point(125.06, 44.06).status is AssignStatus.OUTSIDE  # in the hole, not the enclave
    assert index.assign_point(125.42, 44.02).code == "030"
    assert index.assign_point(125.37, 44.02).status is AssignStatus.OUTSIDE  # between the exclave's parts


def test_vectorised_result_equals_brute_force_on_random_points() -> None:
    rng = np.random.default_rng(7)
    # Irregular polygons (many vertices) so that dicing and edge cells are exercised.
    units = []
    for i, (cx, cy) in enumerate([(125.3, 44.3), (125.45, 44.3), (125.38, 44.42)]):
        angles = np.sort(rng.uniform(0, 2 * np.pi, 200))
        radii = rng.uniform(0.06, 0.09, 200)
        poly = shapely.make_valid(
            shapely.Polygon(np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)]))
        )
        if isinstance(poly, shapely.GeometryCollection):
            poly = max(poly.geoms, key=lambda g: g.area)
        units.append(unit(f"{i:03d}", poly))
    index = RegionIndex(units, tolerance_m=0, depth=6)
    x = rng.uniform(125.15, 125.6, 50_000)
    y = rng.uniform(44.15, 44.55, 50_000)
    result = index.assign_points(x, y)
    geoms = np.array([u.geometry for u in index.units])
    expected = np.full(x.size, -1)
    points = shapely.points(x, y)
    for k in reversed(range(len(geoms))):  # lowest code wins where units overlap
        expected[shapely.intersects(geoms[k], points)] = k
    assert np.array_equal(result.unit, expected)
    assert set(np.unique(result.status).tolist()) == {0, 2}


def test_near_points_equal_brute_force_geodesic_nearest() -> None:
    units = two_squares()
    index = RegionIndex(units, tolerance_m=800)
    rng = np.random.default_rng(3)
    x = rng.uniform(125.38, 125.62, 3000)
    y = rng.uniform(43.98, 44.12, 3000)
    result = index.assign_points(x, y, measure_outside=True)
    for i in np.flatnonzero(result.status == 1)[:200]:
        p = shapely.Point(x[i], y[i])
        # Brute force: geodesic distance to the closest point of each square, densely sampled.
        best = []
        for u in index.units:
            boundary = shapely.segmentize(u.geometry.exterior, 0.0002)
            coords = shapely.get_coordinates(boundary)
            _, _, d = GEOD.inv(np.full(len(coords), p.x), np.full(len(coords), p.y), coords[:, 0], coords[:, 1])
            best.append(d.min())
        assert result.distance_m[i] == pytest.approx(min(best), abs=3.0)
        assert index.units[result.unit[i]].code == index.units[int(np.argmin(best))].code


def test_grid_aligned_borders_and_far_points() -> None:
    # A unit whose edges fall exactly on the lookup grid still honours the tolerance just outside them.
    index = RegionIndex([unit("001", shapely.box(125.0, 44.0, 125.1, 44.1))], tolerance_m=500, depth=4)
    a = index.assign_point(*offset_east(125.1, 44.05, 100.0))
    assert a.status is AssignStatus.NEAREST
    assert index.assign_point(10.0, 10.0).status is AssignStatus.OUTSIDE


def test_footprint_crossing_a_border_gets_area_shares_largest_first() -> None:
    index = RegionIndex(two_squares())
    footprint = shapely.box(125.49, 44.04, 125.52, 44.06)  # 1/3 west, 2/3 east
    f = index.assign_footprint(footprint)
    assert f.status is AssignStatus.INSIDE
    assert [s.code for s in f.shares] == ["001", "002"]
    assert f.shares[0].share == pytest.approx(2 / 3, rel=1e-3)
    assert f.shares[1].share == pytest.approx(1 / 3, rel=1e-3)
    assert f.outside_share == pytest.approx(0.0, abs=1e-9)
    assert f.primary is not None
    assert f.primary.code == "001"


def test_footprint_partly_outside_and_entirely_outside() -> None:
    index = RegionIndex(two_squares(), tolerance_m=500)
    half_out = index.assign_footprint(shapely.box(125.59, 44.04, 125.61, 44.06))
    assert [s.code for s in half_out.shares] == ["001"]
    assert half_out.outside_share == pytest.approx(0.5, rel=1e-2)
    lon, _ = offset_east(125.6, 44.05, 200.0)
    near = index.assign_footprint(shapely.box(lon, 44.049, lon + 0.001, 44.051))
    assert near.status is AssignStatus.NEAREST
    assert near.distance_m == pytest.approx(200.0, abs=1.0)
    far = index.assign_footprint(shapely.box(126.0, 44.0, 126.01, 44.01))
    assert far.status is AssignStatus.OUTSIDE
    assert far.shares == ()


def test_invalid_or_duplicate_units_are_refused() -> None:
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    with pytest.raises(ValueError, match="valid"):
        RegionIndex([unit("001", bowtie)])
    with pytest.raises(ValueError, match="unique"):
        RegionIndex([unit("001", shapely.box(0, 0, 1, 1)), unit("001", shapely.box(2, 2, 3, 3))])


def test_degree_margins_reach_the_metres_in_every_direction_up_to_the_latitude() -> None:
    from pyproj import Geod

    from service.regions.index import degree_margins

    geod = Geod(ellps="WGS84")
    for latitude in (0.0, 44.0, 53.5):
        lat_margin, lon_margin = degree_margins(2_800.0, latitude)
        for azimuth in (0.0, 90.0, 180.0, 270.0):
            lon, lat, _ = geod.fwd(0.0, latitude, azimuth, 2_800.0)
            assert abs(lat - latitude) <= lat_margin
            assert abs(lon) <= lon_margin
        # Not wildly larger than needed: within 1 % of the east-west reach at that latitude.
        east, _, _ = geod.fwd(0.0, latitude, 90.0, 2_800.0)
        assert lon_margin <= 1.01 * east
