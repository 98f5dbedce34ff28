"""`strawfire firms poll` against a local FIRMS stand-in, `strawfire sentinel scan` against a local Sentinel Hub
stand-in, and `strawfire himawari ingest`, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from service.db import make_engine
from tests.conftest import REPO, shared_path
from tests.httpserver import http_receiver
from tests.satellite.test_sentinel import (  # noqa: F401  (fake_hub, local_env: fixtures)
    CLIENT_ID,
    SECRET,
    FakeSentinelHub,
    fake_hub,
    local_env,
)
from tests.satellite.test_sentinel_rate_limit import RateLimited

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
    # An overlapping window adds nothing: the 21 stored pixels (10 fires, 11 held just outside the units) are
    # duplicates, the 463 far outside are counted again, never stored (service.flows.ingest_screened).
    assert "new 0, duplicate 21, new incidents 0, screened out 463 (outside_coverage 463)" in second.stdout
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


def import_northeast_china(tmp_path: Path, env: dict[str, str]) -> None:
    """One county over all of Northeast China (120-131 E, 40-50 N): satellite data is ingested for imported units
    only, and this covers every fire of the test files."""
    county = tmp_path / "northeast.geojson"
    feature = {
        "type": "Feature",
        "properties": {"code": "229999", "name": "Northeast China"},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[120.0, 40.0], [131.0, 40.0], [131.0, 50.0], [120.0, 50.0], [120.0, 40.0]]],
        },
    }
    county.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}), encoding="utf-8")
    imported = run("regions", "import", str(county), "--level", "county", "--crs", "wgs84", cwd=tmp_path, env=env)
    assert imported.returncode == 0, imported.stderr


def test_himawari_ingest(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    import_northeast_china(tmp_path, env)
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
    import_northeast_china(tmp_path, env)
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
    import_northeast_china(tmp_path, env)
    result = run("firms", "ingest", str(named), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "ingesting [red]fires.csv" in result.stderr


def sentinel_env(tmp_path: Path, hub_url: str) -> dict[str, str]:
    """Credentials and endpoints as a deployment sets them: the client id in the settings file with a base URL that
    the environment overrides (env > file > defaults), the secret in the environment only."""
    settings_file = tmp_path / "strawfire.toml"
    settings_file.write_text(
        f'[sentinelhub]\nclient_id = "{CLIENT_ID}"\nbase_url = "https://sh.dataspace.copernicus.eu"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_") and "proxy" not in k.lower()}
    return env | {
        "STRAWFIRE_CONFIG": str(settings_file),
        "STRAWFIRE_SENTINELHUB__CLIENT_SECRET": SECRET,
        "STRAWFIRE_SENTINELHUB__BASE_URL": hub_url,
        "STRAWFIRE_SENTINELHUB__TOKEN_URL": f"{hub_url}/oauth/token",
        "STRAWFIRE_SENTINELHUB__RETRY_SLEEP_S": "0",
        "OAUTHLIB_INSECURE_TRANSPORT": "1",  # the stand-in speaks plain http on 127.0.0.1
    }


def import_test_county(tmp_path: Path, env: dict[str, str]) -> None:
    """A county around the FakeSentinelHub's fires (125.30-125.33 E, 43.90-43.92 N)."""
    county = tmp_path / "county.geojson"
    feature = {
        "type": "Feature",
        "properties": {"code": "220199", "name": "Test county"},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[125.29, 43.89], [125.34, 43.89], [125.34, 43.93], [125.29, 43.93], [125.29, 43.89]]],
        },
    }
    county.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}), encoding="utf-8")
    imported = run("regions", "import", str(county), "--level", "county", "--crs", "wgs84", cwd=tmp_path, env=env)
    assert imported.returncode == 0, imported.stderr


