"""The FIRMS CSV reader: real MODIS files, VIIRS layouts, keys across windows, malformed input, errors."""

from __future__ import annotations

import csv
import gc
import io
import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from satellite import firms
from satellite.errors import FirmsEmptyError, FirmsFormatError, SatelliteError
from satellite.firms import FirmsReadResult, RejectedRow, read_firms_csv
from satellite.hotspot import (
    VIIRS_CONFIDENCE,
    ConfidenceClass,
    DayNight,
    FireType,
    Hotspot,
    Instrument,
    Product,
    Satellite,
)
from tests.conftest import shared_path

DATA = Path(__file__).parent / "data"
FULL = "MODIS_C6_1_Global_24h_2025-04-23_full.csv"
NE_CHINA = "MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv"

VIIRS_HEADER = (
    "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,"
    "bright_ti5,frp,daynight"
)
GOOD_ROW = "43.91234,125.30451,333.12,0.39,0.36,2025-04-23,512,N,VIIRS,n,2.0NRT,291.45,4.12,D"


def read(name: str, **kwargs: object) -> FirmsReadResult:
    return read_firms_csv(DATA / name, **kwargs)  # type: ignore[arg-type]


def keys(result: FirmsReadResult) -> list[str]:
    return [h.key for h in result.hotspots]


def where(result: FirmsReadResult) -> list[tuple[int, str | None]]:
    return [(r.line, r.field) for r in result.rejected]


# --- real MODIS data ------------------------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.parametrize(("name", "rows"), [(FULL, 16_017), (NE_CHINA, 484)])
def test_real_modis_files_parse_completely(name: str, rows: int) -> None:
    path = shared_path("firms", name)
    result = read_firms_csv(path)
    assert result.rejected == []
    assert len(result.hotspots) == rows
    assert result.source_name == name
    assert result.instrument is Instrument.MODIS
    assert {h.product for h in result.hotspots} == {Product.MODIS_NRT}
    # Every detection has its own key: the key is fine enough for a real global day.
    assert len(set(keys(result))) == rows


