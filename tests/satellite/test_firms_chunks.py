"""Reading a large FIRMS file in batches (`read_firms_csv_chunks`): the same records and rejected rows, with their
physical lines, as reading it whole; and the coverage test screening applies, on its own (`in_coverage`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely

from satellite.errors import FirmsEmptyError, FirmsFormatError
from satellite.firms import FirmsReadResult, read_firms_csv, read_firms_csv_chunks
from satellite.screening import Screener, ScreeningStatus, in_coverage
from tests.conftest import shared_path

DATA = Path(__file__).parent / "data"
HEADER = (
    "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight"
)
ROW = "43.9,125.3,330.5,1.0,1.0,2025-04-23,0512,T,80,6.1NRT,290.0,15.2,D"


def read_in_batches(path: Path, lines: int) -> tuple[list[FirmsReadResult], int]:
    progress: list[int] = []
    batches = list(read_firms_csv_chunks(path, chunk_lines=lines, on_bytes=progress.append))
    return batches, sum(progress)


def assert_same_as_whole(path: Path, lines: int) -> None:
    whole = read_firms_csv(path)
    batches, progressed = read_in_batches(path, lines)
    assert [h for b in batches for h in b.hotspots] == whole.hotspots
    assert [r for b in batches for r in b.rejected] == whole.rejected
    assert progressed == path.stat().st_size
    assert {(b.instrument, b.columns, b.source_name) for b in batches} == {
        (whole.instrument, whole.columns, whole.source_name)
    }


@pytest.mark.parametrize("lines", [1, 2, 7, 65_536])
@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.csv")))
def test_batches_read_every_layout_like_the_whole_file(name: str, lines: int) -> None:
    assert_same_as_whole(DATA / name, lines)


@pytest.mark.parametrize("lines", [1, 2, 3, 100])
@pytest.mark.parametrize(
    "text",
    [
        f"\ufeff{HEADER}\r\n{ROW}\r\n{ROW[:-3]}\r\nbad,1\r\n\r\n{ROW}",  # BOM, CRLF, bad rows, blank line
        f"\n\n{HEADER}\n{ROW}\n{ROW[:20]}",  # blank lines first; the last line cut off (no final newline)
        f"{HEADER}\r{ROW}\r{ROW}\r",  # old-Mac CR line ends
        f"{HEADER}\n{ROW.replace('43.9', 'north')}\n{ROW}\n",  # a bad field
        HEADER,
        f'{HEADER}\n"43.9",125.3,330.5,1.0,1.0,2025-04-23,0512,T,80,6.1NRT,290.0,15.2,D\n',
    ],
    ids=["crlf-bom-bad-rows", "cut-last-line", "cr", "bad-field", "header-only", "quoted"],
)
def test_batches_keep_physical_line_numbers_and_the_cut_last_line(tmp_path: Path, text: str, lines: int) -> None:
    path = tmp_path / "file.csv"
    path.write_bytes(text.encode())
    assert_same_as_whole(path, lines)


def test_whole_file_errors_are_raised_as_by_the_whole_reader(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"\n \n")
    with pytest.raises(FirmsEmptyError):
        list(read_firms_csv_chunks(empty))
    undecodable = tmp_path / "undecodable.csv"
    good = f"{HEADER}\n{ROW}\n{ROW}\n".encode()
    undecodable.write_bytes(good + b"\xff\n")
    message = rf"undecodable.csv:4: not UTF-8 text \(byte {len(good)}\)"
    batches = read_firms_csv_chunks(undecodable, chunk_lines=1)
    assert len(next(batches).hotspots) == 1  # batches before the bad line are yielded first
    with pytest.raises(FirmsFormatError, match=message):
        list(batches)
    with pytest.raises(FirmsFormatError, match=message):
        read_firms_csv(undecodable)


@pytest.mark.shared_data
def test_the_real_global_modis_day_in_batches() -> None:
    assert_same_as_whole(shared_path("firms", "MODIS_C6_1_Global_24h_2025-04-23_full.csv"), 1000)


def test_in_coverage_is_the_screening_coverage_test() -> None:
    rows = read_firms_csv(
        f"{HEADER}\n"
        + "\n".join(
            ROW.replace("43.9,125.3", f"43.9,{lon}").replace("1.0,1.0", f"{size},{size}")
            for lon, size in ((125.3, 1.0), (125.305, 1.0), (125.308, 1.0), (125.308, 2.0), (125.4, 1.0))
        )
    ).hotspots
    coverage = [shapely.box(125.0, 43.5, 125.3, 44.0)]
    # Centre inside; 0.4 km out (half a 1 km pixel reaches in); 0.64 km out: a 1 km pixel does not, a 2 km one does.
    assert in_coverage(rows, coverage) == [True, True, False, True, False]
    decisions = Screener(coverage=coverage).screen(rows)
    assert in_coverage(rows, coverage) == [d.status is not ScreeningStatus.OUTSIDE_COVERAGE for d in decisions]