def test_sentinel_scan_reads_the_sentinelhub_settings_and_ingests_the_fire_points(
    tmp_path: Path,
    fake_hub: FakeSentinelHub,  # noqa: F811
) -> None:
    """The `sentinelhub.*` settings had no path in the service: nothing read them. `strawfire sentinel scan` takes
    its credentials and endpoints from them and ingests each scene's fire points as satellite observations."""
    env = sentinel_env(tmp_path, fake_hub.base_url)
    import_test_county(tmp_path, env)
    first = run("sentinel", "scan", "--collection", "landsat", "--days", "10", cwd=tmp_path, env=env)
    again = run("sentinel", "scan", "--collection", "landsat", "--days", "10", cwd=tmp_path, env=env)

    assert first.returncode == 0, first.stderr
    assert "scenes 2, fire points 4, new 4, duplicate 0, new incidents " in first.stdout
    assert "scenes 2, fire points 4, new 0, duplicate 4, new incidents 0" in again.stdout  # a scene adds once
    token = fake_hub.requests[0]
    assert token.path == "/oauth/token"  # the environment's base and token URLs, over the file's CDSE one
    assert f"client_id={CLIENT_ID}".encode() in token.body  # from the file
    searches = [r.json() for r in fake_hub.requests if r.path == "/api/v1/catalog/1.0.0/search"]
    assert searches[0]["collections"] == ["landsat-ot-l1"]
    assert searches[0]["filter"] == "eo:cloud_cover <= 60"  # sentinelhub.max_cloud_cover's default
    assert searches[0]["bbox"] == [125.29, 43.89, 125.34, 43.93]  # the imported regions' bounds
    for output in (first.stdout, first.stderr, again.stdout, again.stderr):
        assert SECRET not in output

    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'strawfire.sqlite3'}")
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT source_key, details FROM observations ORDER BY source_key")).all()
    finally:
        engine.dispose()
    assert len(rows) == 4
    assert all(key.startswith("landsat-ot-l1|LC0") for key, _ in rows)
    details = [json.loads(d) for _, d in rows]
    assert {d["instrument"] for d in details} == {"OLI"}
    assert {d["screening"]["status"] for d in details} == {"accepted"}
    assert sorted(d["pixel_count"] for d in details) == [1, 1, 9, 9]


def test_sentinel_scan_without_credentials_or_rate_limited_is_one_line_without_the_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    missing = run("sentinel", "scan", cwd=tmp_path, env=env)
    assert missing.returncode == 2
    assert "sentinelhub.client_id and sentinelhub.client_secret are not set" in missing.stderr
    assert "Traceback" not in missing.stderr

    with http_receiver() as hub:
        hub.respond = RateLimited(retry_after_ms="100")
        env = sentinel_env(tmp_path, hub.url) | {"STRAWFIRE_SENTINELHUB__RATE_LIMIT_ATTEMPTS": "2"}
        import_test_county(tmp_path, env)
        limited = run("sentinel", "scan", cwd=tmp_path, env=env)
    assert limited.returncode == 2
    assert "catalog search of sentinel-2-l2a: rate limited by http://127.0.0.1:" in limited.stderr
    assert "gave up after 2 rate-limited attempts" in limited.stderr
    assert "Traceback" not in limited.stderr
    assert SECRET not in limited.stdout + limited.stderr


MODIS_HEADER = (
    "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight\n"
)


def modis_rows(where: list[tuple[float, float]], day: str) -> str:
    return "".join(f"{lat},{lon},330.5,1.0,1.0,{day},410,T,80,6.1NRT,290.0,15.2,D\n" for lat, lon in where)