@pytest.mark.shared_data
def test_real_modis_values_match_an_independent_reading() -> None:
    """Compare every field with a plain csv.DictReader pass over the same file."""
    path = shared_path("firms", FULL)
    result = read_firms_csv(path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(result.hotspots)
    sat = {"T": Satellite.TERRA, "A": Satellite.AQUA}
    for row, h in zip(rows, result.hotspots, strict=True):
        assert h.latitude == float(row["latitude"])
        assert h.longitude == float(row["longitude"])
        assert h.bright_mir_k == float(row["brightness"])
        assert h.bright_tir_k == float(row["bright_t31"])
        assert (h.scan_km, h.track_km) == (float(row["scan"]), float(row["track"]))
        assert h.frp_mw == float(row["frp"])
        assert h.satellite is sat[row["satellite"]]
        assert h.confidence == int(row["confidence"]) / 100
        assert h.confidence_raw == row["confidence"]
        assert h.daynight.value == row["daynight"]
        assert h.version == row["version"] == "6.1NRT"
        t = int(row["acq_time"])
        assert h.acq_utc == datetime.fromisoformat(row["acq_date"]).replace(hour=t // 100, minute=t % 100, tzinfo=UTC)
        assert h.fire_type is None
        assert h.country_id is None
    assert Counter(h.satellite for h in result.hotspots) == {Satellite.AQUA: 10_854, Satellite.TERRA: 5_163}


@pytest.mark.shared_data
def test_real_records_pass_the_validating_constructor() -> None:
    """The reader's column-wise checks and Hotspot.__new__'s per-record checks agree on real data."""
    result = read_firms_csv(shared_path("firms", NE_CHINA))
    assert [Hotspot(*h) for h in result.hotspots] == result.hotspots


@pytest.mark.shared_data
def test_ne_china_cut_is_a_subset_by_key() -> None:
    """The bbox file is a cut of the global file: re-ingesting it must add nothing."""
    full = read_firms_csv(shared_path("firms", FULL))
    cut = read_firms_csv(shared_path("firms", NE_CHINA))
    by_key = {h.key: h for h in full.hotspots}
    assert all(by_key[h.key] == h for h in cut.hotspots)


@pytest.mark.shared_data
def test_real_file_column_order_does_not_matter() -> None:
    text = shared_path("firms", NE_CHINA).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    order = list(range(len(rows[0])))
    random.Random(7).shuffle(order)
    shuffled = "\n".join(",".join(row[i] for i in order) for row in rows) + "\n"
    assert read_firms_csv(shuffled).hotspots == read_firms_csv(text).hotspots


@pytest.mark.shared_data
def test_source_kinds_give_the_same_records() -> None:
    path = shared_path("firms", NE_CHINA)
    data = path.read_bytes()
    expected = read_firms_csv(path).hotspots
    assert read_firms_csv(data).hotspots == expected
    assert read_firms_csv(data.decode()).hotspots == expected
    assert read_firms_csv(io.BytesIO(data)).hotspots == expected
    with path.open(encoding="utf-8", newline="") as handle:
        assert read_firms_csv(handle).hotspots == expected


@pytest.mark.shared_data
def test_small_chunks_give_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    data = shared_path("firms", NE_CHINA).read_bytes()
    expected = read_firms_csv(data)
    monkeypatch.setattr(firms, "_CHUNK_LINES", 37)
    assert read_firms_csv(data) == expected


# --- VIIRS layouts --------------------------------------------------------------------------------------


def test_viirs_area_nrt() -> None:
    result = read("viirs_snpp_nrt_area.csv")
    assert result.rejected == []
    assert result.instrument is Instrument.VIIRS
    assert len(result.hotspots) == 6
    first, second = result.hotspots[:2]
    assert first.product is Product.VIIRS_SNPP_NRT
    assert first.satellite is Satellite.SNPP
    assert first.acq_utc == datetime(2025, 4, 22, 17, 48, tzinfo=UTC)
    assert first.daynight is DayNight.NIGHT
    assert second.acq_utc == datetime(2025, 4, 23, 5, 12, tzinfo=UTC)
    assert (second.bright_mir_k, second.bright_tir_k, second.frp_mw) == (333.12, 291.45, 4.12)
    assert (second.scan_km, second.track_km) == (0.39, 0.36)
    assert [h.confidence_raw for h in result.hotspots] == ["n", "n", "n", "h", "l", "n"]
    assert [h.confidence_class for h in result.hotspots] == ["nominal"] * 3 + ["high", "low", "nominal"]
    assert result.hotspots[3].confidence == VIIRS_CONFIDENCE[ConfidenceClass.HIGH]
    assert all(h.version == "2.0NRT" and h.is_nrt and h.fire_type is None for h in result.hotspots)


def test_viirs_unpadded_times() -> None:
    result = read("viirs_noaa21_nrt_world.csv")
    assert result.rejected == []
    assert [h.acq_utc.strftime("%H:%M") for h in result.hotspots] == ["00:05", "00:45", "01:23", "04:58"]
    assert {h.satellite for h in result.hotspots} == {Satellite.NOAA21}
    assert {h.product for h in result.hotspots} == {Product.VIIRS_NOAA21_NRT}
    assert [h.frp_mw for h in result.hotspots][-1] is None  # empty frp is absent, not zero


def test_viirs_standard_processing_keeps_type() -> None:
    result = read("viirs_snpp_sp_archive.csv")
    assert result.rejected == []
    assert [h.fire_type for h in result.hotspots] == [0, 0, 2, 3]
    assert result.hotspots[2].fire_type == FireType.OTHER_STATIC_LAND
    assert {h.product for h in result.hotspots} == {Product.VIIRS_SNPP_SP}
    assert not any(h.is_nrt for h in result.hotspots)


def test_standard_processing_does_not_overwrite_nrt() -> None:
    """The same detection from NRT and SP files: different keys that differ only in the level."""
    nrt = {k.replace("|NRT|", "|*|") for k in keys(read("viirs_snpp_nrt_area.csv"))}
    sp = {k.replace("|SP|", "|*|") for k in keys(read("viirs_snpp_sp_archive.csv"))}
    assert len(nrt & sp) == 2
    assert not set(keys(read("viirs_snpp_nrt_area.csv"))) & set(keys(read("viirs_snpp_sp_archive.csv")))


def test_country_api_leading_column() -> None:
    result = read("viirs_noaa20_nrt_country_chn.csv")
    assert result.rejected == []
    assert result.columns[0] == "country_id"
    assert [h.country_id for h in result.hotspots] == ["CHN"] * 3
    assert {h.satellite for h in result.hotspots} == {Satellite.NOAA20}  # published as "1"


def test_seven_day_text_file_without_instrument_column() -> None:
    result = read("viirs_noaa20_7day_text.csv")
    assert result.rejected == []
    assert "instrument" not in result.columns
    assert [h.confidence_class for h in result.hotspots] == ["nominal", "high", "low"]
    assert [h.confidence_raw for h in result.hotspots] == ["nominal", "high", "low"]
    assert all(h.instrument is Instrument.VIIRS for h in result.hotspots)


def test_modis_standard_processing() -> None:
    result = read("modis_sp_archive.csv")
    assert result.rejected == []
    assert [h.satellite for h in result.hotspots] == [Satellite.TERRA, Satellite.AQUA, Satellite.AQUA]
    assert [h.confidence_class for h in result.hotspots] == ["nominal", "high", "low"]
    assert {h.product for h in result.hotspots} == {Product.MODIS_SP}
    assert [h.fire_type for h in result.hotspots] == [0, 0, 2]
    assert result.hotspots[0].acq_utc == datetime(2025, 4, 23, 2, 50, tzinfo=UTC)


def test_fixture_records_pass_the_validating_constructor() -> None:
    for path in sorted(DATA.glob("*.csv")):
        result = read_firms_csv(path)
        assert result.hotspots, path.name
        assert [Hotspot(*h) for h in result.hotspots] == result.hotspots, path.name


# --- natural key across windows and spellings -----------------------------------------------------------


def test_overlapping_api_windows_share_keys() -> None:
    one_day = read("viirs_noaa20_nrt_window_0423.csv")
    two_days = read("viirs_noaa20_nrt_window_0422-0423.csv")
    shared = set(keys(one_day)) & set(keys(two_days))
    assert len(shared) == 4
    assert len(set(keys(one_day)) | set(keys(two_days))) == 7
    # Not just equal keys: the same detection gives the same record.
    by_key = {h.key: h for h in two_days.hotspots}
    assert all(by_key[h.key] == h for h in one_day.hotspots)


def test_rereading_is_stable() -> None:
    assert keys(read("viirs_noaa20_nrt_window_0423.csv")) == keys(read("viirs_noaa20_nrt_window_0423.csv"))


def test_key_is_equal_across_satellite_spellings() -> None:
    """NOAA-20 is "N20" in the area API and "1" in the country file: one detection, one key."""
    area = set(keys(read("viirs_noaa20_nrt_window_0423.csv")))
    country = keys(read("viirs_noaa20_nrt_country_chn.csv"))
    assert [k in area for k in country] == [True, True, False]


@pytest.mark.parametrize("code", ["N20", "1", "NOAA-20", "noaa20"])
def test_satellite_code_forms_in_a_file(code: str) -> None:
    row = GOOD_ROW.replace(",N,VIIRS,", f",{code},VIIRS,")
    result = read_firms_csv(f"{VIIRS_HEADER}\n{row}\n")
    assert result.rejected == []
    assert result.hotspots[0].satellite is Satellite.NOAA20
    assert result.hotspots[0].product is Product.VIIRS_NOAA20_NRT


# --- explicit product -----------------------------------------------------------------------------------


def test_explicit_product_accepts_matching_rows() -> None:
    result = read("viirs_noaa20_nrt_window_0423.csv", product="VIIRS_NOAA20_NRT")
    assert result.product is Product.VIIRS_NOAA20_NRT
    assert len(result.hotspots) == 4
    assert result.rejected == []


def test_explicit_product_rejects_other_satellites() -> None:
    result = read("viirs_noaa20_nrt_window_0423.csv", product=Product.VIIRS_SNPP_NRT)
    assert result.hotspots == []
    assert where(result) == [(line, "satellite") for line in range(2, 6)]
    assert "NOAA-20 detection in a VIIRS_SNPP_NRT file" in result.rejected[0].reason


def test_explicit_product_rejects_other_level() -> None:
    result = read("viirs_noaa20_nrt_window_0423.csv", product=Product.VIIRS_NOAA20_SP)
    assert result.hotspots == []
    assert {r.field for r in result.rejected} == {"version"}


def test_explicit_product_of_other_instrument_is_a_format_error() -> None:
    with pytest.raises(FirmsFormatError, match="VIIRS layout but product MODIS_NRT"):
        read("viirs_noaa20_nrt_window_0423.csv", product=Product.MODIS_NRT)


def test_unknown_product_name() -> None:
    with pytest.raises(ValueError, match="VIIRS_FOO"):
        read("viirs_noaa20_nrt_window_0423.csv", product="VIIRS_FOO")


# --- malformed rows -------------------------------------------------------------------------------------

MALFORMED_ROWS = [
    GOOD_ROW,  # line 2: fine
    GOOD_ROW.replace("43.91234", "95.1"),  # 3: latitude out of range
    GOOD_ROW.replace("125.30451", "abc"),  # 4: longitude not a number
    GOOD_ROW.replace(",512,", ",2460,"),  # 5: no such time
    GOOD_ROW.replace(",n,2.0NRT", ",x,2.0NRT"),  # 6: bad confidence
    GOOD_ROW.replace(",N,VIIRS,", ",T,VIIRS,"),  # 7: MODIS satellite in a VIIRS file
    "",  # 8: blank line: skipped, not an error
    GOOD_ROW + ",extra",  # 9: too many fields
    GOOD_ROW.replace("2025-04-23", "2025-02-30"),  # 10: no such date
    GOOD_ROW.replace(",D", ",X"),  # 11: bad daynight
    GOOD_ROW.replace(",4.12,", ",,"),  # 12: empty frp: valid, absent
    GOOD_ROW.replace(",0.39,", ",nan,"),  # 13: NaN scan
    GOOD_ROW.replace("43.91234", "-95").replace(",n,2.0NRT", ",zz,2.0NRT"),  # 14: two errors: first reported
    GOOD_ROW.replace(",VIIRS,", ",MODIS,"),  # 15: instrument contradicts the header
    GOOD_ROW.replace("333.12", "inf"),  # 16: infinite brightness
    "   ",  # 17: whitespace only: skipped
    GOOD_ROW.replace("0.36", "0.361"),  # 18: fine
    GOOD_ROW[:40],  # 19: cut off (no final newline)
]
MALFORMED_EXPECTED = [
    (3, "latitude"),
    (4, "longitude"),
    (5, "acq_time"),
    (6, "confidence"),
    (7, "satellite"),
    (9, None),
    (10, "acq_date"),
    (11, "daynight"),
    (13, "scan"),
    (14, "latitude"),
    (15, "instrument"),
    (16, "bright_ti4"),
    (19, None),
]


def malformed_bytes(newline: str = "\r\n", bom: bool = True) -> bytes:
    text = newline.join([VIIRS_HEADER, *MALFORMED_ROWS])  # no final newline: the last line is cut
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


def test_malformed_rows_are_reported_and_skipped() -> None:
    result = read_firms_csv(malformed_bytes(), source_name="malformed.csv")
    assert where(result) == MALFORMED_EXPECTED
    assert [h.frp_mw for h in result.hotspots] == [4.12, None, 4.12]
    assert [h.track_km for h in result.hotspots] == [0.36, 0.36, 0.361]
    assert all(r.source_name == "malformed.csv" for r in result.rejected)


def test_malformed_reasons_are_specific() -> None:
    rejected = {r.line: r for r in read_firms_csv(malformed_bytes(), source_name="m.csv").rejected}
    assert "95.1 is outside [-90, 90]" in rejected[3].reason
    assert "not a number: 'abc'" in rejected[4].reason
    assert "expected 14 fields, found 15" in rejected[9].reason
    assert "cut off" not in rejected[9].reason
    assert "cut off" in rejected[19].reason
    assert "not a calendar date" in rejected[10].reason
    assert "MODIS" in rejected[7].reason
    assert str(rejected[3]).startswith("m.csv:3: latitude: ")
    assert rejected[3].text == MALFORMED_ROWS[1]


def test_line_ends_and_bom_do_not_change_the_result() -> None:
    expected = read_firms_csv(malformed_bytes())
    for newline in ("\n", "\r"):
        for bom in (True, False):
            assert read_firms_csv(malformed_bytes(newline, bom)) == expected
    assert read_firms_csv(malformed_bytes().decode("utf-8-sig")).hotspots == expected.hotspots
    assert read_firms_csv("\ufeff" + malformed_bytes(bom=False).decode()).hotspots == expected.hotspots


def test_malformed_rows_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = read_firms_csv(malformed_bytes())
    for size in (1, 2, 5):
        monkeypatch.setattr(firms, "_CHUNK_LINES", size)
        assert read_firms_csv(malformed_bytes()) == expected


def test_quoted_fields_use_csv_semantics() -> None:
    quoted = "\n".join(
        [
            VIIRS_HEADER,
            ",".join(f'"{v}"' for v in GOOD_ROW.split(",")),
            GOOD_ROW.replace("43.91234", '"43.5"'),
            '"a,b",' + GOOD_ROW.split(",", 1)[1],
        ]
    )
    result = read_firms_csv(quoted)
    plain = read_firms_csv(f"{VIIRS_HEADER}\n{GOOD_ROW}\n")
    assert result.hotspots[0] == plain.hotspots[0]
    assert result.hotspots[1].latitude == 43.5
    assert where(result) == [(4, "latitude")]


def test_trailing_blank_lines_and_leading_blank_lines() -> None:
    result = read_firms_csv(f"\n\n{VIIRS_HEADER}\n{GOOD_ROW}\n\n\n   \n")
    assert len(result.hotspots) == 1
    assert result.rejected == []
    result = read_firms_csv(f"\n{VIIRS_HEADER}\n{GOOD_ROW}\nbad\n")
    assert where(result) == [(4, None)]


def test_unknown_columns_are_ignored() -> None:
    header = VIIRS_HEADER.replace("daynight", "daynight,new_field")
    result = read_firms_csv(f"{header}\n{GOOD_ROW},whatever\n")
    assert result.rejected == []
    assert result.hotspots == read_firms_csv(f"{VIIRS_HEADER}\n{GOOD_ROW}\n").hotspots
    assert result.columns[-1] == "new_field"


def test_header_names_are_case_and_space_insensitive() -> None:
    header = ", ".join(c.upper() for c in VIIRS_HEADER.split(","))
    assert len(read_firms_csv(f"{header}\n{GOOD_ROW}\n").hotspots) == 1


def test_every_row_bad_gives_empty_hotspots() -> None:
    result = read_firms_csv(f"{VIIRS_HEADER}\n{GOOD_ROW.replace(',D', ',Q')}\n{GOOD_ROW.replace(',D', ',Z')}\n")
    assert result.hotspots == []
    assert where(result) == [(2, "daynight"), (3, "daynight")]


def test_rejected_text_is_bounded() -> None:
    long_row = GOOD_ROW.replace("2.0NRT", "2.0NRT" + "x" * 500) + ",extra"
    result = read_firms_csv(f"{VIIRS_HEADER}\n{long_row}\n")
    assert len(result.rejected[0].text) == 200


# --- whole-file errors ----------------------------------------------------------------------------------


def test_missing_columns_are_named() -> None:
    header = VIIRS_HEADER.replace("acq_time,", "").replace(",frp", "")
    with pytest.raises(FirmsFormatError) as info:
        read_firms_csv(f"{header}\n", source_name="area.csv")
    assert info.value.missing == ("acq_time", "frp")
    assert info.value.source_name == "area.csv"
    message = str(info.value)
    assert message.startswith("area.csv:1: missing required FIRMS column(s): acq_time, frp")


def test_missing_brightness_columns_name_both_instruments() -> None:
    header = VIIRS_HEADER.replace("bright_ti4,", "").replace("bright_ti5,", "")
    with pytest.raises(FirmsFormatError, match=r"brightness \+ bright_t31 \(MODIS\) or bright_ti4"):
        read_firms_csv(f"{header}\n")
    with pytest.raises(FirmsFormatError, match=r"missing required FIRMS column.*bright_ti4, bright_ti5") as info:
        read_firms_csv(f"{header}\n", product=Product.VIIRS_SNPP_NRT)
    assert info.value.missing == ("bright_ti4", "bright_ti5")


def test_half_a_brightness_pair_is_missing_the_other() -> None:
    header = VIIRS_HEADER.replace("bright_ti5,", "")
    with pytest.raises(FirmsFormatError) as info:
        read_firms_csv(f"{header}\n")
    assert info.value.missing == ("bright_ti5",)


def test_mixed_instrument_header() -> None:
    with pytest.raises(FirmsFormatError, match="mixes MODIS"):
        read_firms_csv(VIIRS_HEADER + ",brightness\n")


def test_duplicated_column() -> None:
    with pytest.raises(FirmsFormatError, match=r"duplicated column.*frp"):
        read_firms_csv(VIIRS_HEADER + ",frp\n")


def test_header_only_is_an_empty_result() -> None:
    result = read_firms_csv(VIIRS_HEADER + "\n")
    assert result.hotspots == []
    assert result.rejected == []
    assert result.instrument is Instrument.VIIRS


@pytest.mark.parametrize("content", [b"", b"\n\n", b"  \r\n \n", b"\xef\xbb\xbf"])
def test_empty_input(content: bytes) -> None:
    with pytest.raises(FirmsEmptyError, match=r"empty\.csv: empty input"):
        read_firms_csv(content, source_name="empty.csv")


def test_empty_file_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "nothing.csv"
    path.write_bytes(b"")
    with pytest.raises(FirmsEmptyError, match=r"nothing\.csv"):
        read_firms_csv(path)


def test_api_error_body() -> None:
    with pytest.raises(FirmsFormatError, match=r"first line is not a FIRMS header: 'Invalid MAP_KEY\.'"):
        read_firms_csv(b"Invalid MAP_KEY.\n", source_name="VIIRS_SNPP_NRT area")


def test_a_path_passed_as_str_gets_a_hint() -> None:
    with pytest.raises(FirmsFormatError, match=r"pathlib\.Path"):
        read_firms_csv("data/viirs_snpp_nrt_area.csv")


def test_undecodable_bytes_name_the_line() -> None:
    content = f"{VIIRS_HEADER}\n{GOOD_ROW}\n".encode() + b"\xff\xfe,broken\n"
    with pytest.raises(FirmsFormatError, match="not UTF-8") as info:
        read_firms_csv(content, source_name="x.csv")
    assert info.value.line == 3


def test_errors_share_the_package_root() -> None:
    with pytest.raises(SatelliteError):
        read_firms_csv(b"")


def test_stream_returning_other_types() -> None:
    class Odd:
        name = "odd"

        def read(self) -> int:
            return 3

    with pytest.raises(TypeError, match="odd: read"):
        read_firms_csv(Odd())  # type: ignore[arg-type]


# --- collector state ------------------------------------------------------------------------------------


def test_collector_state_is_restored() -> None:
    assert gc.isenabled()
    read_firms_csv(f"{VIIRS_HEADER}\n{GOOD_ROW}\n")
    assert gc.isenabled()
    with pytest.raises(FirmsFormatError):
        read_firms_csv("a,b\n1,2\n")
    assert gc.isenabled()
    gc.disable()
    try:
        read_firms_csv(f"{VIIRS_HEADER}\n{GOOD_ROW}\n")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_rejected_row_str_without_field() -> None:
    assert (
        str(RejectedRow("f.csv", 9, None, "expected 14 fields, found 3", "")) == "f.csv:9: expected 14 fields, found 3"
    )


def test_python_only_number_forms_are_refused() -> None:
    """float() takes "4_3.9" and Arabic-Indic or full-width digits; no CSV writer means them."""
    rows = [
        GOOD_ROW,
        GOOD_ROW.replace("43.91234", "4_3.91234"),
        GOOD_ROW.replace("125.30451", "１２５.30451"),
    ]
    result = read_firms_csv("\n".join([VIIRS_HEADER, *rows]).encode(), source_name="odd.csv")
    assert where(result) == [(3, "latitude"), (4, "longitude")]
    assert len(result.hotspots) == 1
