"""The readers' ``within`` box: a global file read for one county keeps the rows that may reach it and counts the
others, never dropping a row screening would have found inside the coverage.

A 20 MB global VIIRS day made ~230,000 records (and as many stored observations) for 45 rows in the county: 1.9 GB
of memory; a 200 MB file was killed at 15 GB."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import shapely

from satellite.firms import read_firms_csv, read_firms_csv_chunks
from satellite.himawari import read_himawari_csv
from satellite.hotspot import Box
from satellite.screening import Screener, ScreeningStatus, may_reach_box

DATA = Path(__file__).parent / "data"
NOW = datetime(2025, 4, 24, tzinfo=UTC)
VIIRS_HEADER = (
    "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,"
    "bright_ti5,frp,daynight\n"
)
#: A county-sized box in Jilin.
BOX: Box = (125.50, 44.15, 125.80, 44.40)


def viirs_row(lat: float, lon: float, size: float = 0.39) -> str:
    return f"{lat:.5f},{lon:.5f},330.0,{size},{size},2025-04-23,0422,N20,VIIRS,n,2.0NRT,290.0,5.0,D\n"


def test_a_row_the_reader_drops_is_one_screening_finds_outside_the_coverage() -> None:
    """Every pixel whose footprint meets a coverage polygon filling the box is kept by the reader's ``within``, at
    any latitude, of any size: the rows it drops are ones screening would have called ``outside_coverage``."""
    rng = random.Random(3)
    boxes: list[Box] = [BOX, (-10.0, 80.0, 10.0, 89.5), (170.0, -60.0, 179.5, -50.0)]
    for box in boxes:
        west, south, east, north = box
        lines = []
        for _ in range(3000):
            size = rng.choice((0.32, 0.39, 1.0, 2.4, 4.8, 19.0))
            lat = min(max(rng.uniform(south - 1.0, north + 1.0), -89.9), 89.9)
            lon = min(max(rng.uniform(west - 3.0, east + 3.0), -179.9), 179.9)
            lines.append(viirs_row(lat, lon, size))
        text = VIIRS_HEADER + "".join(lines)
        rows = read_firms_csv(text, now=NOW).hotspots
        kept = read_firms_csv(text, now=NOW, within=box)
        kept_keys = {h.key for h in kept.hotspots}
        decisions = Screener(coverage=[shapely.box(*box)]).screen(rows)
        for decision in decisions:
            assert decision.key in kept_keys or decision.status is ScreeningStatus.OUTSIDE_COVERAGE, decision.key
        assert 0 < len(kept.hotspots) < len(rows)
        assert len(kept.hotspots) + kept.outside == len(rows)
        assert may_reach_box(kept.hotspots, box) == [True] * len(kept.hotspots)  # the service's own test agrees


def test_firms_rows_outside_the_box_are_counted_and_bad_rows_reported_wherever_they_lie(tmp_path: Path) -> None:
    text = VIIRS_HEADER + "".join(
        [
            viirs_row(44.30, 125.60),  # inside
            viirs_row(-12.0, 30.0),  # Africa
            "91.5,30.0,330.0,0.39,0.39,2025-04-23,0422,N20,VIIRS,n,2.0NRT,290.0,5.0,D\n",  # bad, far away
            viirs_row(44.402, 125.70),  # just north of the box: its pixel reaches in
            viirs_row(44.50, 125.70),  # 11 km north: does not
            "44.2,125.6,330.0,0.39,0.39,2025-04-23,0422,N20,VIIRS,x,2.0NRT,290.0,5.0,D\n",  # bad, inside
        ]
    )
    everything = read_firms_csv(text, now=NOW)
    kept = read_firms_csv(text, now=NOW, within=BOX)
    assert (len(everything.hotspots), everything.outside) == (4, 0)
    assert [(h.latitude, h.longitude) for h in kept.hotspots] == [(44.30, 125.60), (44.402, 125.70)]
    assert kept.outside == 2
    assert [(r.line, r.field) for r in kept.rejected] == [(4, "latitude"), (7, "confidence")]
    # In batches: the same rows, each batch counting its own.
    source = tmp_path / "global.csv"
    source.write_text(text, encoding="utf-8")
    batches = list(read_firms_csv_chunks(source, chunk_lines=2, now=NOW, within=BOX))
    assert [h for b in batches for h in b.hotspots] == kept.hotspots
    assert [b.outside for b in batches] == [1, 0, 1]
    assert [(r.line, r.field) for b in batches for r in b.rejected] == [(4, "latitude"), (7, "confidence")]


def test_himawari_rows_outside_the_box_are_counted() -> None:
    path = DATA / "himawari" / "H09_20250423_0420_L2WLF010_FLDK.06001_06001.csv"
    everything = read_himawari_csv(path, now=NOW)
    box: Box = (124.80, 45.09, 124.84, 45.13)  # around the first three cells
    kept = read_himawari_csv(path, now=NOW, within=box)
    assert everything.outside == 0
    assert 0 < len(kept.hotspots) < len(everything.hotspots)
    assert len(kept.hotspots) + kept.outside == len(everything.hotspots)
    assert kept.rejected == everything.rejected
    assert [h.key for h in kept.hotspots] == [h.key for h in everything.hotspots if may_reach_box([h], box) == [True]]
