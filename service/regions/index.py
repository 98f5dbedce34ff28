"""Assign points and footprints to administrative units: exact, deterministic and vectorised.

Design
------
Units are held in WGS-84. Two structures answer "which unit contains this point?":

1. **A lookup grid** of ``2**depth`` × ``2**depth`` cells over the units' bounding box (expanded by the
   tolerance). Building it dices every unit along the grid's quadtree with ``shapely.clip_by_rect``: a quadtree
   cell the unit covers completely is painted with the unit's number; a cell the boundary crosses is marked
   *mixed* and its clipped piece kept. Cells within the tolerance of a mixed cell are marked *near*; the rest
   are *far* (no unit within the tolerance). Most points are answered by one array lookup; the grid is exact
   because a cell is painted only when its clipped piece *is* the cell.
2. **A shapely 2 STRtree of the small diced pieces** (at most ``max_piece_vertices`` vertices each), queried
   vectorised for the points that fall in mixed cells or exactly on a cell edge. Small pieces keep each exact
   point-in-polygon test cheap; a tree of the original county polygons (what ``geopandas.sjoin`` does) tests
   every point against thousands of vertices.

Rules
-----
* **Borders**: a point on a shared border, or in an overlap of two units (real boundary data has slivers),
  goes to the matching unit whose code sorts first. The rule depends only on the data, never on input order.
* **Near misses**: a point outside every unit but within ``tolerance_m`` (geodesic, pyproj ``Geod``) of one
  goes to the nearest unit with status ``nearest``; beyond that it is ``outside``. Nearest candidates are
  ranked in a Lambert azimuthal equal-area projection centred on the units (metric to <0.1 % over a
  prefecture) and the winner's distance is then measured geodesically.
* **Footprints** (a satellite pixel, a camera wedge): every unit the footprint overlaps, with its share of the
  footprint's area computed in the same equal-area projection, largest first. The status follows the footprint's
  *centre* (the observation's point), as a point's does: ``inside`` when the centre lies in a unit, ``nearest``
  when it lies outside every unit but the footprint overlaps one or lies within the tolerance of one (a pixel at
  the edge of the imported area: its shares and the share outside all units are kept), else ``outside``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Geod, Transformer

from service.regions.types import (
    AssignStatus,
    FootprintAssignment,
    PointAssignment,
    RegionUnit,
    UnitShare,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

_MIXED = -1  # the cell's boundary needs an exact test
_NEAR = -2  # outside every unit but possibly within the tolerance of one
_FAR = -3  # no unit within the tolerance
_GEOD = Geod(ellps="WGS84")
# The shortest degree of latitude (at the equator), in metres: measured over a small span, as the degree
# lengthens away from the equator.
_MIN_M_PER_DEG_LAT = float(_GEOD.inv(0.0, 0.0, 0.0, 0.01)[2]) * 100.0


def degree_margins(metres: float, max_abs_latitude: float) -> tuple[float, float]:
    """``(latitude, longitude)`` degrees that span at least ``metres`` anywhere up to ``max_abs_latitude``: a box
    widened by them never misses what lies within ``metres`` of it (a degree of longitude is measured with pyproj
    at that latitude, capped at 89°, where it is shortest)."""
    latitude = min(89.0, abs(max_abs_latitude))
    widen = 1.0 + 1e-6  # a millimetre per kilometre: rounding never leaves the margin a hair short
    return (
        widen * metres / _MIN_M_PER_DEG_LAT,
        widen * metres / (float(_GEOD.inv(0.0, latitude, 0.01, latitude)[2]) * 100.0),
    )


STATUS_CODES = (AssignStatus.INSIDE, AssignStatus.NEAREST, AssignStatus.OUTSIDE)


def _lonlat_ok(lon: FloatArray, lat: FloatArray) -> NDArray[np.bool_]:
    """Whether each point is a WGS-84 longitude/latitude (NaN and infinities are not; comparisons say False)."""
    return (np.abs(lon) <= 180.0) & (np.abs(lat) <= 90.0)


class PointAssignments:
    """Vectorised result of :meth:`RegionIndex.assign_points`.

    ``unit`` holds the index into :attr:`RegionIndex.units` (-1 when outside), ``status`` an index into
    :data:`STATUS_CODES` and ``distance_m`` geodesic metres (0 inside, NaN when not measured).
    """

    __slots__ = ("distance_m", "status", "unit")

    def __init__(self, unit: IntArray, status: NDArray[np.int8], distance_m: FloatArray) -> None:
        self.unit = unit
        self.status = status
        self.distance_m = distance_m

    def __len__(self) -> int:
        return int(self.unit.size)


class RegionIndex:
    """An immutable, thread-safe index of units of one level, answering point and footprint queries."""

    def __init__(
        self,
        units: Sequence[RegionUnit],
        *,
        tolerance_m: float = 500.0,
        depth: int = 9,
        max_piece_vertices: int = 32,
    ) -> None:
        if not units:
            raise ValueError("a region index needs at least one unit")
        if not (np.isfinite(tolerance_m) and tolerance_m >= 0):
            raise ValueError(f"tolerance_m must be a finite number >= 0, not {tolerance_m}")
        # Deterministic order: by code. Border ties go to the lower index, i.e. the lower code.
        self.units: tuple[RegionUnit, ...] = tuple(sorted(units, key=lambda u: u.code))
        codes = [u.code for u in self.units]
        if len(set(codes)) != len(codes):
            raise ValueError("unit codes must be unique within an index")
        self.tolerance_m = float(tolerance_m)
        self._by_code = {u.code: u for u in self.units}
        geometries = np.array([u.geometry for u in self.units], dtype=object)
        if not shapely.is_valid(geometries).all():
            # Dicing and area shares are only exact on valid polygons; the loader repairs and reports, this
            # guards indexes built from other sources.
            raise ValueError("unit geometries must be valid polygons (repair them with shapely.make_valid)")
        minx, miny, maxx, maxy = shapely.total_bounds(geometries)
        max_abs_lat = min(89.0, max(abs(miny), abs(maxy)) + 1.0)
        self._tol_deg_y, self._tol_deg_x = degree_margins(self.tolerance_m, max_abs_lat)
        margin_x = 2 * self._tol_deg_x + 1e-6
        margin_y = 2 * self._tol_deg_y + 1e-6
        self._bounds = (minx - margin_x, miny - margin_y, maxx + margin_x, maxy + margin_y)
        self._n = 2**depth
        self._cell_w = (self._bounds[2] - self._bounds[0]) / self._n
        self._cell_h = (self._bounds[3] - self._bounds[1]) / self._n
        self._max_piece_vertices = max_piece_vertices

        grid = np.full((self._n, self._n), _FAR, dtype=np.int32)
        pieces: list[shapely.Geometry] = []
        owners: list[int] = []
        for unit_no, unit in enumerate(self.units):
            self._dice(unit_no, unit.geometry, self._bounds, 0, depth, grid, pieces, owners)
        self._mark_near(grid)
        self._grid = grid
        self._pieces = np.array(pieces, dtype=object)
        self._piece_unit = np.array(owners, dtype=np.int64)
        shapely.prepare(self._pieces)
        self._piece_tree = shapely.STRtree(self._pieces)

        # Metric copies (Lambert azimuthal equal-area centred on the units) for distances and area shares.
        lon0 = (minx + maxx) / 2
        lat0 = (miny + maxy) / 2
        self._to_metric = Transformer.from_crs(
            "EPSG:4326", f"+proj=laea +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m", always_xy=True
        )
        self._from_metric = Transformer.from_crs(
            f"+proj=laea +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m", "EPSG:4326", always_xy=True
        )
        self._pieces_m = np.array([self._project(p) for p in pieces], dtype=object)
        self._piece_tree_m = shapely.STRtree(self._pieces_m)
        self._units_m = np.array([self._project(u.geometry) for u in self.units], dtype=object)
        shapely.prepare(self._units_m)
        self._unit_tree_m = shapely.STRtree(self._units_m)
        self._coverage: list[shapely.Polygon] | None = None

    def coverage(self) -> list[shapely.Polygon | shapely.MultiPolygon]:
        """The area the units cover, widened by the tolerance in metres (buffered in the index's local equal-area
        projection, then back to lon/lat): the reach of :meth:`assign_point`'s ``nearest``. Widened in degrees of
        latitude, it fell short east and west by the cosine of the latitude (357 m of 500 at 44° N), and hotspots
        the assignment would place were screened out as outside coverage.

        Computed once per index (the index is immutable and cached per import), not once per ingest.
        """
        if self._coverage is None:
            merged_m = shapely.union_all([shapely.buffer(u, self.tolerance_m) for u in self._units_m])

            def to_lonlat(coords: FloatArray) -> FloatArray:
                lon, lat = self._from_metric.transform(coords[:, 0], coords[:, 1])
                return np.column_stack([lon, lat])

            merged = shapely.transform(merged_m, to_lonlat)
            self._coverage = [g for g in shapely.get_parts(merged) if isinstance(g, shapely.Polygon)]
        return list(self._coverage)

    # -- building ---------------------------------------------------------------------------------------

    def _project(self, geometry: shapely.Geometry) -> shapely.Geometry:
        def convert(coords: FloatArray) -> FloatArray:
            x, y = self._to_metric.transform(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(geometry, convert)

    def _cell_range(self, rect: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        x0 = round((rect[0] - self._bounds[0]) / self._cell_w)
        x1 = round((rect[2] - self._bounds[0]) / self._cell_w)
        y0 = round((rect[1] - self._bounds[1]) / self._cell_h)
        y1 = round((rect[3] - self._bounds[1]) / self._cell_h)
        return x0, x1, y0, y1

    def _dice(
        self,
        unit_no: int,
        geometry: shapely.Geometry,
        rect: tuple[float, float, float, float],
        level: int,
        depth: int,
        grid: NDArray[np.int32],
        pieces: list[shapely.Geometry],
        owners: list[int],
    ) -> None:
        clipped = shapely.clip_by_rect(geometry, *rect)
        if clipped.is_empty or shapely.area(clipped) == 0.0:
            return
        # clip_by_rect returns exactly the rectangle (5 vertices, no hole) iff the unit covers all of it.
        rect_area = (rect[2] - rect[0]) * (rect[3] - rect[1])
        covers_cell = (
            shapely.get_num_coordinates(clipped) == 5
            and shapely.get_num_geometries(clipped) == 1
            and abs(shapely.area(clipped) - rect_area) <= 1e-9 * rect_area
        )
        if covers_cell and level <= depth:
            x0, x1, y0, y1 = self._cell_range(rect)
            block = grid[y0:y1, x0:x1]
            # An overlap of two units (a sliver in the data) is left to the exact test: mark it mixed.
            block[block >= 0] = _MIXED
            block[block == _FAR] = unit_no
            # The cell is also a piece: for points on its edge, in overlaps and for nearest-unit distances.
            pieces.append(shapely.box(*rect))
            owners.append(unit_no)
            return
        if level >= depth:
            if level == depth:
                x0, x1, y0, y1 = self._cell_range(rect)
                grid[y0:y1, x0:x1] = _MIXED
            if shapely.get_num_coordinates(clipped) <= self._max_piece_vertices or level >= depth + 6:
                pieces.append(clipped)
                owners.append(unit_no)
                return
        x_mid = (rect[0] + rect[2]) / 2
        y_mid = (rect[1] + rect[3]) / 2
        for sub in (
            (rect[0], rect[1], x_mid, y_mid),
            (x_mid, rect[1], rect[2], y_mid),
            (rect[0], y_mid, x_mid, rect[3]),
            (x_mid, y_mid, rect[2], rect[3]),
        ):
            self._dice(unit_no, clipped, sub, level + 1, depth, grid, pieces, owners)

    def _mark_near(self, grid: NDArray[np.int32]) -> None:
        """Mark outside cells within the tolerance of any unit as *near* (a conservative dilation).

        Dilating from every unit cell, not only mixed ones, covers borders that run exactly along a grid line.
        """
        near = grid != _FAR
        reach_x = int(np.ceil(self._tol_deg_x / self._cell_w)) + 1
        reach_y = int(np.ceil(self._tol_deg_y / self._cell_h)) + 1
        for _ in range(reach_x):
            near[:, 1:] |= near[:, :-1].copy()
            near[:, :-1] |= near[:, 1:].copy()
        for _ in range(reach_y):
            near[1:, :] |= near[:-1, :].copy()
            near[:-1, :] |= near[1:, :].copy()
        grid[near & (grid == _FAR)] = _NEAR

    # -- points -----------------------------------------------------------------------------------------

    def assign_points(self, lon: FloatArray, lat: FloatArray, *, measure_outside: bool = False) -> PointAssignments:
        """Assign WGS-84 points (arrays of equal length) to units.

        With ``measure_outside`` the geodesic distance to the nearest unit is also measured for points
        beyond the tolerance; otherwise it is NaN for them.
        """
        lon = np.ascontiguousarray(lon, dtype=np.float64)
        lat = np.ascontiguousarray(lat, dtype=np.float64)
        if lon.shape != lat.shape or lon.ndim != 1:
            raise ValueError("lon and lat must be 1-D arrays of the same length")
        bad = np.flatnonzero(~_lonlat_ok(lon, lat))
        if bad.size:
            # NaN and inf fell outside the grid and were answered "outside": refused instead, as the CSV reader and
            # the API refuse them.
            i = int(bad[0])
            raise ValueError(f"row {i} ({lon[i]}, {lat[i]}) is not a WGS-84 longitude/latitude ({bad.size} such rows)")
        n = lon.size
        unit = np.full(n, -1, dtype=np.int64)
        status = np.full(n, 2, dtype=np.int8)
        distance = np.full(n, np.nan)

        fx = (lon - self._bounds[0]) / self._cell_w
        fy = (lat - self._bounds[1]) / self._cell_h
        in_grid = (fx >= 0) & (fx < self._n) & (fy >= 0) & (fy < self._n)
        ix = np.where(in_grid, fx, 0).astype(np.int64)
        iy = np.where(in_grid, fy, 0).astype(np.int64)
        state = np.where(in_grid, self._grid[iy, ix], _FAR)
        # A point on (or within rounding of) a cell edge may lie on the edge of a painted cell that is also a
        # unit border: send it to the exact test so the border rule is the same everywhere.
        on_edge = (np.abs(fx - np.rint(fx)) < 1e-7) | (np.abs(fy - np.rint(fy)) < 1e-7)
        state = np.where(on_edge & in_grid, _MIXED, state)

        painted = state >= 0
        unit[painted] = state[painted]
        status[painted] = 0
        distance[painted] = 0.0

        exact = np.flatnonzero(state == _MIXED)
        if exact.size:
            found = self._exact_units(lon[exact], lat[exact])
            hit = found >= 0
            unit[exact[hit]] = found[hit]
            status[exact[hit]] = 0
            distance[exact[hit]] = 0.0

        candidates = np.flatnonzero((state == _NEAR) | ((state == _MIXED) & (unit < 0)))
        if measure_outside:
            candidates = np.flatnonzero(unit < 0)
        if candidates.size:
            near_unit, near_dist = self._nearest(lon[candidates], lat[candidates], bounded=not measure_outside)
            distance[candidates] = near_dist
            within = (near_unit >= 0) & (near_dist <= self.tolerance_m)
            unit[candidates[within]] = near_unit[within]
            status[candidates[within]] = 1
        return PointAssignments(unit, status, distance)

    def _exact_units(self, lon: FloatArray, lat: FloatArray) -> IntArray:
        points = shapely.points(lon, lat)
        point_idx, piece_idx = self._piece_tree.query(points, predicate="intersects")
        result = np.full(lon.size, -1, dtype=np.int64)
        if point_idx.size == 0:
            return result
        owner = self._piece_unit[piece_idx]
        # Lowest unit number (= lowest code) first for each point, then keep the first row per point.
        order = np.lexsort((owner, point_idx))
        first = np.unique(point_idx[order], return_index=True)[1]
        result[point_idx[order][first]] = owner[order][first]
        return result

    def _nearest(self, lon: FloatArray, lat: FloatArray, *, bounded: bool) -> tuple[IntArray, FloatArray]:
        """Nearest unit and geodesic distance to it (unit -1 and NaN where none lies within reach)."""
        x, y = self._to_metric.transform(lon, lat)
        points_m = shapely.points(x, y)
        if bounded:
            # 1 % slack: the projection's scale error is far below that over a prefecture.
            point_idx, piece_idx = self._piece_tree_m.query(
                points_m, predicate="dwithin", distance=self.tolerance_m * 1.01 + 1.0
            )
        else:
            point_idx, piece_idx = self._piece_tree_m.query_nearest(points_m, all_matches=True)
        unit = np.full(lon.size, -1, dtype=np.int64)
        dist = np.full(lon.size, np.nan)
        if point_idx.size == 0:
            return unit, dist
        planar = shapely.distance(points_m[point_idx], self._pieces_m[piece_idx])
        owner = self._piece_unit[piece_idx]
        order = np.lexsort((owner, planar, point_idx))
        first = np.unique(point_idx[order], return_index=True)[1]
        best_point = point_idx[order][first]
        best_piece = piece_idx[order][first]
        lines = shapely.shortest_line(points_m[best_point], self._pieces_m[best_piece])
        ends = shapely.get_coordinates(shapely.get_point(lines, 1))
        end_lon, end_lat = self._from_metric.transform(ends[:, 0], ends[:, 1])
        _, _, geodesic = _GEOD.inv(lon[best_point], lat[best_point], end_lon, end_lat)
        unit[best_point] = owner[order][first]
        dist[best_point] = np.asarray(geodesic, dtype=np.float64)
        return unit, dist

    def unit(self, code: str) -> RegionUnit | None:
        """The unit with this code, None when this level has none."""
        return self._by_code.get(code)

    def assign_point(self, lon: float, lat: float) -> PointAssignment:
        """Assign a single WGS-84 point (convenience wrapper of :meth:`assign_points`)."""
        result = self.assign_points(np.array([lon]), np.array([lat]), measure_outside=True)
        return self.describe(result, 0)

    def describe(self, result: PointAssignments, i: int) -> PointAssignment:
        """The typed record for row ``i`` of a vectorised result."""
        unit_no = int(result.unit[i])
        dist = float(result.distance_m[i])
        unit = self.units[unit_no] if unit_no >= 0 else None
        return PointAssignment(
            code=unit.code if unit else None,
            name=unit.name if unit else None,
            status=STATUS_CODES[int(result.status[i])],
            distance_m=None if np.isnan(dist) else dist,
        )

    # -- footprints -------------------------------------------------------------------------------------

    def assign_footprint(
        self, footprint: shapely.Geometry, centre: tuple[float, float] | None = None
    ) -> FootprintAssignment:
        """Every unit a WGS-84 footprint overlaps, with area shares (equal-area projection), largest first.

        ``centre`` (lon, lat): where the observation places the fire (a pixel's centre, a camera's ground point);
        default the footprint's centroid. The status is decided by it, as a point's is:

        * ``inside``: the centre lies in a unit (or on its border); ``distance_m`` 0.
        * ``nearest``: the centre lies outside every unit, but the footprint overlaps one (its shares, largest
          first, ``distance_m`` the centre's geodesic distance to the nearest unit) or, overlapping none, lies within
          the tolerance of one (that unit with share 0, ``distance_m`` the footprint's distance to it).
        * ``outside``: neither.

        Why the centre: any overlap had made a footprint ``inside``, so a 1.15 km MODIS pixel centred 558 m outside
        Changchun, 97.6 % of it outside, was an incident "inside" 九台区 at a certainty of 0.024. Such a pixel is at
        the edge: the fire may be on either side, so it stays the overlapped unit's to check (the caller alerts it,
        see :func:`service.incidents.service.assign_incident`), but it is not called inside, and its
        ``outside_share`` says how much of it lies beyond every unit.

        A footprint without area (a point, a line) is assigned like its representative point. An empty footprint
        or one with a vertex (or a centre) that is not a WGS-84 longitude/latitude is a ValueError.
        """
        coords = shapely.get_coordinates(footprint)
        if coords.size == 0:
            raise ValueError("the footprint is empty")
        if not _lonlat_ok(coords[:, 0], coords[:, 1]).all():
            raise ValueError("the footprint has a vertex outside WGS-84 longitude/latitude (or NaN)")
        if centre is not None and not _lonlat_ok(np.array([centre[0]]), np.array([centre[1]])).all():
            raise ValueError(f"the footprint's centre {centre} is not a WGS-84 longitude/latitude")
        footprint_m = self._project(footprint)
        total = shapely.area(footprint_m)
        if total <= 0.0:
            point = shapely.get_coordinates(footprint.representative_point())[0]
            single = self.assign_point(float(point[0]), float(point[1]))
            single_share = (UnitShare(single.code, single.name or "", 1.0, 0.0),) if single.code else ()
            return FootprintAssignment(single.status, single_share, 0.0 if single_share else 1.0, single.distance_m)
        candidates = self._unit_tree_m.query(footprint_m, predicate="intersects")
        shares: list[UnitShare] = []
        for unit_no in sorted(int(c) for c in candidates):
            area = shapely.area(shapely.intersection(footprint_m, self._units_m[unit_no]))
            if area > 0:
                unit = self.units[unit_no]
                shares.append(UnitShare(unit.code, unit.name, area / total, area))
        # Overlapping units (slivers) could push the sum above 1; the outside part is what no unit covers.
        covered = sum(s.area_m2 for s in shares)
        if shares:
            union_area = shapely.area(
                shapely.intersection(footprint_m, shapely.union_all([self._units_m[int(c)] for c in candidates]))
            )
            covered = min(covered, union_area)
        outside = max(0.0, 1.0 - covered / total)
        shares.sort(key=lambda s: (-s.area_m2, s.code))
        if shares:
            if centre is None:
                middle = shapely.get_coordinates(shapely.centroid(footprint_m))
                lon_c, lat_c = self._from_metric.transform(middle[:, 0], middle[:, 1])
                centre = (float(lon_c[0]), float(lat_c[0]))
            at_centre = self.assign_point(centre[0], centre[1])
            if at_centre.status is AssignStatus.INSIDE:
                return FootprintAssignment(AssignStatus.INSIDE, tuple(shares), outside, 0.0)
            return FootprintAssignment(AssignStatus.NEAREST, tuple(shares), outside, at_centre.distance_m)
        # Entirely outside: fall back to the nearest unit within the tolerance, measured from the footprint.
        nearest = self._unit_tree_m.query_nearest(footprint_m, max_distance=self.tolerance_m * 1.01 + 1.0)
        if nearest.size:
            unit_no = int(min(nearest))
            lines = shapely.shortest_line(footprint_m, self._units_m[unit_no])
            coords = shapely.get_coordinates(lines)
            lon, lat = self._from_metric.transform(coords[:, 0], coords[:, 1])
            _, _, dist = _GEOD.inv(lon[0], lat[0], lon[1], lat[1])
            if dist <= self.tolerance_m:
                unit = self.units[unit_no]
                return FootprintAssignment(
                    AssignStatus.NEAREST, (UnitShare(unit.code, unit.name, 0.0, 0.0),), 1.0, float(dist)
                )
        return FootprintAssignment(AssignStatus.OUTSIDE, (), 1.0, None)
