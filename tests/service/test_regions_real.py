"""Acceptance on real data: MODIS hotspots (WGS-84) against Changchun's counties and Jilin's prefectures (GCJ-02).

The independent computation never converts polygons: it moves each hotspot *into* GCJ-02 with the forward
transform (the one that defines GCJ-02) and tests it against the raw polygons with plain shapely.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import prcoords
import pytest
import shapely
from shapely.geometry import shape

from service.regions.crs import parse_crs
from service.regions.index import RegionIndex
from service.regions.loader import read_units
from service.regions.types import RegionLevel
from tests.conftest import shared_path


def hotspots(name: str) -> tuple[np.ndarray, np.ndarray]:
    path = shared_path("firms", name)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return np.array([float(r["longitude"]) for r in rows]), np.array([float(r["latitude"]) for r in rows])


def independent_codes(boundary: Path, lon: np.ndarray, lat: np.ndarray) -> list[str | None]:
    features = json.loads(boundary.read_text(encoding="utf-8"))["features"]
    codes = sorted((str(f["properties"]["adcode"]), shapely.make_valid(shape(f["geometry"]))) for f in features)
    out: list[str | None] = []
    for x, y in zip(lon, lat, strict=True):
        p = prcoords.Coords(float(y), float(x))
        g = prcoords.wgs_gcj(p, False) if prcoords.sanity_in_china_p(p) else p
        point = shapely.Point(g.lon, g.lat)
        out.append(next((code for code, poly in codes if poly.intersects(point)), None))
    return out


def index_for(boundary: Path, level: RegionLevel, crs: str) -> RegionIndex:
    units, _ = read_units(boundary, level=level, crs=parse_crs(crs))
    return RegionIndex(units, tolerance_m=0)


def codes_of(index: RegionIndex, lon: np.ndarray, lat: np.ndarray) -> list[str | None]:
    result = index.assign_points(lon, lat)
    return [index.units[u].code if s == 0 else None for u, s in zip(result.unit, result.status, strict=True)]


def near_border(index: RegionIndex, lon: np.ndarray, lat: np.ndarray, metres: float) -> np.ndarray:
    borders = shapely.union_all([u.geometry.boundary for u in index.units])
    # ~1 km in degrees at 44°N (longitude degrees are shorter, so this over-selects slightly).
    return np.flatnonzero(shapely.distance(shapely.points(lon, lat), borders) < metres / 80_000)


@pytest.mark.shared_data
def test_every_global_hotspot_gets_the_independently_computed_county(changchun_counties: Path) -> None:
    lon, lat = hotspots("MODIS_C6_1_Global_24h_2025-04-23_full.csv")
    index = index_for(changchun_counties, RegionLevel.COUNTY, "gcj02")
    ours = codes_of(index, lon, lat)
    # Only hotspots near Changchun can be inside; the independent check is slow, so pre-select a wide box.
    box = np.flatnonzero((lon > 123) & (lon < 128) & (lat > 42) & (lat < 46.5))
    assert all(code is None for i, code in enumerate(ours) if i not in set(box.tolist()))
    expected = independent_codes(changchun_counties, lon[box], lat[box])
    assert [ours[i] for i in box] == expected
    assert sum(c is not None for c in expected) == 9  # nine real fire points that day in Changchun


@pytest.mark.shared_data
def test_jilin_prefectures_and_real_hotspots_near_borders() -> None:
    boundary = shared_path("boundaries", "220000_full.json")
    lon, lat = hotspots("MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv")
    index = index_for(boundary, RegionLevel.CITY, "gcj02")
    ours = codes_of(index, lon, lat)
    assert ours == independent_codes(boundary, lon, lat)
    assert sum(c is not None for c in ours) > 20
    close = near_border(index, lon, lat, 1000)
    assert close.size >= 3, "the real file has hotspots within 1 km of a prefecture border"


@pytest.mark.shared_data
def test_near_border_points_need_the_gcj02_conversion(changchun_counties: Path) -> None:
    index = index_for(changchun_counties, RegionLevel.COUNTY, "gcj02")
    unconverted = index_for(changchun_counties, RegionLevel.COUNTY, "wgs84")  # the mistake to guard against
    # Real hotspot 43.59023 N 125.41132 E lies ~400 m from a county border.
    lon_real, lat_real = hotspots("MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv")
    real_close = [
        i
        for i in near_border(index, lon_real, lat_real, 1000)
        if codes_of(index, lon_real[i : i + 1], lat_real[i : i + 1])[0]
    ]
    assert real_close, "a real Changchun hotspot within 1 km of a county border"
    # Synthetic points within 1 km of every county border.
    rng = np.random.default_rng(42)
    lon = rng.uniform(124.3, 127.1, 400_000)
    lat = rng.uniform(43.0, 45.3, 400_000)
    keep = near_border(index, lon, lat, 1000)[:3000]
    lon, lat = lon[keep], lat[keep]
    ours = codes_of(index, lon, lat)
    assert ours == independent_codes(changchun_counties, lon, lat)
    wrong = sum(a != b for a, b in zip(ours, codes_of(unconverted, lon, lat), strict=True))
    assert wrong > 0.1 * len(ours), f"without conversion only {wrong}/{len(ours)} border points change"
