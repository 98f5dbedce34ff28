"""Benchmark: assign 1,000,000 random points to Changchun's 11 counties.

strawfire's RegionIndex (grid lookup + STRtree of diced pieces, with the 500 m nearest-unit rule) against
geopandas ``sjoin`` (STRtree of the county polygons, containment only) on the same points, in the same run.
Both start from WGS-84 coordinate arrays; geopandas' time includes building its GeoSeries of points, since
that is what a user of it has to do. Prints points/s for each and the ratio.

    .venv/bin/python bench/bench_assign.py [--points 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from service.regions.crs import parse_crs  # noqa: E402
from service.regions.index import RegionIndex  # noqa: E402
from service.regions.loader import read_units  # noqa: E402
from service.regions.types import RegionLevel  # noqa: E402

BOUNDARY = REPO.parent / "shared" / "data" / "boundaries" / "220100_full.json"


def best_of(repeat: int, func) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not BOUNDARY.exists():
        print(f"skipped: {BOUNDARY} is missing (../shared/data is not checked out)")
        return
    import geopandas as gpd

    units, _ = read_units(BOUNDARY, level=RegionLevel.COUNTY, crs=parse_crs("gcj02"))
    start = time.perf_counter()
    index = RegionIndex(units)
    build = time.perf_counter() - start
    minx, miny, maxx, maxy = (
        min(u.geometry.bounds[0] for u in units),
        min(u.geometry.bounds[1] for u in units),
        max(u.geometry.bounds[2] for u in units),
        max(u.geometry.bounds[3] for u in units),
    )
    rng = np.random.default_rng(2025)
    lon = rng.uniform(minx, maxx, args.points)
    lat = rng.uniform(miny, maxy, args.points)

    counties = gpd.GeoDataFrame(
        {"code": [u.code for u in units]}, geometry=[u.geometry for u in units], crs="EPSG:4326"
    )

    def geopandas_sjoin() -> gpd.GeoDataFrame:
        points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
        return gpd.sjoin(points, counties, how="left", predicate="intersects")

    ours = best_of(args.repeat, lambda: index.assign_points(lon, lat))
    theirs = best_of(args.repeat, geopandas_sjoin)

    result = index.assign_points(lon, lat)
    joined = geopandas_sjoin()
    joined = joined[~joined.index.duplicated(keep="first")]  # border points match two counties in sjoin
    inside = result.status == 0
    ours_codes = np.where(inside, np.array([u.code for u in index.units])[result.unit], "")
    agree = np.mean(ours_codes == joined["code"].fillna("").astype(str).to_numpy())

    print(f"points: {args.points:,} over Changchun's {len(units)} counties (best of {args.repeat})")
    print(f"strawfire RegionIndex build: {build:.2f} s")
    print(f"strawfire assign_points : {args.points / ours:>12,.0f} points/s  ({ours:.3f} s, incl. 500 m nearest rule)")
    print(f"geopandas sjoin         : {args.points / theirs:>12,.0f} points/s  ({theirs:.3f} s, containment only)")
    print(f"ratio strawfire/geopandas: {theirs / ours:.1f}x   (same county for {agree:.4%} of points)")
    print(f"statuses inside/nearest/outside: {np.bincount(result.status, minlength=3).tolist()}")


if __name__ == "__main__":
    main()
