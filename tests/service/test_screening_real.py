"""The service's screening coverage on real data: the MODIS NRT day of 2025-04-23/24 (NE China cut) against
Changchun's counties (GCJ-02, converted on import), widened by the 500 m assignment tolerance.

Coverage used to be tested on the pixel centre while incidents are assigned by footprint overlap (with a nearest
fallback measured from the footprint): a 1.15 km Aqua pixel centred just beyond the margin, that the assignment
places in 九台区, was screened out as ``outside_coverage`` and never reached a township."""

from __future__ import annotations

from collections import Counter

import pytest
from pyproj import Geod

from satellite.firms import read_firms_csv
from satellite.screening import Screener, ScreeningStatus
from service.regions.crs import parse_crs
from service.regions.index import RegionIndex
from service.regions.loader import read_units
from service.regions.types import AssignStatus, RegionLevel
from tests.conftest import shared_path

EDGE_PIXEL = "MODIS|Aqua|NRT|20250424T0555Z|+4399067|+12601398"


@pytest.mark.shared_data
def test_changchun_coverage_keeps_pixels_whose_footprint_the_assignment_places() -> None:
    units, _ = read_units(
        shared_path("boundaries", "220100_full.json"), level=RegionLevel.COUNTY, crs=parse_crs("gcj02")
    )
    index = RegionIndex(units, tolerance_m=500.0)
    hotspots = read_firms_csv(shared_path("firms", "MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv")).hotspots
    decisions = Screener(coverage=index.coverage()).screen(hotspots)

    by_key = {d.key: d for d in decisions}
    assert by_key[EDGE_PIXEL].status is ScreeningStatus.ACCEPTED
    # Every pixel that passes coverage is one the incident assignment can place (inside or nearest), and no pixel
    # the assignment could place is screened out.
    for decision in decisions:
        placed = index.assign_footprint(decision.hotspot.footprint()).status is not AssignStatus.OUTSIDE
        assert placed == (decision.status is not ScreeningStatus.OUTSIDE_COVERAGE), decision.key
    assert Counter(d.status for d in decisions) == {
        ScreeningStatus.OUTSIDE_COVERAGE: 474,
        ScreeningStatus.ACCEPTED: 10,
    }


@pytest.mark.shared_data
def test_real_footprints_are_scan_by_track() -> None:
    hotspots = read_firms_csv(shared_path("firms", "MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv")).hotspots
    geod = Geod(ellps="WGS84")
    for hotspot in hotspots:
        area_km2 = abs(geod.geometry_area_perimeter(hotspot.footprint())[0]) / 1e6
        assert area_km2 == pytest.approx(hotspot.scan_km * hotspot.track_km, rel=0.01), hotspot.key
