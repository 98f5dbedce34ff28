"""Clustering pixels into fire points: transitive links, configured radii, splits, representatives, repeats."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyproj import Geod

from satellite.clustering import (
    ClusteringConfig,
    FirePoint,
    PriorFirePoint,
    cluster_fire_points,
    link_components,
)
from satellite.firms import read_firms_csv
from satellite.himawari import read_himawari_csv
from satellite.hotspot import DayNight, Hotspot, Instrument, Product, Satellite
from tests.conftest import shared_path

GEOD = Geod(ellps="WGS84")
ORIGIN = (125.30, 43.90)  # lon, lat: a field south-west of Changchun
T0 = datetime(2025, 4, 23, 4, 22, tzinfo=UTC)
HIMAWARI = Path(__file__).parent / "data" / "himawari" / "H09_20250423_0420_L2WLF010_FLDK.06001_06001.csv"
VIIRS_SIZE = 0.375
# Only activefires-pp's fixed radii; pixel scaling is tested on its own.
FIXED = ClusteringConfig(pixel_factor=0, split_pixel_factor=0)


def at(east_km: float, north_km: float) -> tuple[float, float]:
    """(lon, lat) of a point east/north of ORIGIN, placed on the ellipsoid."""
    lon, lat, _ = GEOD.fwd(ORIGIN[0], ORIGIN[1], 90.0, east_km * 1000.0)
    lon, lat, _ = GEOD.fwd(lon, lat, 0.0, north_km * 1000.0)
    return lon, lat


def pixel(
    east_km: float,
    north_km: float = 0.0,
    *,
    frp: float | None = 5.0,
    when: datetime = T0,
    satellite: Satellite = Satellite.NOAA20,
    size_km: float = VIIRS_SIZE,
) -> Hotspot:
    lon, lat = at(east_km, north_km)
    product = Product.for_detection(satellite, nrt=True)
    fields: dict[str, Any] = {
        "product": product,
        "satellite": satellite,
        "instrument": product.instrument,
        "acq_utc": when,
        "latitude": lat,
        "longitude": lon,
        "scan_km": size_km,
        "track_km": size_km,
        "bright_mir_k": 330.0,
        "bright_tir_k": 290.0,
        "frp_mw": frp,
        "confidence": 0.55,
        "confidence_raw": "n" if product.instrument is Instrument.VIIRS else "55",
        "daynight": DayNight.DAY,
        "version": "2.0NRT" if product.instrument is Instrument.VIIRS else "6.1NRT",
    }
    return Hotspot(**fields)


def distance_km(a: Hotspot, b: Hotspot) -> float:
    return float(GEOD.inv(a.longitude, a.latitude, b.longitude, b.latitude)[2]) / 1000.0


def member_keys(points: list[FirePoint[Hotspot]]) -> list[list[str]]:
    return sorted(sorted(h.key for h in fp.members) for fp in points)


# --- linking ------------------------------------------------------------------------------------------------


def chain() -> list[Hotspot]:
    """A-B-C with A-B = B-C = 0.7 km and A-C = 1.1 km: B's neighbours are A and C, A's only B."""
    a = pixel(0.0, 0.7)
    b = pixel(0.0, 0.0)
    c_lon, c_lat, _ = GEOD.fwd(b.longitude, b.latitude, 103.6, 700.0)
    c = pixel(*_offset_km(c_lon, c_lat))
    return [a, b, c]


def _offset_km(lon: float, lat: float) -> tuple[float, float]:
    # Inverse of at(): east distance along the origin's parallel, then north.
    north = GEOD.inv(ORIGIN[0], ORIGIN[1], ORIGIN[0], lat)[2] / 1000.0 * (1 if lat >= ORIGIN[1] else -1)
    east = GEOD.inv(ORIGIN[0], ORIGIN[1], lon, ORIGIN[1])[2] / 1000.0 * (1 if lon >= ORIGIN[0] else -1)
    return east, north


def test_chain_is_one_fire_point_not_two() -> None:
    """activefires-pp seeds at A, takes B (0.7 km), leaves C (1.1 km from A): two alarms. Ours links A-B-C."""
    a, b, c = chain()
    assert distance_km(a, b) == pytest.approx(0.7, abs=0.01)
    assert distance_km(b, c) == pytest.approx(0.7, abs=0.01)
    assert distance_km(a, c) == pytest.approx(1.1, abs=0.01)
    result = cluster_fire_points([a, b, c], FIXED)
    (point,) = result.fire_points
    assert len(point.members) == 3
    assert not point.split
    assert point.extent_km == pytest.approx(distance_km(a, c))


@pytest.mark.parametrize(("link_km", "groups"), [(0.5, 3), (0.69, 3), (0.71, 1), (2.0, 1)])
def test_configured_link_distance_is_the_one_used(link_km: float, groups: int) -> None:
    config = ClusteringConfig(link_km=link_km, pixel_factor=0, split_km=5.0)
    assert len(cluster_fire_points(chain(), config).fire_points) == groups
    assert len(link_components(chain(), config)) == groups


def test_input_order_does_not_change_the_result() -> None:
    pixels = [pixel(x * 0.3, y * 0.3, frp=float(x + y)) for x in range(6) for y in range(3)]
    forward = cluster_fire_points(pixels)
    backward = cluster_fire_points(list(reversed(pixels)))
    assert [fp.key for fp in forward.fire_points] == [fp.key for fp in backward.fire_points]
    assert member_keys(forward.fire_points) == member_keys(backward.fire_points)


def test_pixel_size_widens_the_link_for_coarse_pixels() -> None:
    # Two adjacent 1 km MODIS pixels: 1 km apart, beyond 0.8 km.
    pair = [pixel(0.0, satellite=Satellite.TERRA, size_km=1.0), pixel(1.0, satellite=Satellite.TERRA, size_km=1.0)]
    assert len(cluster_fire_points(pair).fire_points) == 1  # 1.1 x 1 km
    assert len(cluster_fire_points(pair, FIXED).fire_points) == 2


# --- splitting ----------------------------------------------------------------------------------------------


def fire_line(count: int, spacing_km: float = VIIRS_SIZE, **kwargs: Any) -> list[Hotspot]:
    return [pixel(i * spacing_km, frp=1.0 + i, **kwargs) for i in range(count)]


def test_a_long_fire_line_is_split_and_every_pixel_kept_once() -> None:
    line = fire_line(5)  # 1.5 km from end to end
    result = cluster_fire_points(line)
    assert len(link_components(line)) == 1
    first, second = sorted(result.fire_points, key=lambda fp: fp.longitude)
    assert [h.key for h in first.members] == [h.key for h in line[:4]]  # within 1.2 km of the west end
    assert [h.key for h in second.members] == [line[4].key]
    assert first.split
    assert second.split
    assert first.extent_km == pytest.approx(3 * VIIRS_SIZE, rel=1e-3)
    # Both pieces are fires of the same pass: neither makes the other a repeat.
    assert result.repeats == []


@pytest.mark.parametrize("split_km", [0.5, 1.2, 2.0])
def test_configured_split_length_is_the_one_used(split_km: float) -> None:
    line = fire_line(8)  # 2.625 km
    config = ClusteringConfig(split_km=split_km, split_pixel_factor=0)
    points = cluster_fire_points(line, config).fire_points
    assert sorted(k for fp in points for k in (h.key for h in fp.members)) == sorted(h.key for h in line)
    for fp in points:
        ends = (fp.members[0], fp.members[-1])
        assert distance_km(*ends) <= split_km + 1e-6
    sizes = [len(fp.members) for fp in sorted(points, key=lambda fp: fp.longitude)]
    assert sizes == {0.5: [2, 2, 2, 2], 1.2: [4, 4], 2.0: [6, 2]}[split_km]


def test_split_leaves_a_branch_that_lost_its_link_as_its_own_fire_point() -> None:
    # A T: a 1.5 km line west-east and a short stub going north from its middle.
    line = fire_line(5)
    stub = [pixel(2 * VIIRS_SIZE, 0.6, frp=9.0)]
    result = cluster_fire_points(line + stub)
    counts = Counter(h.key for fp in result.fire_points for h in fp.members)
    assert set(counts.values()) == {1}
    assert len(counts) == 6


def test_coarse_pixels_are_split_at_three_pixels_not_at_1_2_km() -> None:
    three = [pixel(i * 1.0, satellite=Satellite.AQUA, size_km=1.0) for i in range(3)]  # 2 km end to end
    assert len(cluster_fire_points(three).fire_points) == 1  # 2 km < 3 x 1 km
    assert len(cluster_fire_points(three, ClusteringConfig(split_pixel_factor=0)).fire_points) == 2
    line = [pixel(i * 1.0, satellite=Satellite.AQUA, size_km=1.0) for i in range(5)]
    assert len(cluster_fire_points(line).fire_points) == 2  # 4 km > 3 km


# --- representative ---------------------------------------------------------------------------------------


def test_representative_is_the_highest_frp_pixel() -> None:
    pixels = [pixel(0.0, frp=3.0), pixel(0.3, frp=12.5), pixel(0.6, frp=None), pixel(0.9, frp=7.0)]
    (point,) = cluster_fire_points(pixels).fire_points
    assert point.representative is pixels[1]
    assert (point.latitude, point.longitude, point.frp_mw) == (pixels[1].latitude, pixels[1].longitude, 12.5)
    assert point.key == "FP|" + pixels[1].key


def test_missing_frp_ranks_last_and_ties_go_to_the_earliest() -> None:
    only_missing = [pixel(0.0, frp=None), pixel(0.3, frp=None)]
    (point,) = cluster_fire_points(only_missing).fire_points
    assert point.representative.key == min(h.key for h in only_missing)
    tie = [pixel(0.0, frp=4.0, when=T0 + timedelta(minutes=1)), pixel(0.3, frp=4.0)]
    (point,) = cluster_fire_points(tie).fire_points
    assert point.representative is tie[1]


# --- passes and repeats -----------------------------------------------------------------------------------


def test_passes_of_different_satellites_are_not_merged_but_the_later_is_a_repeat() -> None:
    noaa20 = pixel(0.0, when=T0)
    snpp = pixel(0.2, when=T0 + timedelta(minutes=50), satellite=Satellite.SNPP)
    result = cluster_fire_points([snpp, noaa20])
    first, second = result.fire_points
    assert first.representative is noaa20
    assert not first.is_repeat
    assert second.repeat_of is not None
    assert second.repeat_of.key == first.key
    assert first.pass_id != second.pass_id
    assert result.new == [first]


def test_pass_gap_is_the_one_used() -> None:
    early = pixel(0.0, when=T0)
    late = pixel(0.2, when=T0 + timedelta(minutes=30))
    assert len(cluster_fire_points([early, late]).fire_points) == 2  # 30 min > 10 min: two passes
    merged = cluster_fire_points([early, late], ClusteringConfig(pass_gap=timedelta(hours=1)))
    assert len(merged.fire_points) == 1


def prior(east_km: float, hours: float, key: str = "FP|earlier") -> PriorFirePoint:
    lon, lat = at(east_km, 0.0)
    return PriorFirePoint(key, lat, lon, T0 + timedelta(hours=hours))


@pytest.mark.parametrize(
    ("history", "repeat"),
    [
        ([prior(0.5, -3)], True),  # 3 h earlier, 0.5 km away
        ([prior(0.5, -7)], False),  # outside the 6 h window
        ([prior(0.9, -1)], False),  # farther than 0.8 km
        ([prior(0.5, +2)], True),  # a later pass that was processed first
        ([prior(0.5, -6)], False),  # exactly 6 h: the window is open
        ([prior(5.0, -1), prior(0.1, -5.9)], True),
    ],
)
def test_repeat_against_history(history: list[PriorFirePoint], repeat: bool) -> None:
    (point,) = cluster_fire_points([pixel(0.0)], history=history).fire_points
    assert point.is_repeat is repeat


def test_configured_repeat_window_and_distance_are_the_ones_used() -> None:
    history = [prior(1.5, -10)]
    assert not cluster_fire_points([pixel(0.0)], history=history).fire_points[0].is_repeat
    config = ClusteringConfig(repeat_km=2.0, repeat_window=timedelta(hours=12))
    assert cluster_fire_points([pixel(0.0)], config, history=history).fire_points[0].is_repeat


def test_a_fire_burning_all_day_alarms_about_every_six_hours() -> None:
    sats = [Satellite.NOAA20, Satellite.SNPP, Satellite.NOAA21]
    pixels = [pixel(0.05 * i, when=T0 + timedelta(hours=h), satellite=sats[i]) for i, h in enumerate([0, 5, 7])]
    points = cluster_fire_points(pixels).fire_points
    assert [fp.is_repeat for fp in points] == [False, True, False]  # a repeat does not restart the window


def test_clustering_the_same_data_again_with_its_own_history_raises_no_new_alarm() -> None:
    pixels = [*fire_line(5), pixel(5.0, when=T0 + timedelta(hours=1), satellite=Satellite.SNPP)]
    first = cluster_fire_points(pixels)
    assert len(first.new) == 3
    again = cluster_fire_points(pixels, history=first.fire_points)
    assert again.new == []
    assert [fp.repeat_of.key for fp in again.fire_points if fp.repeat_of] == [fp.key for fp in again.fire_points]


def test_nothing_in_nothing_out() -> None:
    assert cluster_fire_points([]).fire_points == []
    assert link_components([]) == []


def test_naive_times_and_duplicate_keys_are_refused() -> None:
    p = pixel(0.0)
    with pytest.raises(ValueError, match="duplicate"):
        cluster_fire_points([p, p])
    naive_prior = PriorFirePoint("x", p.latitude, p.longitude, datetime(2025, 4, 23, 4, 0))
    with pytest.raises(ValueError, match="naive"):
        cluster_fire_points([p], history=[naive_prior])
    with pytest.raises(ValueError):
        ClusteringConfig(link_km=0)


# --- other records and real data --------------------------------------------------------------------------


def test_himawari_cells_cluster_like_the_products_hot_centres() -> None:
    hotspots = read_himawari_csv(HIMAWARI).hotspots
    points = cluster_fire_points(hotspots).fire_points
    groups = sorted(sorted(h.grid_id for h in fp.members) for fp in points)
    by_hc: dict[int, list[int]] = {}
    for h in hotspots:
        by_hc.setdefault(h.hot_centre_id, []).append(h.grid_id)
    assert groups == sorted(sorted(g) for g in by_hc.values())  # JAXA's HC grouping, found independently
    representative = next(fp for fp in points if len(fp.members) == 3).representative
    assert representative.grid_id == 2  # the flaming cell with the highest FRP


@pytest.mark.shared_data
def test_real_ne_china_modis_day_gives_sensible_fire_points() -> None:
    hotspots = read_firms_csv(shared_path("firms", "MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv")).hotspots
    result = cluster_fire_points(hotspots)
    points = result.fire_points
    assert len(hotspots) == 484
    assert len(link_components(hotspots)) <= len(points) < len(hotspots)
    # Every pixel in exactly one fire point.
    counts = Counter(h.key for fp in points for h in fp.members)
    assert set(counts) == {h.key for h in hotspots}
    assert set(counts.values()) == {1}
    for fp in points:
        assert fp.representative in fp.members
        assert fp.frp_mw == max(h.frp_mw for h in fp.members if h.frp_mw is not None)
        assert len({h.satellite for h in fp.members}) == 1  # never across passes
        assert fp.extent_km <= 2 * max(1.2, 3 * fp.pixel_km) + 1e-6
    assert len(points) < len(hotspots) * 0.8  # adjacent pixels do merge
    assert 0 < len(result.repeats) < len(points) // 10


@pytest.mark.shared_data
def test_strtree_candidates_match_an_all_pairs_search() -> None:
    """The degree-radius prefilter must not lose a pair: compare with brute force on the real NE-China day."""
    hotspots = read_firms_csv(shared_path("firms", "MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv")).hotspots
    config = ClusteringConfig()
    # Passes, independently: per satellite, time-sorted, split at gaps over 10 minutes.
    pass_of: dict[int, tuple[str, int]] = {}
    for sat in {h.satellite for h in hotspots}:
        order = sorted((i for i, h in enumerate(hotspots) if h.satellite is sat), key=lambda i: hotspots[i].acq_utc)
        number = 0
        for previous, index in zip([order[0], *order], order, strict=False):
            if hotspots[index].acq_utc - hotspots[previous].acq_utc > timedelta(minutes=10):
                number += 1
            pass_of[index] = (sat.value, number)
    n = len(hotspots)
    i, j = np.triu_indices(n, k=1)
    lon = np.array([h.longitude for h in hotspots])
    lat = np.array([h.latitude for h in hotspots])
    size = np.array([max(h.scan_km, h.track_km) for h in hotspots])
    km = np.asarray(GEOD.inv(lon[i], lat[i], lon[j], lat[j])[2]) / 1000.0
    reach = np.maximum(config.link_km, config.pixel_factor * np.maximum(size[i], size[j]))
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in zip(i[km <= reach].tolist(), j[km <= reach].tolist(), strict=True):
        if pass_of[a] == pass_of[b]:
            parent[find(b)] = find(a)
    brute: dict[int, list[int]] = {}
    for index in range(n):
        brute.setdefault(find(index), []).append(index)
    assert sorted(brute.values()) == link_components(hotspots, config)
    assert len(brute) < n  # there are links to find


@pytest.mark.shared_data
def test_global_day_is_clustered() -> None:
    """The whole real global day (16,017 hotspots) goes through in one call. Its speed is not asserted here (the
    suite times nothing): candidate pairs come from the STRtree query, not from all 128 million pairs."""
    hotspots = read_firms_csv(shared_path("firms", "MODIS_C6_1_Global_24h_2025-04-23_full.csv")).hotspots
    result = cluster_fire_points(hotspots)
    assert sum(len(fp.members) for fp in result.fire_points) == 16_017
    assert len(result.fire_points) < 16_017  # neighbouring pixels of one fire were joined