def test_satellite_data_with_no_units_imported_is_refused_in_one_line(tmp_path: Path) -> None:
    """A global FIRMS day given to `firms ingest` before `regions import` became thousands of incidents with no
    township, silently; it is refused, as `firms poll` refuses to poll the whole Earth."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    source = REPO / "tests" / "satellite" / "data" / "viirs_noaa20_nrt_window_0423.csv"
    result = run("firms", "ingest", str(source), cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "no administrative units are imported" in result.stderr
    assert "strawfire regions import" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_compressed_file_or_one_whose_every_row_is_rejected_fails_the_ingest(tmp_path: Path) -> None:
    """A zipped FIRMS download failed as "not UTF-8 text (byte 10)"; a file of which no row was accepted (a wrong
    date in every row) exited 0, so cron never noticed. Both are named and the status is 2; the good file given
    with them is ingested all the same."""
    import gzip
    import zipfile

    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    import_northeast_china(tmp_path, env)
    source = REPO / "tests" / "satellite" / "data" / "viirs_noaa20_nrt_window_0423.csv"
    archive = tmp_path / "DL_FIRE_J1V-C2_1.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("fire_nrt_J1V-C2_1.csv", source.read_bytes())
    packed = tmp_path / "fires.csv.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    future = tmp_path / "future.csv"
    future.write_text(MODIS_HEADER + modis_rows([(44.0, 125.3), (44.1, 125.4)], "2099-04-23"), encoding="utf-8")
    no_fires = tmp_path / "no_fires.csv"
    no_fires.write_text(MODIS_HEADER, encoding="utf-8")

    files = [str(path) for path in (archive, packed, future, no_fires, source)]
    result = run("firms", "ingest", *files, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{archive.name}: a ZIP archive, not CSV text: extract the CSV file(s) in it first" in result.stderr
    assert f"{packed.name}: gzip-compressed, not CSV text: decompress it first" in result.stderr
    assert "not UTF-8" not in result.stderr
    assert "future.csv:2: acq_date: 2099-04-23 is in the future" in result.stderr  # each row, with its line
    assert f"{future}: none of its 2 rows was accepted" in result.stderr
    assert "no_fires.csv" not in result.stderr  # a header and no rows: no fires, not a failure
    assert "rows read 6, new 4, duplicate 0, rejected 2," in result.stdout  # the good file is in
    assert "Traceback" not in result.stderr

    history = run("firms", "history", str(archive), cwd=tmp_path, env=env)
    assert history.returncode == 2
    assert "a ZIP archive, not CSV text" in history.stderr


def test_firms_poll_prints_what_screening_held_and_each_error_once(tmp_path: Path) -> None:
    """`firms poll` printed "received 512; new 20, duplicate 0" without the 492 rows screening held, and each
    failure twice: the poller's log line, then the summary."""
    from datetime import UTC, datetime, timedelta

    yesterday = f"{datetime.now(UTC).date() - timedelta(days=1)}"
    inside = [(44.0, 125.3), (44.5, 126.0), (45.0, 127.0)]
    outside = [(30.0, 110.0), (31.0, 111.0)]  # central China: no unit of ours
    csv = (MODIS_HEADER + modis_rows(inside + outside, yesterday)).encode()
    maintenance = b"<!DOCTYPE html><html><body><h1>FIRMS is down</h1></body></html>"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    env |= {"STRAWFIRE_FIRMS__MAP_KEY": MAP_KEY, "STRAWFIRE_FIRMS__SOURCES": '["MODIS_NRT","VIIRS_NOAA20_NRT"]'}
    import_northeast_china(tmp_path, env)
    with http_receiver() as firms:

        def respond(request):  # type: ignore[no-untyped-def]
            if "/MODIS_NRT/" in request.path:
                return 200, {"Content-Type": "text/csv"}, csv
            return 200, {"Content-Type": "text/html"}, maintenance

        firms.respond = respond
        polled = run("firms", "poll", cwd=tmp_path, env=env | {"STRAWFIRE_FIRMS__BASE_URL": firms.url})
    assert polled.returncode == 0, polled.stderr
    assert (
        "received MODIS_NRT 5, VIIRS_NOAA20_NRT 0; new 3, duplicate 0, new incidents 3, "
        "screened out 2 (outside_coverage 2)"
    ) in polled.stdout
    assert polled.stderr.count("FIRMS is down") == 1, polled.stderr
    assert "VIIRS_NOAA20_NRT:" in polled.stderr

    with http_receiver() as firms:
        firms.respond = lambda request: (200, {}, b"Invalid MAP_KEY.")  # a revoked key: every source fails
        revoked = run("firms", "poll", cwd=tmp_path, env=env | {"STRAWFIRE_FIRMS__BASE_URL": firms.url})
    assert revoked.returncode == 1
    assert revoked.stderr.count("Invalid MAP_KEY") == 1, revoked.stderr
    assert "MODIS_NRT, VIIRS_NOAA20_NRT: " in revoked.stderr  # one error, the sources it stopped
    assert MAP_KEY not in revoked.stdout + revoked.stderr

    # MODIS_NRT missed five days (its progress says so): the back-fill's dated request fails; said once too.
    six_days_ago = datetime.now(UTC).date() - timedelta(days=6)
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'strawfire.sqlite3'}")
    try:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE component_runs SET detail = :detail WHERE name = 'firms:MODIS_NRT'"),
                {"detail": json.dumps({"resume_from": f"{six_days_ago}"})},
            )
    finally:
        engine.dispose()
    with http_receiver() as firms:

        def refuse_dates(request):  # type: ignore[no-untyped-def]
            if len(request.path.split("/")) > 8:  # .../AREA/DAY_RANGE/DATE: a back-fill window
                return 400, {"Content-Type": "text/plain"}, b"Invalid date parameter."
            return respond(request)

        firms.respond = refuse_dates
        backfilled = run("firms", "poll", cwd=tmp_path, env=env | {"STRAWFIRE_FIRMS__BASE_URL": firms.url})
    assert backfilled.returncode == 0, backfilled.stderr
    assert f"MODIS_NRT: back-fill stopped at {six_days_ago}" in backfilled.stderr
    assert backfilled.stderr.count("Invalid date parameter") == 1, backfilled.stderr
