"""Clustering defects found in an audit, each reproduced here first: Himawari order, timeline-less scans, big fires."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import combinations
from typing import Any

import numpy as np
from pyproj import Geod

from satellite.clustering import ClusteringConfig, cluster_fire_points, link_components
from satellite.himawari import HimawariHotspot, HimawariSatellite, read_himawari_csv
from tests.satellite.test_clustering import T0, distance_km, pixel

H09 = "H09_20250423_0420_L2WLF010_FLDK.06001_06001.csv"
TIMES = "# 2025  4 23  4 20 UTC  2025  4 23  4 52 UTC"
HEADER = "# ID,Year,Month,Day,Time(UTC),Lat,Lon,Area(km^2),Volcano,Level,Reliability,FRP(Wm^-2),QF,Hot(ID)"


def himawari_line(cells: int) -> list[HimawariHotspot]:
    """``cells`` adjacent 0.02° cells west to east, all the same FRP: one contiguous line, long enough to split."""
    rows = [f"{i + 1},2025,4,23,422,45.12,{124.80 + 0.02 * i:.2f},3.50,0,2,3,4.00,0,1" for i in range(cells)]
    return read_himawari_csv("\n".join([TIMES, HEADER, *rows]), source_name=H09).hotspots


def test_himawari_fire_points_do_not_depend_on_row_order() -> None:
    """FIRMS pixels of a pass were put in (time, key) order before splitting, Himawari cells of a 10-minute file
    were not: the split started at whichever end came first in the input, so the same cells gave different fire
    points (and fire-point keys) when read in another order."""
    cells = himawari_line(6)  # 6 cells ≈ 7.9 km: longer than 3 cells, so split
    forward = cluster_fire_points(cells)
    backward = cluster_fire_points(list(reversed(cells)))
    assert len(forward.fire_points) == 2
    assert [fp.key for fp in forward.fire_points] == [fp.key for fp in backward.fire_points]
    assert [sorted(h.grid_id for h in fp.members) for fp in forward.fire_points] == [
        sorted(h.grid_id for h in fp.members) for fp in backward.fire_points
    ]


def scan(minutes_after: int, east_cells: int = 0) -> HimawariHotspot:
    """One cell of a Himawari observation, built without a timeline (no file name, no header time line)."""
    return HimawariHotspot(
        satellite=HimawariSatellite.HIMAWARI_9,
        acq_utc=datetime(2025, 4, 23, 4, 22, tzinfo=UTC) + timedelta(minutes=minutes_after),
        latitude=45.12,
        longitude=round(124.80 + 0.02 * east_cells, 2),
        area_km2=3.5,
        volcano=0,
        level=2,  # type: ignore[arg-type]  # the constructor converts codes
        reliability=3,  # type: ignore[arg-type]
        frp_mw=4.0,
        qf=0,  # type: ignore[arg-type]
        grid_id=1,
        hot_centre_id=1,
    )


def test_himawari_observations_without_timeline_are_separate_passes() -> None:
    """Without ``timeline_utc`` Himawari cells fell back to the 10-minute pass gap; full-disk scans are exactly
    10 minutes apart, so every observation of a day chained into one pass and one burning field seen by six
    scans became a single fire point instead of an alarm and five repeats."""
    scans = [scan(10 * k) for k in range(6)]
    result = cluster_fire_points(scans)
    assert len(result.fire_points) == 6
    assert len(result.new) == 1
    assert len({fp.pass_id for fp in result.fire_points}) == 6
    assert [len(c) for c in link_components(scans)] == [1] * 6


def test_a_scan_with_a_timeline_and_one_without_group_alike() -> None:
    with_timeline = [h._replace(timeline_utc=datetime(2025, 4, 23, 4, 20, tzinfo=UTC)) for h in (scan(0),)]
    without = [scan(1, east_cells=1)]  # 04:23, same 04:20 observation, the adjacent cell
    assert len(cluster_fire_points([*with_timeline, *without]).fire_points) == 1


class CountingGeod(Geod):
    """WGS-84, counting the distances it is asked for: the work clustering does, without timing a test."""

    def __init__(self) -> None:
        super().__init__(ellps="WGS84")
        self.distances = 0

    def inv(self, lons1: Any, lats1: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.distances += int(np.size(lons1))
        return super().inv(lons1, lats1, *args, **kwargs)


def test_a_large_contiguous_fire_is_clustered_without_measuring_every_pair() -> None:
    """The longest span of every linked cluster was measured over *all* its pairs (k² distances and memory:
    3,600 pixels of one fire took ~11 s and ~0.9 GB), and each split step re-linked the whole remainder with a
    Python loop. A big fire front (a Himawari full disk in the Australian season, a VIIRS megafire) is one
    cluster of thousands of pixels. Counted, not timed: every pair was measured before the fix; it measures 7.7 %
    of them here."""
    side = 60
    pixels = [pixel(x * 0.3, y * 0.3, frp=float((7 * x + 3 * y) % 11)) for x in range(side) for y in range(side)]
    geod = CountingGeod()
    result = cluster_fire_points(pixels, geod=geod)
    counts = Counter(h.key for fp in result.fire_points for h in fp.members)
    assert set(counts.values()) == {1}
    assert len(counts) == side * side
    for fp in result.fire_points:
        assert fp.extent_km <= 2 * 1.2 + 1e-6
    all_pairs = len(pixels) * (len(pixels) - 1) // 2
    assert geod.distances < all_pairs // 8


def test_extent_of_a_large_cluster_is_its_longest_span() -> None:
    """Guards the faster extent (hull vertices only) against the all-pairs definition."""
    config = ClusteringConfig(split_km=100.0)  # keep the blob whole, to read its extent
    side = 12
    pixels = [pixel(x * 0.3, y * 0.3 + 0.01 * x * x) for x in range(side) for y in range(side)]
    (point,) = cluster_fire_points(pixels, config).fire_points
    longest = max(distance_km(a, b) for a, b in combinations(pixels, 2))
    assert abs(point.extent_km - longest) < 1e-9


def test_a_pass_that_comes_back_with_a_hotter_pixel_is_the_same_fire_point() -> None:
    """Overlapping API windows bring a pass back; when the later window also holds a pixel the earlier one lacked
    (the pass's next granule was published in between) and that pixel has the higher FRP, the cluster's
    representative, hence its key, changed. A prior of the same pass with another key was taken for a separate
    piece of a split cluster, so the grown fire point alarmed a second time for the same fire."""
    first_pixel = pixel(0.0, frp=5.0)
    later_pixel = pixel(0.35, frp=12.0, when=T0 + timedelta(minutes=1))
    earlier = cluster_fire_points([first_pixel])
    (grown,) = cluster_fire_points([first_pixel, later_pixel], history=earlier.fire_points).fire_points
    assert grown.representative == later_pixel
    assert grown.pass_id == earlier.fire_points[0].pass_id
    assert grown.repeat_of is not None
    assert grown.repeat_of.key == earlier.fire_points[0].key


def test_a_grown_fire_point_repeats_its_earlier_self_even_beyond_the_repeat_distance() -> None:
    """The earlier fire point's pixel is a member of the grown one: it is the same fire point whatever the distance
    between the two representatives (here a chain of pixels 1.05 km long, unsplit at 1.2 km)."""
    chain = [pixel(0.35 * i, frp=5.0 + i, when=T0 + timedelta(minutes=i // 2)) for i in range(4)]
    earlier = cluster_fire_points(chain[:1])
    (grown,) = cluster_fire_points(chain, history=earlier.fire_points).fire_points
    assert distance_km(grown.representative, chain[0]) > 0.8
    assert grown.repeat_of is not None
    assert grown.repeat_of.key == earlier.fire_points[0].key


def test_the_other_pieces_of_a_split_pass_still_alarm() -> None:
    """The same-pass rule stays: pieces of one split cluster are separate fires, one repeat does not hide the rest."""
    line = [pixel(0.35 * i, frp=5.0, when=T0) for i in range(8)]  # 2.45 km: split
    earlier = cluster_fire_points(line[:1])
    again = cluster_fire_points(line, history=earlier.fire_points).fire_points
    assert len(again) >= 2
    assert [fp.repeat_of is not None for fp in again].count(True) == 1
