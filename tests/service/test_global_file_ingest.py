"""`strawfire firms ingest` of a global-style file for one county: memory follows the county's rows, not the file's.

Measured before: ~8 KB per CSV row, because every row became a record and every row outside the county (~99 % of a
global day) a stored observation: a 20 MB VIIRS day took 1.9 GB of memory and 256 MB of database for 45 rows in
the county; a 200 MB file was killed at 15 GB. Rows far outside the imported units are now counted, not stored,
and the reader drops them before building records; those just outside are stored with their decision. Memory is
measured with tracemalloc (allocations, not time)."""

from __future__ import annotations

import json
import os
import random
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from service.cli import firms_history, firms_ingest
from service.config import get_settings
from service.db import make_engine, make_session_factory, transaction, upgrade, utcnow
from service.incidents.tables import Observation
from service.regions.crs import parse_crs
from service.regions.loader import read_units
from service.regions.service import import_units
from service.regions.types import RegionLevel

#: Rows of the file; the test county (125.50-125.80 E, 44.15-44.40 N) gets INSIDE of them. 100,000 rather than a
#: real day's 200,000+: tracemalloc slows every allocation ~10 times, and the bound below holds per row.
ROWS = 100_000
INSIDE = 40
#: Just north of the county: within reach of its box, outside its units: screened, stored as outside_coverage.
NEAR = 3
HEADER = (
    "latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,satellite,instrument,confidence,version,"
    "bright_ti5,frp,daynight\n"
)
#: The bound on traced memory at the peak: the file's records and observations took ~8 KB a row (~800 MB here);
#: reading it in batches, keeping the county's rows, peaks at ~20 MB.
PEAK_LIMIT = 100 * 2**20

app = typer.Typer()
app.command("ingest")(firms_ingest)  # the lines service/cli.py uses
app.command("history")(firms_history)


@app.callback()
def _main() -> None:
    """A group, as the real ``strawfire firms`` app is."""


def _global_file(path: Path) -> None:
    """A VIIRS NRT day over the whole Earth, with INSIDE rows in the county, NEAR just north of it and two bad
    rows (one outside the county: bad rows are reported wherever they lie)."""
    rng = random.Random(11)
    day = (utcnow() - timedelta(days=1)).date().isoformat()

    def row(lat: float, lon: float, confidence: str = "n") -> str:
        return (
            f"{lat:.5f},{lon:.5f},{rng.uniform(300, 367):.2f},0.39,0.36,{day},{rng.randrange(0, 24) * 100 + 22:04d},"
            f"N20,VIIRS,{confidence},2.0NRT,290.00,{rng.uniform(0.5, 40):.2f},D\n"
        )

    lines = []
    for _ in range(ROWS - INSIDE - NEAR):
        lat, lon = rng.uniform(-55.0, 70.0), rng.uniform(-180.0, 180.0)
        while 43.5 < lat < 45.0 and 124.5 < lon < 127.0:  # nowhere near the county
            lat, lon = rng.uniform(-55.0, 70.0), rng.uniform(-180.0, 180.0)
        lines.append(row(lat, lon))
    # Apart from each other (0.04°, ~4 km): each its own fire point.
    inside = [(44.17 + 0.04 * (i // 8), 125.52 + 0.035 * (i % 8)) for i in range(INSIDE)]
    near = [(44.43, 125.55 + 0.1 * i) for i in range(NEAR)]  # 3 km north of the county
    for number, (lat, lon) in enumerate(inside + near):
        lines.insert(number * 2000 + 17, row(lat, lon))
    lines.insert(5, row(-12.0, 30.0, confidence="x"))  # bad: Africa
    lines.insert(75_000, "44.3,125.6,330.0,0.39,0.36,2025-13-01,0422,N20,VIIRS,n,2.0NRT,290.0,5.0,D\n")  # bad date
    path.write_text(HEADER + "".join(lines), encoding="utf-8")


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A county imported in a SQLite database the CLI is pointed at: a rectangle, quick to index (the DEMO
    county's townships took seconds to index under tracemalloc)."""
    county = tmp_path / "county.geojson"
    ring = [[125.50, 44.15], [125.80, 44.15], [125.80, 44.40], [125.50, 44.40], [125.50, 44.15]]
    feature = {"type": "Feature", "properties": {"code": "229901", "name": "Test county"}}
    geometry = {"type": "Polygon", "coordinates": [ring]}
    county.write_text(
        json.dumps({"type": "FeatureCollection", "features": [feature | {"geometry": geometry}]}), encoding="utf-8"
    )
    url = f"sqlite:///{tmp_path / 'strawfire.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    crs = parse_crs("wgs84")
    units, report = read_units(county, level=RegionLevel.COUNTY, crs=crs)
    with transaction(make_session_factory(engine)) as session:
        import_units(session, units, level=RegionLevel.COUNTY, crs=crs, report=report)
    engine.dispose()
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("STRAWFIRE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("STRAWFIRE_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_a_global_file_costs_memory_for_the_county_rows_and_stores_those_near_it(database: str, tmp_path: Path) -> None:
    source = tmp_path / "deeply" / "nested" / "folder" / "VIIRS_NOAA20_NRT_Global_24h.csv"
    source.parent.mkdir(parents=True)
    _global_file(source)
    tracemalloc.start()
    try:
        result = CliRunner().invoke(app, ["ingest", str(source)])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    outside = ROWS - INSIDE
    assert (
        f"rows read {ROWS + 2}, new {INSIDE}, duplicate 0, rejected 2, fire points {INSIDE} (repeats 0), "
        f"new incidents {INSIDE}, screened out {outside} (outside_coverage {outside})"
    ) in result.output
    # Bad rows name the path as given, the line and the field, each on one line however long.
    assert f"rejected {source}:7: confidence: " in result.output
    assert f"rejected {source}:75002: acq_date: " in result.output
    assert peak < PEAK_LIMIT, f"peak traced memory {peak / 2**20:.0f} MB for {ROWS} rows"

    engine = make_engine(database)
    with make_session_factory(engine)() as session:
        stored = session.scalar(select(func.count()).select_from(Observation))
    engine.dispose()
    assert stored == INSIDE + NEAR  # the county's rows and those just outside it; nothing far away

    # Again: the stored rows are duplicates, the far ones counted again (never stored).
    again = CliRunner().invoke(app, ["ingest", str(source)])
    assert again.exit_code == 0, again.output
    assert f"new 0, duplicate {INSIDE + NEAR}, rejected 2," in again.output
    far = outside - NEAR
    assert f"screened out {far} (outside_coverage {far})" in again.output


def test_firms_history_names_a_rejected_row_by_the_path_given_on_one_line(database: str, tmp_path: Path) -> None:
    """The history import named the file alone ("bad.csv:3: …"), and a long line was wrapped at 80 columns."""
    archive = tmp_path / "archives" / "2024" / "fire_archive_SV-C2_with_a_rather_long_name_for_the_year.csv"
    archive.parent.mkdir(parents=True)
    good = "44.30000,125.60000,330.00,0.39,0.36,2024-08-01,0422,N,VIIRS,n,2,290.00,5.00,D\n"
    archive.write_text(HEADER + good + good.replace(",n,", ",q,"), encoding="utf-8")
    result = CliRunner().invoke(app, ["history", str(archive)])
    assert result.exit_code == 0, result.output
    assert f"rejected {archive}:3: confidence: " in result.output
    assert "rows read 2, in coverage 1, stored 1" in result.output
