"""Screening gaps found against the field notes (reference satellite.md): coverage is tested on the pixel footprint,
not its centre (§1 finding 6, S3/S6), and low-confidence detections — VIIRS ``l`` is the sun-glint / weak-anomaly
class (§3.4) — are held with a reason instead of alerting a township."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
import shapely

from satellite.himawari import FireLevel, HimawariHotspot, HimawariSatellite, QualityFlag, Reliability
from satellite.hotspot import Hotspot, Product, Satellite, normalise_confidence
from satellite.screening import (
    BurnPermit,
    Screener,
    ScreeningConfig,
    ScreeningStatus,
    low_confidence_reason,
)
from tests.satellite.test_screening import viirs

T0 = datetime(2025, 4, 24, 5, 55, tzinfo=UTC)
EAST_EDGE = 126.0
LAT = 44.0
COVERAGE = shapely.box(125.0, 43.5, EAST_EDGE, 44.5)
KM_PER_DEG_LON = 111.32 * math.cos(math.radians(LAT))


def east_of_edge(km: float) -> float:
    """The longitude ``km`` east of the coverage's east edge, at :data:`LAT`."""
    return EAST_EDGE + km / KM_PER_DEG_LON


def hotspot(
    lon: float,
    lat: float = LAT,
    *,
    satellite: Satellite = Satellite.AQUA,
    scan: float = 2.0,
    track: float = 1.5,
    confidence: str = "55",
    **overrides: Any,
) -> Hotspot:
    """A MODIS (or, by ``satellite``, VIIRS) pixel of the given size and raw confidence: the screening tests' pixel."""
    instrument = Product.for_detection(satellite, nrt=True).instrument
    return viirs(
        (lon, lat),
        when=T0,
        satellite=satellite,
        scan_km=scan,
        track_km=track,
        confidence=normalise_confidence(confidence, instrument),
        confidence_raw=confidence,
        **overrides,
    )


def himawari(lon: float, lat: float = LAT, reliability: Reliability = Reliability.NORMAL) -> HimawariHotspot:
    return HimawariHotspot(
        HimawariSatellite.HIMAWARI_9,
        T0,
        lat,
        lon,
        3.9,
        0,
        FireLevel.FLAMING,
        reliability,
        5.0,
        QualityFlag.NORMAL,
        1,
        1,
    )


def status(screener: Screener, item: Any) -> ScreeningStatus:
    (decision,) = screener.screen([item])
    return decision.status


# --- coverage on the footprint ----------------------------------------------------------------------------


def test_a_coarse_pixel_centred_beyond_the_margin_but_reaching_in_is_not_outside_coverage() -> None:
    """A 2 km MODIS pixel centred 0.5 km outside: the fire may be in the 0.5 km of it that lies inside. The
    service assigns such a pixel by its footprint; screening used to drop it first on its centre."""
    screener = Screener(coverage=[COVERAGE])
    assert status(screener, hotspot(east_of_edge(0.5), scan=2.0)) is ScreeningStatus.ACCEPTED


def test_a_footprint_entirely_outside_coverage_is_outside() -> None:
    screener = Screener(coverage=[COVERAGE])
    decision = screener.screen([hotspot(east_of_edge(1.2), scan=2.0)])[0]  # half-width 1 km < 1.2 km
    assert decision.status is ScreeningStatus.OUTSIDE_COVERAGE
    assert decision.violation is False


@pytest.mark.parametrize(
    ("satellite", "scan", "expected"),
    [
        (Satellite.SNPP, 0.375, ScreeningStatus.OUTSIDE_COVERAGE),  # half-width 0.19 km: does not reach
        (Satellite.SNPP, 0.78, ScreeningStatus.OUTSIDE_COVERAGE),  # swath-edge VIIRS: 0.39 km, still short
        (Satellite.TERRA, 1.2, ScreeningStatus.ACCEPTED),  # 0.6 km reaches 0.5 km
        (Satellite.TERRA, 4.8, ScreeningStatus.ACCEPTED),  # MODIS swath edge
    ],
)
def test_the_reach_follows_the_pixel_size(satellite: Satellite, scan: float, expected: ScreeningStatus) -> None:
    confidence = "n" if satellite is Satellite.SNPP else "55"
    item = hotspot(east_of_edge(0.5), satellite=satellite, scan=scan, track=min(scan, 2.0), confidence=confidence)
    assert status(Screener(coverage=[COVERAGE]), item) is expected


def test_a_himawari_cell_reaching_into_coverage_is_not_outside() -> None:
    # A 0.02° cell centred 0.015° beyond the edge starts 0.005° beyond it; one centred 0.009° beyond reaches in.
    assert status(Screener(coverage=[COVERAGE]), himawari(EAST_EDGE + 0.015)) is ScreeningStatus.OUTSIDE_COVERAGE
    assert status(Screener(coverage=[COVERAGE]), himawari(EAST_EDGE + 0.009)) is ScreeningStatus.ACCEPTED


