"""`strawfire firms poll` with a revoked MAP_KEY while a back-fill is due: the error is printed once, never the key.

Audit finding: the back-fill's refused window printed the error ("back-fill stopped at …: … Invalid MAP_KEY"), and
the cycle's regular poll asked FIRMS again with the refused key and printed it a second time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from service.db import make_engine, make_session_factory, transaction
from service.status.service import firms_component, record_run
from tests.httpserver import Recorded, http_receiver
from tests.test_satellite_cli import MAP_KEY, import_northeast_china, run


def test_a_key_refused_during_the_back_fill_is_printed_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    env |= {"STRAWFIRE_FIRMS__MAP_KEY": MAP_KEY, "STRAWFIRE_FIRMS__SOURCES": '["MODIS_NRT","VIIRS_NOAA20_NRT"]'}
    import_northeast_china(tmp_path, env)
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'strawfire.sqlite3'}")
    try:  # MODIS_NRT last succeeded 12 days ago: the poll back-fills it first
        with transaction(make_session_factory(engine)) as session:
            record_run(session, firms_component("MODIS_NRT"), at=datetime.now(UTC) - timedelta(days=12), ok=True)
    finally:
        engine.dispose()
    paths: list[str] = []

    def refuse(request: Recorded) -> tuple[int, dict[str, str], bytes]:
        paths.append(request.path)
        return 200, {"Content-Type": "text/plain"}, b"Invalid MAP_KEY."

    with http_receiver() as firms:
        firms.respond = refuse
        revoked = run("firms", "poll", cwd=tmp_path, env=env | {"STRAWFIRE_FIRMS__BASE_URL": firms.url})
    assert revoked.returncode == 1, revoked.stderr
    assert len(paths) == 1  # the back-fill's first window; the regular poll is not sent with a refused key
    assert revoked.stderr.count("Invalid MAP_KEY") == 1, revoked.stderr
    assert "MODIS_NRT, VIIRS_NOAA20_NRT: " in revoked.stderr  # the one error, with the sources it stopped
    assert "MODIS_NRT: back-fill stopped at " in revoked.stderr
    assert ": the error above" in revoked.stderr
    assert MAP_KEY not in revoked.stdout + revoked.stderr
