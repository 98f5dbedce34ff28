"""Benchmark: DEM ground fixes (video.ground.ground_fix, 9 marched rays each) with and without one outlier cell.

A 18 × 18 km rolling-plain DEM at 30 m (tests/video/terrain.py: fractal relief of 60 m, whole metres), a tower
camera 40 m above its centre, rays at random bearings 0.4–3° below the horizon (landing 0.7–7 km out, or beyond the
8 km range), σ 0.2°/0.1°. The same fixes are timed on the clean DEM and on copies with one 3,000 m or 800 m cell
6 km from the camera, marched with the per-block bounds (``DemTerrain``) and with one global maximum slope (the
marcher before them, ``GlobalBoundTerrain``: fewer fixes, it is slow). Prints ms per fix and how many fixes found
the same ground (status, point and near/far ranges within the 1 cm bisection tolerance; a perturbed ray that only
grazes the terrain by under the marcher's 5 cm tolerance may land on either side of the graze).

    .venv/bin/python bench/bench_ground.py [--fixes 40] [--reference-fixes 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.video.terrain import LAT, LON, GlobalBoundTerrain, rolling_plain_dem, rolling_plain_heights  # noqa: E402
from video.camera import Ray  # noqa: E402
from video.ground import GroundFix, Terrain, ground_fix  # noqa: E402


def timed_fixes(terrain: Terrain, camera_m: float, rays: list[Ray]) -> tuple[float, list[GroundFix]]:
    start = time.perf_counter()
    fixes = [
        ground_fix(LAT, LON, camera_m, ray, terrain, sigma_bearing_deg=0.2, sigma_elevation_deg=0.1) for ray in rays
    ]
    return (time.perf_counter() - start) / len(rays), fixes


def same_ground(ours: GroundFix, reference: GroundFix) -> bool:
    """The same status, hit and near/far ranges to the marcher's 1 cm bisection tolerance."""
    ranges = [(ours.near_range_m, reference.near_range_m), (ours.far_range_m, reference.far_range_m)]
    if ours.hit is not None and reference.hit is not None:
        ranges.append((ours.hit.horizontal_range_m, reference.hit.horizontal_range_m))
    return ours.status is reference.status and all(abs(a - b) <= 0.011 for a, b in ranges)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fixes", type=int, default=40)
    parser.add_argument("--reference-fixes", type=int, default=4)
    args = parser.parse_args()
    heights = rolling_plain_heights(600, 600, seed=7)
    rng = np.random.default_rng(2025)
    rays = [Ray(rng.uniform(0.0, 360.0), -rng.uniform(0.4, 3.0)) for _ in range(args.fixes)]
    camera_m = float(rolling_plain_dem(heights).elevation(LON, LAT)) + 40.0
    print(f"{'DEM':<22} {'max slope':>9} {'local ms/fix':>12} {'global ms/fix':>13} {'same ground':>11}")
    for label, spike_m in (("clean", None), ("one 800 m cell", 800.0), ("one 3,000 m cell", 3000.0)):
        grid = heights.copy()
        if spike_m is not None:
            grid[100, 440] = spike_m
        dem = rolling_plain_dem(grid)
        local_s, local_fixes = timed_fixes(dem, camera_m, rays)
        global_s, global_fixes = timed_fixes(GlobalBoundTerrain(dem), camera_m, rays[: args.reference_fixes])
        agree = sum(same_ground(a, b) for a, b in zip(local_fixes, global_fixes, strict=False))
        print(
            f"{label:<22} {dem.max_slope:>9.1f} {local_s * 1e3:>12.1f} {global_s * 1e3:>13.1f}"
            f" {agree:>5}/{len(global_fixes)}"
        )


if __name__ == "__main__":
    main()
