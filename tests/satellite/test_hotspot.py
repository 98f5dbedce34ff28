"""The normalised record and the FIRMS value vocabulary: times, satellites, confidence, keys, footprints."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pyproj import Geod

from satellite.hotspot import (
    VIIRS_CONFIDENCE,
    ConfidenceClass,
    DayNight,
    Hotspot,
    Instrument,
    Product,
    Satellite,
    acq_datetime,
    confidence_class,
    footprint_polygons,
    is_nrt_version,
    normalise_confidence,
    parse_acq_date,
    parse_acq_time,
)

GEOD = Geod(ellps="WGS84")


def make(**overrides: Any) -> Hotspot:
    fields: dict[str, Any] = {
        "product": Product.VIIRS_SNPP_NRT,
        "satellite": Satellite.SNPP,
        "instrument": Instrument.VIIRS,
        "acq_utc": datetime(2025, 4, 23, 5, 12, tzinfo=UTC),
        "latitude": 43.91234,
        "longitude": 125.30451,
        "scan_km": 0.39,
        "track_km": 0.36,
        "bright_mir_k": 333.12,
        "bright_tir_k": 291.45,
        "frp_mw": 4.12,
        "confidence": 0.55,
        "confidence_raw": "n",
        "daynight": DayNight.DAY,
        "version": "2.0NRT",
    }
    fields.update(overrides)
    return Hotspot(**fields)


# --- acq_date / acq_time -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("5", (0, 5)),
        ("45", (0, 45)),
        ("123", (1, 23)),
        ("659", (6, 59)),
        ("0009", (0, 9)),
        ("9", (0, 9)),
        ("1715", (17, 15)),
        ("0", (0, 0)),
        ("2359", (23, 59)),
        (" 512 ", (5, 12)),
    ],
)
def test_acq_time_is_unpadded_hhmm(raw: str, expected: tuple[int, int]) -> None:
    assert parse_acq_time(raw) == expected


@pytest.mark.parametrize("raw", ["", " ", "2400", "1260", "99", "12345", "-5", "5a", "12:30", "\u0663", "1.5"])
def test_acq_time_rejects(raw: str) -> None:
    with pytest.raises(ValueError, match="acq_time"):
        parse_acq_time(raw)


@pytest.mark.parametrize("raw", ["2025-02-30", "20250423", "2025/04/23", "2025-4-23", "2025-04-23T", "", "abcd-ef-gh"])
def test_acq_date_is_strict(raw: str) -> None:
    with pytest.raises(ValueError, match="acq_date"):
        parse_acq_date(raw)


def test_acq_datetime_is_utc() -> None:
    stamp = acq_datetime("2025-04-22", "1748")
    assert stamp == datetime(2025, 4, 22, 17, 48, tzinfo=UTC)
    assert stamp.utcoffset() == timedelta(0)
    # A 01:48 Changchun-local night pass is on the previous UTC date (reference §3.6).
    assert stamp.astimezone(timezone(timedelta(hours=8))).date().isoformat() == "2025-04-23"


# --- satellites and products ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("T", Satellite.TERRA),
        ("Terra", Satellite.TERRA),
        ("terra", Satellite.TERRA),
        ("A", Satellite.AQUA),
        ("Aqua", Satellite.AQUA),
        ("N", Satellite.SNPP),
        ("NPP", Satellite.SNPP),
        ("Suomi NPP", Satellite.SNPP),
        ("Suomi-NPP", Satellite.SNPP),
        ("S-NPP", Satellite.SNPP),
        ("N20", Satellite.NOAA20),
        ("NOAA-20", Satellite.NOAA20),
        ("NOAA 20", Satellite.NOAA20),
        ("1", Satellite.NOAA20),
        ("J1", Satellite.NOAA20),
        ("N21", Satellite.NOAA21),
        ("NOAA-21", Satellite.NOAA21),
        ("2", Satellite.NOAA21),
        (" n20 ", Satellite.NOAA20),
    ],
)
def test_satellite_forms(raw: str, expected: Satellite) -> None:
    assert Satellite.parse(raw) is expected


@pytest.mark.parametrize("raw", ["", "3", "N22", "X", "Landsat", "TA"])
def test_satellite_unknown(raw: str) -> None:
    with pytest.raises(ValueError, match="unknown satellite"):
        Satellite.parse(raw)


def test_satellite_instrument() -> None:
    assert {s for s in Satellite if s.instrument is Instrument.MODIS} == {Satellite.TERRA, Satellite.AQUA}


def test_product_properties() -> None:
    assert Product.MODIS_NRT.instrument is Instrument.MODIS
    assert Product.VIIRS_NOAA21_NRT.instrument is Instrument.VIIRS
    assert Product.MODIS_NRT.is_nrt
    assert not Product.MODIS_SP.is_nrt
    assert Product.MODIS_SP.satellites == {Satellite.TERRA, Satellite.AQUA}
    assert Product.for_detection(Satellite.NOAA20, nrt=True) is Product.VIIRS_NOAA20_NRT
    assert Product.for_detection(Satellite.SNPP, nrt=False) is Product.VIIRS_SNPP_SP
    assert Product.for_detection(Satellite.AQUA, nrt=False) is Product.MODIS_SP
    # Every product is reachable from exactly its satellites and level.
    for product in Product:
        for sat in product.satellites:
            assert Product.for_detection(sat, nrt=product.is_nrt) is product


@pytest.mark.parametrize(
    ("version", "nrt"),
    [
        ("6.1NRT", True),
        ("2.0NRT", True),
        ("2.0URT", True),
        ("2.0RT", True),
        ("6.1", False),
        ("6.03", False),
        ("2", False),
        ("1", False),
        ("61", False),
    ],
)
def test_nrt_version(version: str, nrt: bool) -> None:
    assert is_nrt_version(version) is nrt


# --- confidence -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "instrument", "value"),
    [
        ("0", Instrument.MODIS, 0.0),
        ("55", Instrument.MODIS, 0.55),
        ("100", Instrument.MODIS, 1.0),
        ("l", Instrument.VIIRS, VIIRS_CONFIDENCE[ConfidenceClass.LOW]),
        ("n", Instrument.VIIRS, VIIRS_CONFIDENCE[ConfidenceClass.NOMINAL]),
        ("h", Instrument.VIIRS, VIIRS_CONFIDENCE[ConfidenceClass.HIGH]),
        ("H", Instrument.VIIRS, VIIRS_CONFIDENCE[ConfidenceClass.HIGH]),
        ("low", Instrument.VIIRS, VIIRS_CONFIDENCE[ConfidenceClass.LOW]),
        ("nominal", Instrument.VIIRS, VIIRS_CONFIDENCE[ConfidenceClass.NOMINAL]),
        ("high", Instrument.VIIRS, VIIRS_CONFIDENCE[ConfidenceClass.HIGH]),
    ],
)
def test_confidence_normalised(raw: str, instrument: Instrument, value: float) -> None:
    assert normalise_confidence(raw, instrument) == pytest.approx(value)


@pytest.mark.parametrize(
    ("raw", "instrument"),
    [
        ("101", Instrument.MODIS),
        ("-1", Instrument.MODIS),
        ("55.5", Instrument.MODIS),
        ("h", Instrument.MODIS),
        ("", Instrument.MODIS),
        ("55", Instrument.VIIRS),
        ("x", Instrument.VIIRS),
        ("", Instrument.VIIRS),
    ],
)
def test_confidence_rejects(raw: str, instrument: Instrument) -> None:
    with pytest.raises(ValueError, match="confidence"):
        normalise_confidence(raw, instrument)


def test_viirs_confidence_round_trips_through_class() -> None:
    for cls, value in VIIRS_CONFIDENCE.items():
        assert confidence_class(value) is cls
    assert 0.0 < VIIRS_CONFIDENCE[ConfidenceClass.LOW] < VIIRS_CONFIDENCE[ConfidenceClass.NOMINAL]
    assert VIIRS_CONFIDENCE[ConfidenceClass.NOMINAL] < VIIRS_CONFIDENCE[ConfidenceClass.HIGH] <= 1.0


@pytest.mark.parametrize(("pct", "cls"), [(0, "low"), (29, "low"), (30, "nominal"), (79, "nominal"), (80, "high")])
def test_modis_class_boundaries(pct: int, cls: str) -> None:
    assert confidence_class(normalise_confidence(str(pct), Instrument.MODIS)) == cls


def test_one_threshold_means_one_class_for_both_instruments() -> None:
    """``confidence >= 0.3`` must drop exactly the *low* class, whichever instrument reported it."""
    modis = {pct: normalise_confidence(str(pct), Instrument.MODIS) for pct in range(101)}
    for pct, value in modis.items():
        assert (value >= 0.3) == (pct >= 30)
        assert (value >= 0.8) == (pct >= 80)
    for code, cls in (("l", "low"), ("n", "nominal"), ("h", "high")):
        value = normalise_confidence(code, Instrument.VIIRS)
        assert (value >= 0.3) == (cls != "low")
        assert (value >= 0.8) == (cls == "high")


def test_confidence_class_rejects_negative() -> None:
    with pytest.raises(ValueError, match="below 0"):
        confidence_class(-0.01)


# --- the record -----------------------------------------------------------------------------------------


def test_record_is_immutable_hashable_and_picklable() -> None:
    h = make()
    with pytest.raises(AttributeError):
        h.latitude = 1.0  # type: ignore[misc]
    assert hash(h) == hash(make())
    assert pickle.loads(pickle.dumps(h)) == h
    assert h.is_nrt
    assert h.confidence_class is ConfidenceClass.NOMINAL
    assert repr(h).startswith("Hotspot(product=")


def test_record_converts_aware_times_to_utc() -> None:
    local = datetime(2025, 4, 23, 13, 12, tzinfo=timezone(timedelta(hours=8)))
    h = make(acq_utc=local)
    assert h.acq_utc == datetime(2025, 4, 23, 5, 12, tzinfo=UTC)
    assert h.acq_utc.utcoffset() == timedelta(0)


def test_record_coerces_enum_strings() -> None:
    h = make(product="VIIRS_SNPP_NRT", satellite="S-NPP", instrument="VIIRS", daynight="D")
    assert h == make()
    assert h.product is Product.VIIRS_SNPP_NRT


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"acq_utc": datetime(2025, 4, 23, 5, 12)}, "tz-aware"),
        ({"latitude": 90.5}, "latitude"),
        ({"longitude": -180.01}, "longitude"),
        ({"latitude": float("nan")}, "latitude"),
        ({"scan_km": 0.0}, "scan_km"),
        ({"bright_mir_k": 25.0}, "bright_mir_k"),
        ({"frp_mw": -1.0}, "frp_mw"),
        ({"confidence": 1.5}, "confidence"),
        ({"satellite": Satellite.TERRA}, "carries MODIS"),
        ({"satellite": Satellite.NOAA20}, "does not contain"),
        ({"version": "2"}, "processing level"),
        ({"fire_type": -1}, "fire_type"),
    ],
)
def test_record_validates(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**overrides)


def test_frp_may_be_absent() -> None:
    assert make(frp_mw=None).frp_mw is None


# --- natural key ----------------------------------------------------------------------------------------


def test_key_format() -> None:
    assert make().key == "VIIRS|S-NPP|NRT|20250423T0512Z|+4391234|+12530451"
    assert make(latitude=-0.0, longitude=0.0).key == make(latitude=0.0, longitude=-0.0).key


def test_key_ignores_version_within_a_level_but_not_the_level() -> None:
    nrt = make()
    assert make(version="2.0URT").key == nrt.key
    assert make(version="2.1NRT", frp_mw=9.9, confidence=0.9, confidence_raw="h").key == nrt.key
    sp = make(product=Product.VIIRS_SNPP_SP, version="2")
    assert sp.key != nrt.key
    assert sp.key.replace("|SP|", "|NRT|") == nrt.key


def test_key_separates_neighbouring_pixels_and_times() -> None:
    base = make()
    assert make(latitude=43.91235).key != base.key
    assert make(longitude=125.30452).key != base.key
    assert make(acq_utc=datetime(2025, 4, 23, 5, 13, tzinfo=UTC)).key != base.key
    assert make(satellite=Satellite.NOAA20, product=Product.VIIRS_NOAA20_NRT).key != base.key
    # Below the published precision (5 decimals) two values are one detection.
    assert make(latitude=43.912341).key == base.key


# --- footprints -----------------------------------------------------------------------------------------


def side_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    return float(GEOD.inv(lon1, lat1, lon2, lat2)[2]) / 1000.0


@pytest.mark.parametrize(
    ("lat", "lon", "scan", "track"),
    [(43.91234, 125.30451, 0.39, 0.36), (44.5, 125.6, 0.78, 0.62), (-17.4, -39.35, 4.8, 2.0), (0.0, 0.0, 1.0, 1.0)],
)
def test_footprint_dimensions(lat: float, lon: float, scan: float, track: float) -> None:
    poly = make(latitude=lat, longitude=lon, scan_km=scan, track_km=track).footprint()
    assert poly.is_valid
    coords = list(poly.exterior.coords)
    assert len(coords) == 5
    sw, se, ne, nw = coords[:4]
    # Scan runs east-west, track north-south (the documented orientation assumption).
    assert side_km(*sw, *se) == pytest.approx(scan, rel=1e-3)
    assert side_km(*nw, *ne) == pytest.approx(scan, rel=1e-3)
    assert side_km(*sw, *nw) == pytest.approx(track, rel=1e-3)
    assert sw[1] == pytest.approx(se[1], abs=1e-6)
    assert nw[1] == pytest.approx(ne[1], abs=1e-6)
    area_m2, _ = GEOD.geometry_area_perimeter(poly)
    assert area_m2 == pytest.approx(scan * track * 1e6, rel=2e-3)  # counter-clockwise: positive area
    # Centred on the point to within a metre (a planar lon/lat centroid is not exactly the geodesic one).
    assert poly.centroid.x == pytest.approx(lon, abs=1e-5)
    assert poly.centroid.y == pytest.approx(lat, abs=1e-5)


def test_footprint_across_the_antimeridian_stays_valid() -> None:
    poly = make(latitude=65.0, longitude=179.999, scan_km=0.8, track_km=0.6).footprint()
    assert poly.is_valid
    minx, _, maxx, _ = poly.bounds
    assert minx < 180.0 < maxx
    assert maxx - minx < 0.05
    area_m2, _ = GEOD.geometry_area_perimeter(poly)
    assert area_m2 == pytest.approx(0.8 * 0.6 * 1e6, rel=2e-3)


def test_footprint_polygons_vectorised_matches_single() -> None:
    items = [make(), make(latitude=45.0, scan_km=0.7), make(longitude=126.0, track_km=0.5)]
    many = footprint_polygons(items)
    assert [p.wkb for p in many] == [h.footprint().wkb for h in items]
    assert footprint_polygons([]) == []
