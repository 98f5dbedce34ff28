"""The Himawari-8/9 AHI L2 wildfire reader: both header spellings, codes, keys, malformed rows, whole-file errors."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyproj import Geod

from satellite.errors import HimawariFormatError, SatelliteError
from satellite.himawari import (
    COLUMNS,
    RELIABILITY_CONFIDENCE,
    FireLevel,
    HimawariHotspot,
    HimawariReadResult,
    HimawariSatellite,
    QualityFlag,
    Reliability,
    in_full_disk,
    parse_himawari_filename,
    read_himawari_csv,
)
from satellite.hotspot import VIIRS_CONFIDENCE, ConfidenceClass

DATA = Path(__file__).parent / "data" / "himawari"
H09 = "H09_20250423_0420_L2WLF010_FLDK.06001_06001.csv"
H08 = "H08_20221101_0750_L2WLF010_FLDK.06001_06001.csv"
TIMES = "# 2025  4 23  4 20 UTC  2025  4 23  4 52 UTC"
HEADER = "# ID,Year,Month,Day,Time(UTC),Lat,Lon,Area(km^2),Volcano,Level,Reliability,FRP(Wm^-2),QF,Hot(ID)"
README_HEADER = "# ID,Date,Lat,Lon,Area,Volcano,Level,Reliability,FRP,QF,HC"
ROW = "1,2025,4,23,422,45.12,124.82,3.50,0,2,3,4.21,0,2"


def text(*rows: str, header: str = HEADER, times: str = TIMES) -> str:
    return "\n".join([times, header, *rows]) + "\n"


def read_text(body: str) -> HimawariReadResult:
    return read_himawari_csv(body, source_name=H09)


# --- the fixtures ---------------------------------------------------------------------------------------


def test_published_header_spelling_reads_every_row() -> None:
    result = read_himawari_csv(DATA / H09)
    assert result.rejected == []
    assert len(result.hotspots) == 10
    assert result.source_name == H09
    assert result.satellite is HimawariSatellite.HIMAWARI_9
    assert result.timeline_utc == datetime(2025, 4, 23, 4, 20, tzinfo=UTC)
    assert result.processed_utc == datetime(2025, 4, 23, 4, 52, tzinfo=UTC)
    assert result.columns == COLUMNS
    first = result.hotspots[0]
    assert first == HimawariHotspot(
        satellite=HimawariSatellite.HIMAWARI_9,
        acq_utc=datetime(2025, 4, 23, 4, 22, tzinfo=UTC),
        latitude=45.12,
        longitude=124.82,
        area_km2=3.50,
        volcano=0,
        level=FireLevel.SMOULDERING,
        reliability=Reliability.NORMAL,
        frp_mw=4.21,
        qf=QualityFlag.NORMAL,
        grid_id=1,
        hot_centre_id=2,
        timeline_utc=datetime(2025, 4, 23, 4, 20, tzinfo=UTC),
    )


def test_codes_and_quirks_of_the_fixture() -> None:
    hotspots = read_himawari_csv(DATA / H09).hotspots
    by_id = {h.grid_id: h for h in hotspots}
    assert by_id[6].frp_mw == pytest.approx(0.64)  # published as ".64"
    assert by_id[6].level is FireLevel.COLD
    assert by_id[6].reliability is Reliability.LOW
    assert by_id[4].qf is QualityFlag.SATURATED
    assert by_id[7].qf is QualityFlag.LOW_CONFIDENCE
    assert by_id[8].volcano == 1
    assert {h.hot_centre_id for h in hotspots if h.grid_id in (1, 2, 3)} == {2}
    assert by_id[10].latitude == -17.12
    assert by_id[10].acq_utc.minute == 28
    assert all(h.instrument == "AHI" for h in hotspots)


def test_readme_header_spelling_with_date_and_hc() -> None:
    result = read_himawari_csv(DATA / H08)
    assert result.rejected == []
    assert result.columns == COLUMNS  # "Date" expanded to year, month, day, time
    assert result.satellite is HimawariSatellite.HIMAWARI_8
    assert [h.acq_utc for h in result.hotspots] == [datetime(2022, 11, 1, 7, 52, tzinfo=UTC)] * 3
    assert [h.hot_centre_id for h in result.hotspots] == [1, 1, 3]


def test_columns_are_found_by_name_not_position() -> None:
    original = (DATA / H09).read_text(encoding="utf-8").splitlines()
    header = original[1].removeprefix("# ").split(",")
    order = [11, 0, 6, 5, 1, 2, 3, 4, 13, 12, 10, 9, 8, 7]  # FRP first, lat/lon swapped, ...
    lines = [original[0], "# " + ",".join(header[i] for i in order)]
    lines += [",".join(row.split(",")[i] for i in order) for row in original[2:]]
    shuffled = read_himawari_csv("\n".join(lines), source_name=H09)
    assert shuffled.rejected == []
    assert shuffled.hotspots == read_himawari_csv(DATA / H09).hotspots


def test_unknown_extra_columns_are_ignored() -> None:
    result = read_text(text(ROW + ",xyz", header=HEADER + ",Comment"))
    assert result.rejected == []
    assert len(result.hotspots) == 1


def test_bom_crlf_and_missing_final_newline_read_the_same() -> None:
    plain = (DATA / H09).read_bytes()
    variant = b"\xef\xbb\xbf" + plain.replace(b"\n", b"\r\n").rstrip(b"\r\n")
    assert read_himawari_csv(variant, source_name=H09).hotspots == read_himawari_csv(DATA / H09).hotspots
    assert read_himawari_csv(io.BytesIO(plain), source_name=H09).hotspots == read_himawari_csv(DATA / H09).hotspots


def test_header_only_is_an_empty_result() -> None:
    result = read_text(text())
    assert result.hotspots == []
    assert result.rejected == []


# --- normalised record ----------------------------------------------------------------------------------


def test_reliability_maps_onto_the_common_confidence_scale() -> None:
    assert RELIABILITY_CONFIDENCE[Reliability.LOW] == VIIRS_CONFIDENCE[ConfidenceClass.LOW]
    assert RELIABILITY_CONFIDENCE[Reliability.NORMAL] == VIIRS_CONFIDENCE[ConfidenceClass.NOMINAL]
    assert RELIABILITY_CONFIDENCE[Reliability.HIGH] == VIIRS_CONFIDENCE[ConfidenceClass.HIGH]
    hotspots = read_himawari_csv(DATA / H09).hotspots
    assert [(h.confidence_raw, h.confidence) for h in hotspots[:2]] == [("3", 0.55), ("5", 0.90)]


def test_key_is_stable_and_names_the_platform() -> None:
    hotspot = read_himawari_csv(DATA / H09).hotspots[0]
    assert hotspot.key == "AHI|Himawari-9|L2WLF|20250423T0422Z|+45120|+124820"
    unnamed = read_himawari_csv((DATA / H09).read_text(encoding="utf-8"))
    assert unnamed.satellite is None
    assert unnamed.hotspots[0].key == "AHI|Himawari|L2WLF|20250423T0422Z|+45120|+124820"
    named = read_himawari_csv((DATA / H09).read_text(encoding="utf-8"), satellite="Himawari-9")
    assert named.hotspots[0].key == hotspot.key
    keys = [h.key for h in read_himawari_csv(DATA / H09).hotspots]
    assert len(set(keys)) == len(keys)


def test_footprint_is_the_grid_cell_and_matches_the_area_column() -> None:
    geod = Geod(ellps="WGS84")
    for hotspot in read_himawari_csv(DATA / H09).hotspots:
        cell = hotspot.footprint()
        assert cell.centroid.x == pytest.approx(hotspot.longitude)
        assert cell.bounds[2] - cell.bounds[0] == pytest.approx(0.02)
        area_km2 = abs(geod.geometry_area_perimeter(cell)[0]) / 1e6
        assert area_km2 == pytest.approx(hotspot.area_km2, rel=0.01)
        assert hotspot.scan_km * hotspot.track_km == pytest.approx(hotspot.area_km2, rel=0.01)


def test_record_constructor_validates() -> None:
    good = read_himawari_csv(DATA / H09).hotspots[0]
    assert HimawariHotspot(*good) == good
    with pytest.raises(ValueError, match="full disk"):
        HimawariHotspot(*good._replace(longitude=20.0))
    with pytest.raises(ValueError, match="tz-aware"):
        HimawariHotspot(*good._replace(acq_utc=datetime(2025, 4, 23, 4, 22)))
    with pytest.raises(ValueError):
        HimawariHotspot(*good._replace(reliability=2))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lat", "lon", "inside"),
    [
        (44.0, 125.0, True),
        (60.0, 80.0, True),
        (-60.0, -160.0, True),
        (0.0, 179.99, True),
        (0.0, -170.0, True),
        (61.0, 125.0, False),
        (0.0, 79.9, False),
        (0.0, -159.9, False),
        (0.0, 20.0, False),
    ],
)
def test_full_disk_coverage(lat: float, lon: float, inside: bool) -> None:
    assert in_full_disk(lat, lon) is inside


# --- file names -----------------------------------------------------------------------------------------


def test_file_name_parsing() -> None:
    parsed = parse_himawari_filename("/data/ptree/" + H09)
    assert parsed is not None
    assert parsed.satellite is HimawariSatellite.HIMAWARI_9
    assert parsed.timeline_utc == datetime(2025, 4, 23, 4, 20, tzinfo=UTC)
    assert (parsed.version, parsed.pixels, parsed.lines) == ("010", 6001, 6001)
    assert parse_himawari_filename("H10_20250423_0420_L2WLF010_FLDK.06001_06001.csv") is None
    assert parse_himawari_filename("H09_20251323_0420_L2WLF010_FLDK.06001_06001.csv") is None
    assert parse_himawari_filename("fires.csv") is None


# --- malformed rows: reported with line and field, skipped ----------------------------------------------


@pytest.mark.parametrize(
    ("row", "field", "reason"),
    [
        ("1,2025,4,23,422,45.12,124.82,3.50,0,2,3,4.21,0", None, "expected 14 fields, found 13"),
        ("1,2025,4,23,422,45.12,124.82,3.50,0,2,2,4.21,0,2", "reliability", "1/3/5"),
        ("1,2025,4,23,422,45.12,124.82,3.50,0,4,3,4.21,0,2", "level", "1/2/3"),
        ("1,2025,4,23,422,45.12,124.82,3.50,0,2,3,4.21,3,2", "qf", "0/1/2"),
        ("1,2025,4,23,422,4x.12,124.82,3.50,0,2,3,4.21,0,2", "lat", "not a number"),
        ("1,2025,4,23,422,45.12,20.00,3.50,0,2,3,4.21,0,2", "lon", "full disk"),
        ("1,2025,2,30,422,45.12,124.82,3.50,0,2,3,4.21,0,2", "day", "calendar date"),
        ("1,2025,4,23,2460,45.12,124.82,3.50,0,2,3,4.21,0,2", "time", "HHMM"),
        ("1,2025,4,23,435,45.12,124.82,3.50,0,2,3,4.21,0,2", "time", "outside this file's observation"),
        ("1,2025,4,23,422,45.12,124.82,0,0,2,3,4.21,0,2", "area", "grid-cell area"),
        ("1,2025,4,23,422,45.12,124.82,3.50,0,2,3,-1,0,2", "frp", "outside"),
        ("1,2025,4,23,422,45.12,124.82,3.50,0,2,3,,0,2", "frp", "empty"),
        ("1,2025,4,23,422,45.12,124.82,3.50,0,2,3,nan,0,2", "frp", "outside"),
        ("-1,2025,4,23,422,45.12,124.82,3.50,0,2,3,4.21,0,2", "id", "non-negative integer"),
    ],
)
def test_malformed_row_is_reported_with_line_and_field(row: str, field: str | None, reason: str) -> None:
    result = read_text(text(ROW, row, ROW.replace("45.12", "45.14")))
    assert [h.latitude for h in result.hotspots] == [45.12, 45.14]
    (rejected,) = result.rejected
    assert (rejected.source_name, rejected.line, rejected.field) == (H09, 4, field)
    assert reason in rejected.reason
    assert rejected.text == row


def test_first_bad_column_in_header_order_is_reported() -> None:
    result = read_text(text("1,2025,4,23,422,4x.12,124.82,3.50,0,9,9,4.21,0,2"))
    assert result.rejected[0].field == "lat"


def test_rows_without_timeline_are_not_time_checked() -> None:
    body = text("1,2025,4,23,1234,45.12,124.82,3.50,0,2,3,4.21,0,2", times="# no times here")
    result = read_himawari_csv(body)  # no file name either
    assert result.timeline_utc is None
    assert result.hotspots[0].acq_utc == datetime(2025, 4, 23, 12, 34, tzinfo=UTC)


# --- whole-file errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message", "line"),
    [
        ("", "empty input", None),
        ("\n \n", "empty input", None),
        (ROW + "\n", "no Himawari column header", 1),
        (TIMES + "\n" + HEADER.replace(",QF", "") + "\n", "missing required column(s): qf", 2),
        (TIMES + "\n" + HEADER + ",Lat\n", "duplicated column(s): lat", 2),
        (
            TIMES + "\n# ID,Date,Lat,Lon,Area,Volcano,Level,Reliability,FRP,QF,HC,Year\n",
            "duplicated column(s): year",
            2,
        ),
        ("# 2025 13 23  4 20 UTC\n" + HEADER + "\n", "invalid time in header", 1),
        ("# 2025  4 23  4 30 UTC\n" + HEADER + "\n", "differs from the file name", 1),
    ],
)
def test_unusable_files_raise_with_location(body: str, message: str, line: int | None) -> None:
    with pytest.raises(HimawariFormatError) as excinfo:
        read_text(body)
    assert message in str(excinfo.value)
    assert excinfo.value.line == line
    assert excinfo.value.source_name == H09
    assert isinstance(excinfo.value, SatelliteError)


def test_undecodable_bytes_and_satellite_conflict() -> None:
    with pytest.raises(HimawariFormatError, match="not UTF-8"):
        read_himawari_csv(text(ROW).encode() + b"\xff\xfe", source_name="x.csv")
    with pytest.raises(HimawariFormatError, match="file name says Himawari-9"):
        read_himawari_csv(DATA / H09, satellite=HimawariSatellite.HIMAWARI_8)
