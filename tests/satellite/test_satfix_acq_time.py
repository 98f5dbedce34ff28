"""Acquisition times that cannot be real: in the future (beyond the 10 minutes a clock may be ahead) or before any
instrument flew. They are bad rows, named with file, line and field, and never become fires."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from satellite.firms import read_firms_csv, read_firms_csv_chunks
from satellite.himawari import read_himawari_csv

HEADER = (
    "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,bright_ti5,"
    "frp,daynight\n"
)
NOW = datetime(2025, 10, 20, 5, 10, tzinfo=UTC)


def viirs(acq_date: str, acq_time: str) -> str:
    return f"44.33000,125.55000,330.1,0.39,0.36,{acq_date},{acq_time},N20,VIIRS,n,2.0NRT,295.0,5.0,D\n"


ROWS = {
    2: viirs("2099-01-01", "5"),  # a wrong century
    3: viirs("1970-01-01", "0"),  # a zeroed clock
    4: viirs("2025-10-20", "521"),  # 11 minutes ahead
    5: viirs("2025-10-21", "0"),  # tomorrow
    6: viirs("2025-10-20", "520"),  # 10 minutes ahead: a clock that runs fast, accepted
    7: viirs("2025-10-20", "505"),  # five minutes ago
    8: viirs("2000-11-01", "1030"),  # the first day of the MODIS archive: old, but real
}
TEXT = HEADER + "".join(ROWS.values())
EXPECTED_REJECTED = [
    (2, "acq_date", "2099-01-01 is in the future (the clock says 2025-10-20 05:10 UTC)"),
    (3, "acq_date", "1970-01-01 is before 2000-01-01: no FIRMS instrument observed then (MODIS began in 2000)"),
    (4, "acq_time", "2025-10-20 05:21 UTC is more than 10 minutes ahead of the clock (2025-10-20 05:10 UTC)"),
    (5, "acq_date", "2025-10-21 is in the future (the clock says 2025-10-20 05:10 UTC)"),
]


def test_rows_of_the_future_or_before_modis_are_rejected_with_their_line_and_field() -> None:
    """acq_date 2099-01-01 and 1970-01-01 used to become hotspots, then incidents, counted and escalated like
    fires of today."""
    result = read_firms_csv(TEXT, source_name="fires.csv", now=NOW)
    assert [(r.line, r.field, r.reason) for r in result.rejected] == EXPECTED_REJECTED
    assert str(result.rejected[0]).startswith("fires.csv:2: acq_date: 2099-01-01 is in the future")
    assert [h.acq_utc for h in result.hotspots] == [
        datetime(2025, 10, 20, 5, 20, tzinfo=UTC),
        datetime(2025, 10, 20, 5, 5, tzinfo=UTC),
        datetime(2000, 11, 1, 10, 30, tzinfo=UTC),
    ]


def test_the_clock_is_the_system_clock_by_default() -> None:
    result = read_firms_csv(HEADER + viirs("2099-01-01", "5") + viirs("2025-04-23", "422"))
    assert [(r.line, r.field) for r in result.rejected] == [(2, "acq_date")]
    assert len(result.hotspots) == 1


def test_the_batch_reader_of_archives_applies_the_same_rule(tmp_path: Path) -> None:
    path = tmp_path / "archive.csv"
    path.write_text(TEXT, encoding="utf-8")
    batches = list(read_firms_csv_chunks(path, now=NOW, chunk_lines=3))
    rejected = [(r.line, r.field, r.reason) for batch in batches for r in batch.rejected]
    assert rejected == EXPECTED_REJECTED
    assert sum(len(batch.hotspots) for batch in batches) == 3


def test_himawari_rows_ahead_of_the_clock_name_the_field_that_is_ahead() -> None:
    text = (
        "# ID,Year,Month,Day,Time(UTC),Lat,Lon,Area(km^2),Volcano,Level,Reliability,FRP(Wm^-2),QF,Hot(ID)\n"
        "1,2099,4,23,422,45.12,124.82,3.50,0,2,3,4.21,0,2\n"
        "2,2025,10,21,0,45.12,124.82,3.50,0,2,3,4.21,0,2\n"
        "3,2025,10,20,530,45.12,124.82,3.50,0,2,3,4.21,0,2\n"
        "4,2025,10,20,510,45.12,124.82,3.50,0,2,3,4.21,0,2\n"
    )
    result = read_himawari_csv(text, source_name="himawari.csv", now=NOW)
    assert [(r.line, r.field) for r in result.rejected] == [(2, "year"), (3, "day"), (4, "time")]
    assert result.rejected[2].reason == (
        "2025-10-20 05:30 UTC is more than 10 minutes ahead of the clock (2025-10-20 05:10 UTC)"
    )
    assert len(result.hotspots) == 1
