"""Screening: every hotspot gets a decision and a reason — glitches, coverage, sites, static sources, zones, permits."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import shapely
from shapely import Polygon

from satellite.errors import GeometryInputError, SatelliteError
from satellite.firms import read_firms_csv
from satellite.himawari import FireLevel, HimawariHotspot, HimawariSatellite, QualityFlag, Reliability
from satellite.hotspot import DayNight, Hotspot, Instrument, Product, Satellite
from satellite.screening import (
    BurnPermit,
    PersistenceMap,
    Screener,
    ScreeningConfig,
    ScreeningDecision,
    ScreeningStatus,
    Site,
    Zone,
    ZoneKind,
    glitch_reason,
    read_coverage_geojson,
    read_permits_geojson,
    read_sites_geojson,
    read_zones_geojson,
)
from tests.conftest import shared_path

DATA = Path(__file__).parent / "data"
GEO = DATA / "screening"
T0 = datetime(2025, 4, 23, 5, 12, tzinfo=UTC)  # 13:12 China time

# Places in the fixtures (lon, lat).
IN_NO_BURN = (125.27, 43.87)
IN_HOLE = (125.32, 43.915)
IN_RESTRICTED = (125.57, 43.87)
IN_PERMIT_P1 = (125.52, 43.90)  # inside R-1 and P-1
IN_PERMIT_P2 = (125.36, 43.96)  # inside NB-1 and P-2
IN_BOTH_ZONES = (125.42, 43.97)  # NB-1 and R-2
IN_SITE = (125.11, 43.71)
FARMLAND = (125.0, 43.8)  # inside coverage, outside every zone
OUTSIDE = (124.5, 43.8)


def viirs(
    where: tuple[float, float],
    *,
    when: datetime = T0,
    frp: float | None = 6.0,
    bright: float = 335.0,
    satellite: Satellite = Satellite.SNPP,
    **overrides: Any,
) -> Hotspot:
    product = Product.for_detection(satellite, nrt=True)
    fields: dict[str, Any] = {
        "product": product,
        "satellite": satellite,
        "instrument": product.instrument,
        "acq_utc": when,
        "latitude": where[1],
        "longitude": where[0],
        "scan_km": 0.39,
        "track_km": 0.36,
        "bright_mir_k": bright,
        "bright_tir_k": 291.0,
        "frp_mw": frp,
        "confidence": 0.55,
        "confidence_raw": "n" if product.instrument is Instrument.VIIRS else "55",
        "daynight": DayNight.DAY,
        "version": "2.0NRT" if product.instrument is Instrument.VIIRS else "6.1NRT",
    }
    fields.update(overrides)
    return Hotspot(**fields)


@pytest.fixture(scope="module")
def screener() -> Screener:
    return Screener(
        sites=read_sites_geojson(GEO / "sites.geojson"),
        zones=read_zones_geojson(GEO / "zones.geojson"),
        permits=read_permits_geojson(GEO / "permits.geojson"),
        coverage=read_coverage_geojson(GEO / "coverage.geojson"),
    )


def decide(screener: Screener, hotspot: Hotspot) -> ScreeningDecision[Hotspot]:
    (decision,) = screener.screen([hotspot])
    return decision


# --- the glitch rule ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bright", "frp", "glitch"),
    [
        (330.0, 0.1, True),  # 3300 K/MW
        (330.0, 0.0, True),  # no power at all
        (330.0, 0.5, False),  # 660 K/MW
        (305.0, 0.1, False),  # not hot enough
        (310.0, 0.1, False),  # T must be above 310 K
        (330.0, 0.33, False),  # exactly 1000 K/MW is not above it
        (330.0, None, False),  # FRP not published: the test does not apply
    ],
)
def test_glitch_rule(bright: float, frp: float | None, glitch: bool) -> None:
    assert (glitch_reason(viirs(FARMLAND, bright=bright, frp=frp)) is not None) is glitch


def test_activefires_pp_single_event_upset_is_a_glitch() -> None:
    # The NOAA-21 pixel activefires-pp's tests remove (reference satellite.md §4.5).
    pixel = viirs((13.09044647, 57.90747833), bright=324.07, frp=0.1102, satellite=Satellite.NOAA21)
    decision = Screener().screen([pixel])[0]
    assert decision.status is ScreeningStatus.GLITCH
    assert "2941 K/MW" in decision.reason


def test_glitch_rule_is_viirs_only_by_default() -> None:
    modis = viirs(FARMLAND, bright=330.0, frp=0.0, satellite=Satellite.TERRA)
    assert glitch_reason(modis) is None
    assert glitch_reason(modis, ScreeningConfig(glitch_instruments=frozenset({"MODIS", "VIIRS"}))) is not None


@pytest.mark.shared_data
def test_glitch_rule_on_the_real_global_modis_day() -> None:
    """The number behind the VIIRS-only default: 11 MODIS pixels with FRP 0.0, all high confidence."""
    hotspots = read_firms_csv(shared_path("firms", "MODIS_C6_1_Global_24h_2025-04-23_full.csv")).hotspots
    both = ScreeningConfig(glitch_instruments=frozenset({"MODIS", "VIIRS"}))
    flagged = [h for h in hotspots if glitch_reason(h, both) is not None]
    assert len(flagged) == 11
    assert all(h.frp_mw == 0.0 and h.confidence >= 0.9 for h in flagged)
    assert not any(glitch_reason(h) for h in hotspots)


# --- precedence and audit ---------------------------------------------------------------------------------


def test_every_matching_rule_is_recorded_in_precedence_order(screener: Screener) -> None:
    # A glitch pixel inside an industrial site: the glitch decides, the site is still on record.
    decision = decide(screener, viirs(IN_SITE, bright=330.0, frp=0.05))
    assert decision.status is ScreeningStatus.GLITCH
    assert [f.status for f in decision.findings] == [ScreeningStatus.GLITCH, ScreeningStatus.INDUSTRIAL_SITE]
    assert decision.site_id == "S-1"
    assert decision.violation is False


def test_one_decision_per_hotspot_in_input_order(screener: Screener) -> None:
    places = [IN_SITE, FARMLAND, OUTSIDE, IN_NO_BURN, IN_PERMIT_P1, IN_HOLE]
    hotspots = [viirs(p) for p in places]
    decisions = screener.screen(hotspots)
    assert [d.hotspot for d in decisions] == hotspots
    assert [d.status for d in decisions] == [
        ScreeningStatus.INDUSTRIAL_SITE,
        ScreeningStatus.ACCEPTED,
        ScreeningStatus.OUTSIDE_COVERAGE,
        ScreeningStatus.ACCEPTED,
        ScreeningStatus.PERMITTED,
        ScreeningStatus.ACCEPTED,
    ]
    assert all(d.reason for d in decisions)
    assert decisions[1].key == hotspots[1].key


def test_an_empty_batch_gives_no_decisions(screener: Screener) -> None:
    assert screener.screen([]) == []


def test_outside_coverage_only_when_coverage_is_configured() -> None:
    assert Screener().screen([viirs(OUTSIDE)])[0].status is ScreeningStatus.ACCEPTED
    with pytest.raises(ValueError, match="empty"):
        Screener(coverage=[])


# --- industrial sites and static sources -----------------------------------------------------------------


def test_industrial_sites_from_geojson_with_repair(screener: Screener) -> None:
    sites = read_sites_geojson(GEO / "sites.geojson")
    assert [(s.site_id, s.name) for s in sites] == [("S-1", "示例钢铁厂"), ("S-2", "示例热电厂（自相交，需修复）")]
    assert sites[1].geometry.is_valid
    assert sites[1].geometry.area > 0  # the bow-tie became its two triangles
    decision = decide(screener, viirs((125.203, 43.76)))  # inside the west triangle of the bow-tie
    assert decision.status is ScreeningStatus.INDUSTRIAL_SITE
    assert decision.reason == "inside known industrial site S-2 '示例热电厂（自相交，需修复）'"


def test_a_point_on_a_polygon_boundary_counts_as_inside(screener: Screener) -> None:
    assert decide(screener, viirs((125.1, 43.71))).status is ScreeningStatus.INDUSTRIAL_SITE


def test_firms_type_marks_static_sources() -> None:
    result = read_firms_csv(DATA / "viirs_snpp_sp_archive.csv")
    decisions = Screener().screen(result.hotspots)
    assert [(d.hotspot.fire_type, d.status) for d in decisions] == [
        (0, ScreeningStatus.ACCEPTED),
        (0, ScreeningStatus.ACCEPTED),
        (2, ScreeningStatus.STATIC_SOURCE),
        (3, ScreeningStatus.STATIC_SOURCE),
    ]
    assert decisions[2].reason == "FIRMS type 2 (other static land source)"


def test_himawari_volcano_marks_a_static_source() -> None:
    cell = HimawariHotspot(
        HimawariSatellite.HIMAWARI_9,
        T0,
        42.0,
        128.06,
        3.68,
        1,
        FireLevel.COLD,
        Reliability.LOW,
        0.87,
        QualityFlag.NORMAL,
        8,
        8,
    )
    (decision,) = Screener().screen([cell])
    assert decision.status is ScreeningStatus.STATIC_SOURCE
    assert "volcano" in decision.reason
    assert decision.hotspot is cell


# --- the persistence map ----------------------------------------------------------------------------------


def history_on_days(days: int, where: tuple[float, float] = FARMLAND, start: date = date(2025, 3, 1)) -> list[Hotspot]:
    """One night detection per day at 17:30 UTC, which is 01:30 the next day in China."""
    return [
        viirs(where, when=datetime(start.year, start.month, start.day, 17, 30, tzinfo=UTC) + timedelta(days=i))
        for i in range(days)
    ]


@pytest.mark.parametrize(("days", "static"), [(9, False), (10, True), (30, True)])
def test_persistence_threshold(days: int, static: bool) -> None:
    screener = Screener(persistence=PersistenceMap.from_hotspots(history_on_days(days)))
    decision = screener.screen([viirs(FARMLAND)])[0]
    assert (decision.status is ScreeningStatus.STATIC_SOURCE) is static
    if static:
        assert f"on {days} distinct local days in the 365 days before 2025-04-23 (threshold 10)" in decision.reason


def test_persistence_counts_local_days_not_utc_days() -> None:
    # 17:30 UTC on the 1st and 05:30 UTC on the 2nd are both the 2nd in China: one day, not two.
    pair = [
        viirs(FARMLAND, when=datetime(2025, 3, 1, 17, 30, tzinfo=UTC)),
        viirs(FARMLAND, when=datetime(2025, 3, 2, 5, 30, tzinfo=UTC)),
    ]
    persistence = PersistenceMap.from_hotspots(pair)
    assert persistence.days_seen(FARMLAND[1], FARMLAND[0], date(2025, 4, 23)) == 1
    utc_days = PersistenceMap.from_hotspots(pair, utc_offset=timedelta(0))
    assert utc_days.days_seen(FARMLAND[1], FARMLAND[0], date(2025, 4, 23)) == 2


def test_persistence_window_excludes_the_day_itself_and_old_days() -> None:
    persistence = PersistenceMap.from_hotspots(history_on_days(10, start=date(2024, 4, 1)))
    # Local days 2024-04-02 .. 2024-04-11; a year later only the last ones are within 365 days.
    assert persistence.days_seen(FARMLAND[1], FARMLAND[0], date(2025, 4, 2)) == 10
    assert persistence.days_seen(FARMLAND[1], FARMLAND[0], date(2025, 4, 7)) == 5
    today = PersistenceMap.from_hotspots([viirs(FARMLAND)])
    assert today.days_seen(FARMLAND[1], FARMLAND[0], date(2025, 4, 23)) == 0


def test_persistence_cells_and_neighbourhood() -> None:
    persistence = PersistenceMap()
    assert persistence.cell(43.91, 125.30) == (4391, 12530)  # not 4390 from 4390.9999999
    assert persistence.cell(-0.005, -0.005) == (-1, -1)
    next_cell = (FARMLAND[0] + 0.01, FARMLAND[1])
    persistence.add(history_on_days(10, where=next_cell))
    assert persistence.days_seen(FARMLAND[1], FARMLAND[0], date(2025, 4, 23)) == 0
    assert persistence.days_seen(FARMLAND[1], FARMLAND[0], date(2025, 4, 23), neighbourhood=1) == 10
    config = ScreeningConfig(static_neighbourhood=1)
    decision = Screener(config, persistence=persistence).screen([viirs(FARMLAND)])[0]
    assert decision.status is ScreeningStatus.STATIC_SOURCE
    assert "3x3 cells" in decision.reason


def test_persistence_map_json_round_trip() -> None:
    persistence = PersistenceMap.from_hotspots(history_on_days(12) + history_on_days(3, where=IN_NO_BURN))
    text = persistence.to_json()
    loaded = PersistenceMap.from_json(text)
    assert loaded == persistence
    assert loaded.to_json() == text  # deterministic
    assert len(loaded) == 2
    document = json.loads(text)
    assert document["format"] == "strawfire.persistence/1"
    assert document["utc_offset_minutes"] == 480
    assert document["cells"]["4380,12500"][:2] == ["2025-03-02", "2025-03-03"]
    for bad in ("{}", '{"format": "other"}', "not json", '{"format": "strawfire.persistence/1"}'):
        with pytest.raises(ValueError):
            PersistenceMap.from_json(bad)


# --- zones and permits ------------------------------------------------------------------------------------


def test_zones_from_geojson() -> None:
    zones = read_zones_geojson(GEO / "zones.geojson")
    assert [(z.zone_id, z.kind) for z in zones] == [
        ("NB-1", ZoneKind.NO_BURN),
        ("R-1", ZoneKind.RESTRICTED),
        ("R-2", ZoneKind.RESTRICTED),
    ]


def test_no_burn_zone_detection_is_a_violation(screener: Screener) -> None:
    decision = decide(screener, viirs(IN_NO_BURN))
    assert decision.status is ScreeningStatus.ACCEPTED
    assert (decision.zone, decision.zone_ids, decision.violation) == (ZoneKind.NO_BURN, ("NB-1",), True)
    assert "in no-burn zone 禁烧区 NB-1 without a valid permit" in decision.reason


def test_a_hole_in_a_zone_is_outside_it(screener: Screener) -> None:
    decision = decide(screener, viirs(IN_HOLE))
    assert (decision.zone, decision.zone_ids, decision.violation) == (None, (), None)
    assert "outside every burn zone" in decision.reason


def test_no_burn_beats_restricted_where_both_contain_the_point(screener: Screener) -> None:
    decision = decide(screener, viirs(IN_BOTH_ZONES))
    assert decision.zone is ZoneKind.NO_BURN
    assert decision.zone_ids == ("NB-1", "R-2")


def test_restricted_zone_without_permit_is_a_violation(screener: Screener) -> None:
    decision = decide(screener, viirs(IN_RESTRICTED))
    assert (decision.status, decision.zone, decision.violation) == (
        ScreeningStatus.ACCEPTED,
        ZoneKind.RESTRICTED,
        True,
    )


def test_valid_permit_makes_it_permitted(screener: Screener) -> None:
    decision = decide(screener, viirs(IN_PERMIT_P1))  # 05:12 UTC = 13:12 China time, inside 08:00-18:00
    assert decision.status is ScreeningStatus.PERMITTED
    assert (decision.permit_id, decision.zone, decision.violation) == ("P-1", ZoneKind.RESTRICTED, False)
    assert "permit P-1 (2025-04-23 00:00 to 2025-04-23 10:00 UTC)" in decision.reason


@pytest.mark.parametrize("when", [datetime(2025, 4, 22, 23, 59, tzinfo=UTC), datetime(2025, 4, 23, 10, 0, tzinfo=UTC)])
def test_permit_outside_its_window_does_not_apply(screener: Screener, when: datetime) -> None:
    decision = decide(screener, viirs(IN_PERMIT_P1, when=when))
    assert decision.status is ScreeningStatus.ACCEPTED
    assert decision.violation is True
    assert decision.permit_id is None
    assert "permit P-1 covers the place but its window" in decision.reason


def test_permits_do_not_apply_in_no_burn_zones_unless_configured(screener: Screener) -> None:
    decision = decide(screener, viirs(IN_PERMIT_P2))
    assert decision.status is ScreeningStatus.ACCEPTED
    assert decision.violation is True
    assert "permits do not apply in a no-burn zone" in decision.reason
    lenient = Screener(
        ScreeningConfig(permits_in_no_burn_zones=True),
        zones=screener.zones,
        permits=screener.permits,
    )
    assert lenient.screen([viirs(IN_PERMIT_P2)])[0].status is ScreeningStatus.PERMITTED


def test_exclusions_win_over_permits(screener: Screener) -> None:
    # A static source inside a permit area is still a static source, with the permit on record.
    persistence = PersistenceMap.from_hotspots(history_on_days(15, where=IN_PERMIT_P1))
    strict = Screener(persistence=persistence, zones=screener.zones, permits=screener.permits)
    decision = strict.screen([viirs(IN_PERMIT_P1)])[0]
    assert decision.status is ScreeningStatus.STATIC_SOURCE
    assert [f.status for f in decision.findings] == [ScreeningStatus.STATIC_SOURCE, ScreeningStatus.PERMITTED]
    assert decision.permit_id is None


# --- records and loaders: bad input ----------------------------------------------------------------------


def test_records_validate_their_geometry_and_times() -> None:
    box = shapely.box(125, 43, 125.1, 43.1)
    with pytest.raises(ValueError, match="tz-aware"):
        BurnPermit("p", box, datetime(2025, 4, 23), T0)
    with pytest.raises(ValueError, match="before end"):
        BurnPermit("p", box, T0, T0)
    with pytest.raises(ValueError, match="Polygon"):
        Site("s", "", shapely.Point(125, 43))
    with pytest.raises(ValueError, match="valid"):
        Zone("z", ZoneKind.NO_BURN, "", Polygon([(0, 0), (1, 1), (1, 0), (0, 1)]))
    with pytest.raises(ValueError, match="zone kind"):
        ZoneKind.parse("maybe")
    assert ZoneKind.parse(" 禁烧 ") is ZoneKind.NO_BURN


def feature(properties: dict[str, Any], geometry: dict[str, Any] | None = None) -> dict[str, Any]:
    square = {"type": "Polygon", "coordinates": [[[125, 43], [125.1, 43], [125.1, 43.1], [125, 43.1], [125, 43]]]}
    return {"type": "Feature", "properties": properties, "geometry": geometry or square}


@pytest.mark.parametrize(
    ("reader", "document", "message"),
    [
        (read_zones_geojson, feature({"name": "x"}), "without a kind"),
        (read_zones_geojson, feature({"kind": "sometimes"}), "zone kind"),
        (
            read_permits_geojson,
            feature({"start": "2025-04-23T08:00", "end": "2025-04-23T18:00+08:00"}),
            "no UTC offset",
        ),
        (read_permits_geojson, feature({"start": "2025-04-23T08:00Z"}), "without end"),
        (read_permits_geojson, feature({"start": "tomorrow", "end": "2025-04-23T18:00Z"}), "not an ISO 8601"),
        (read_permits_geojson, feature({"start": "2025-04-24T08:00Z", "end": "2025-04-23T18:00Z"}), "before end"),
        (read_sites_geojson, feature({}, {"type": "Point", "coordinates": [125, 43]}), "Polygon or MultiPolygon"),
        (
            read_sites_geojson,
            feature(
                {},
                {
                    "type": "Polygon",
                    "coordinates": [[[500000, 4800000], [500100, 4800000], [500100, 4800100], [500000, 4800000]]],
                },
            ),
            "WGS-84",
        ),
        (read_sites_geojson, "not json", "not JSON"),
        (read_sites_geojson, {"type": "FeatureCollection"}, "features"),
    ],
)
def test_bad_geojson_is_reported_with_feature(reader: Any, document: Any, message: str) -> None:
    with pytest.raises(GeometryInputError, match=message) as excinfo:
        reader(document, source_name="layer.geojson")
    assert excinfo.value.source_name == "layer.geojson"
    assert isinstance(excinfo.value, SatelliteError)


def test_naive_hotspot_time_is_refused() -> None:
    class Naive:
        key = "naive"
        latitude = 43.8
        longitude = 125.0
        acq_utc = datetime(2025, 4, 23, 5, 12)
        frp_mw = 3.0

    with pytest.raises(ValueError, match="naive"):
        Screener().screen([Naive()])


# --- real data --------------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_real_ne_china_day_every_hotspot_gets_a_reasoned_decision() -> None:
    hotspots = read_firms_csv(shared_path("firms", "MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv")).hotspots
    jilin_box = shapely.box(121.6, 40.8, 131.3, 46.3)
    screener = Screener(coverage=[jilin_box], persistence=PersistenceMap.from_hotspots(hotspots))
    decisions = screener.screen(hotspots)
    assert len(decisions) == len(hotspots)
    counts = Counter(d.status for d in decisions)
    # Coverage is tested on the pixel footprint (scan x track), not the centre.
    inside = [h for h in hotspots if jilin_box.intersects(h.footprint())]
    assert counts[ScreeningStatus.OUTSIDE_COVERAGE] == len(hotspots) - len(inside)
    # A one-day history can never reach 10 days (and the day itself is not counted): nothing is "static".
    assert counts[ScreeningStatus.STATIC_SOURCE] == 0
    assert counts[ScreeningStatus.ACCEPTED] == len(inside)  # the low-confidence rule is off by default
    low = sum(h.confidence < 0.30 for h in inside)  # MODIS < 30 %: the low class, held when the rule is on
    assert low > 0
    held = Counter(
        d.status for d in Screener(ScreeningConfig(min_confidence=0.30), coverage=[jilin_box]).screen(hotspots)
    )
    assert held[ScreeningStatus.LOW_CONFIDENCE] == low
    assert all(d.reason for d in decisions)
