"""`strawfire firms poll` against a local FIRMS stand-in, and `strawfire himawari ingest`, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, shared_path
from tests.httpserver import http_receiver

STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))
MAP_KEY = "0123456789abcdef0123456789abcdef"


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STRAWFIRE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_firms_poll_ingests_from_the_area_api_and_never_prints_the_key(tmp_path: Path) -> None:
    boundary = shared_path("boundaries", "220100_full.json")
    csv = shared_path("firms", "MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv").read_bytes()
    with http_receiver() as firms:
        # MODIS answers with the real file; the VIIRS sources have no fires (header only), one fails with 500.
        def respond(request):  # type: ignore[no-untyped-def]
            if "/VIIRS_SNPP_NRT/" in request.path:
                return 500, {}, b"server error"
            if "/MODIS_NRT/" in request.path:
                return 200, {"Content-Type": "text/csv"}, csv
            return (
                200,
                {"Content-Type": "text/csv"},
                b"latitude,longitude,bright_ti4,scan,track,acq_date,acq_time,"
                b"satellite,instrument,confidence,version,bright_ti5,frp,daynight\n",
            )

        firms.respond = respond
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
        env |= {"STRAWFIRE_FIRMS__MAP_KEY": MAP_KEY, "STRAWFIRE_FIRMS__BASE_URL": firms.url}
        imported = run("regions", "import", str(boundary), "--level", "county", "--crs", "gcj02", cwd=tmp_path, env=env)
        assert imported.returncode == 0, imported.stderr
        first = run("firms", "poll", cwd=tmp_path, env=env)
        second = run("firms", "poll", cwd=tmp_path, env=env)
        paths = [r.path for r in firms.received()]
    assert first.returncode == 0, first.stderr
    assert "MODIS_NRT 484" in first.stdout
    assert "new 10," in first.stdout  # 9 centred in Changchun + 1 footprint reaching in
    assert "new 0, duplicate 484" in second.stdout  # an overlapping window adds nothing
    assert "VIIRS_SNPP_NRT" in first.stderr  # the failing source is reported …
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert MAP_KEY not in output  # … without the key
    assert any(f"/api/area/csv/{MAP_KEY}/MODIS_NRT/" in p for p in paths)  # the server did get it
    assert all(p.endswith("/2") for p in paths)  # DAY_RANGE 2: each poll overlaps the previous one
    missing_key = run(
        "firms", "poll", cwd=tmp_path, env={k: v for k, v in env.items() if k != "STRAWFIRE_FIRMS__MAP_KEY"}
    )
    assert missing_key.returncode == 2
    assert "firms.map_key is not set" in missing_key.stderr
    with http_receiver() as firms:
        firms.respond = lambda request: (401, {}, b"Invalid MAP_KEY.")  # a revoked key: every source fails
        revoked = run("firms", "poll", cwd=tmp_path, env=env | {"STRAWFIRE_FIRMS__BASE_URL": firms.url})
    assert revoked.returncode == 1, revoked.stdout  # it used to exit 0
    assert MAP_KEY not in revoked.stdout + revoked.stderr


def test_himawari_ingest(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    files = sorted((REPO / "tests" / "satellite" / "data" / "himawari").glob("*.csv"))
    result = run("himawari", "ingest", *map(str, files), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "rows read" in result.stdout
    again = run("himawari", "ingest", *map(str, files), cwd=tmp_path, env=env)
    assert "new 0," in again.stdout


def test_text_from_files_is_printed_as_text_not_as_rich_markup(tmp_path: Path) -> None:
    """A CSV cell "[/bold]" used to end `firms ingest` with a rich markup traceback after its file was committed
    (the files after it skipped, no summary), and "[red]" vanished from the message: both are text now."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    source = REPO / "tests" / "satellite" / "data" / "viirs_noaa20_nrt_window_0423.csv"
    lines = source.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("longitude")] = "[/bold]"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n", encoding="utf-8")
    missing = tmp_path / "[red]missing.csv"
    result = run("firms", "ingest", str(bad), str(source), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "[/bold]" in result.stderr  # the rejected row quotes the cell as it was
    assert "rows read 8, new 4, duplicate 3, rejected 1," in result.stdout  # the file after it too, summed up
    gone = run("firms", "ingest", str(missing), cwd=tmp_path, env=env)
    assert gone.returncode != 0
    assert "Traceback" not in gone.stderr
    assert "[red]missing.csv" in gone.stderr


def test_a_file_name_in_the_progress_line_is_text_not_markup(tmp_path: Path) -> None:
    """On a terminal the progress line names the file being ingested; its description was read as rich markup,
    so "[red]" in a file name vanished (and styled the line) while everything else printed it as text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    env.update(FORCE_COLOR="1", TERM="xterm", COLUMNS="200")  # rich draws the live progress line
    source = REPO / "tests" / "satellite" / "data" / "viirs_noaa20_nrt_window_0423.csv"
    named = tmp_path / "[red]fires.csv"
    named.write_bytes(source.read_bytes())
    result = run("firms", "ingest", str(named), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "ingesting [red]fires.csv" in result.stderr