def test_a_record_without_pixel_size_is_tested_at_its_centre() -> None:
    class Bare:
        key = "bare"
        latitude = LAT
        acq_utc = T0
        frp_mw = 3.0

        def __init__(self, longitude: float) -> None:
            self.longitude = longitude

    screener = Screener(coverage=[COVERAGE])
    assert status(screener, Bare(east_of_edge(0.01))) is ScreeningStatus.OUTSIDE_COVERAGE
    assert status(screener, Bare(EAST_EDGE - 0.01)) is ScreeningStatus.ACCEPTED


def test_batch_mixing_firms_himawari_and_bare_records_keeps_order() -> None:
    items = [hotspot(east_of_edge(0.5)), himawari(EAST_EDGE + 0.2), hotspot(125.5), himawari(125.5)]
    statuses = [d.status for d in Screener(coverage=[COVERAGE]).screen(items)]
    assert statuses == [
        ScreeningStatus.ACCEPTED,
        ScreeningStatus.OUTSIDE_COVERAGE,
        ScreeningStatus.ACCEPTED,
        ScreeningStatus.ACCEPTED,
    ]


# --- low confidence ------------------------------------------------------------------------------------------

HOLD_LOW = ScreeningConfig(min_confidence=0.30)
"""The rule turned on at the low class of every product (it is off by default)."""


@pytest.mark.parametrize(
    ("satellite", "confidence", "expected"),
    [
        (Satellite.SNPP, "l", ScreeningStatus.LOW_CONFIDENCE),
        (Satellite.NOAA20, "low", ScreeningStatus.LOW_CONFIDENCE),  # 7-day text spelling
        (Satellite.SNPP, "n", ScreeningStatus.ACCEPTED),
        (Satellite.NOAA21, "h", ScreeningStatus.ACCEPTED),
        (Satellite.TERRA, "0", ScreeningStatus.LOW_CONFIDENCE),
        (Satellite.AQUA, "29", ScreeningStatus.LOW_CONFIDENCE),
        (Satellite.AQUA, "30", ScreeningStatus.ACCEPTED),  # the MODIS nominal class starts at 30 %
        (Satellite.TERRA, "100", ScreeningStatus.ACCEPTED),
    ],
)
def test_the_low_class_is_held(satellite: Satellite, confidence: str, expected: ScreeningStatus) -> None:
    assert status(Screener(HOLD_LOW), hotspot(125.5, satellite=satellite, confidence=confidence)) is expected
    assert status(Screener(), hotspot(125.5, satellite=satellite, confidence=confidence)) is ScreeningStatus.ACCEPTED


def test_a_low_confidence_hotspot_is_no_violation_and_says_why() -> None:
    low = hotspot(125.5, satellite=Satellite.SNPP, scan=0.39, track=0.36, confidence="l")
    (decision,) = Screener(HOLD_LOW).screen([low])
    assert decision.violation is False
    assert "sun-glint" in decision.reason
    assert "0.15 < 0.30" in decision.reason


def test_himawari_low_reliability_is_held_with_jaxas_meaning() -> None:
    (decision,) = Screener(HOLD_LOW).screen([himawari(125.5, reliability=Reliability.LOW)])
    assert decision.status is ScreeningStatus.LOW_CONFIDENCE
    assert "Himawari reliability 1" in decision.reason
    assert status(Screener(HOLD_LOW), himawari(125.5, reliability=Reliability.NORMAL)) is ScreeningStatus.ACCEPTED


def test_the_rule_is_off_by_default_and_can_be_tightened() -> None:
    low = hotspot(125.5, satellite=Satellite.SNPP, scan=0.39, track=0.36, confidence="l")
    assert status(Screener(), low) is ScreeningStatus.ACCEPTED
    modis_55 = hotspot(125.5, confidence="55")
    assert status(Screener(ScreeningConfig(min_confidence=0.8)), modis_55) is ScreeningStatus.LOW_CONFIDENCE
    assert low_confidence_reason(modis_55) is None


@pytest.mark.parametrize("value", [-0.1, 1.5, math.nan, math.inf])
def test_min_confidence_is_validated(value: float) -> None:
    with pytest.raises(ValueError, match="min_confidence"):
        ScreeningConfig(min_confidence=value)


def test_static_outranks_low_confidence_which_outranks_a_permit() -> None:
    permit = BurnPermit("P-9", shapely.box(125.4, 43.9, 125.6, 44.1), T0.replace(hour=0), T0.replace(hour=12))
    low_in_permit = hotspot(125.5, confidence="12")
    (decision,) = Screener(HOLD_LOW, permits=[permit]).screen([low_in_permit])
    assert decision.status is ScreeningStatus.LOW_CONFIDENCE
    assert [f.status for f in decision.findings] == [ScreeningStatus.LOW_CONFIDENCE, ScreeningStatus.PERMITTED]
    assert decision.permit_id is None
    static_low = hotspot(125.5, confidence="12", fire_type=2, version="6.1", product=Product.MODIS_SP)
    (decision,) = Screener(HOLD_LOW).screen([static_low])
    assert decision.status is ScreeningStatus.STATIC_SOURCE
    assert [f.status for f in decision.findings] == [ScreeningStatus.STATIC_SOURCE, ScreeningStatus.LOW_CONFIDENCE]
