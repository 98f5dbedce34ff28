"""FIRMS archives imported as hotspot history (`strawfire firms history`): they feed the persistence rule and
nothing else. A new deployment had no history, so for its first year every chimney FIRMS saw alerted a township."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from satellite.errors import FirmsFormatError
from satellite.firms import read_firms_csv, read_firms_csv_chunks
from satellite.screening import Screener, ScreeningStatus
from service.alerts.service import create_recipient
from service.alerts.tables import Alert, Channel
from service.auth.service import Principal
from service.config import Settings, load_settings
from service.db import make_session_factory, transaction
from service.demo import load_demo
from service.errors import ConfigError, InputError
from service.flows import ingest_hotspots
from service.history import service as history
from service.history.service import history_coverage, import_firms_history
from service.history.tables import HotspotHistory
from service.incidents.states import Role
from service.incidents.tables import Incident, IncidentEvent, Observation
from service.regions.crs import parse_crs
from service.regions.loader import read_units
from service.regions.service import RegionIndexCache, import_units
from service.regions.types import RegionLevel
from tests.conftest import shared_path

ADMIN = Principal("admin", Role.ADMIN)
STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))
HEADER = (
    "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite,confidence,version,bright_t31,frp,daynight\n"
)
CHIMNEY = (44.2003, 125.6004)  # lat, lon: inside the demo county, one 0.01° cell
FARMLAND = (44.3300, 125.5500)
FAR_AWAY = (45.5, 125.0)  # beyond the demo county and its tolerance
NOW = datetime(2025, 10, 20, 5, 30, tzinfo=UTC)


def row(lat: float, lon: float, when: datetime, daynight: str = "D") -> str:
    return f"{lat},{lon},330.5,1.0,1.0,{when:%Y-%m-%d},{when:%H%M},A,80,6.1NRT,290.0,15.2,{daynight}\n"


def chimney_archive(path: Path, days: Sequence[int] = range(1, 13)) -> Path:
    """A MODIS archive: the chimney on each of ``days`` before NOW (pixel centres scattered inside its cell, day
    and night passes), plus one hotspot far outside the deployment."""
    lines = [HEADER]
    for day in days:
        when = NOW - timedelta(days=day)
        lines.append(row(CHIMNEY[0] + 0.0001 * (day % 3), CHIMNEY[1] + 0.0002 * (day % 2), when))
        lines.append(row(CHIMNEY[0], CHIMNEY[1], when + timedelta(hours=12), "N"))  # the same local day's night
    lines.append(row(*FAR_AWAY, NOW - timedelta(days=2)))
    path.write_text("".join(lines), encoding="utf-8")
    return path


def hotspots(*places: tuple[float, float], when: datetime = NOW) -> list:
    return read_firms_csv(HEADER + "".join(row(lat, lon, when) for lat, lon in places)).hotspots


def import_file(engine: Engine, path: Path) -> history.HistoryFileSummary:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        return import_firms_history(session, path, history_coverage(session, RegionIndexCache(500)))


def counts(session: Session) -> dict[str, int]:
    return {
        table.__name__: session.scalar(select(func.count()).select_from(table)) or 0
        for table in (HotspotHistory, Observation, Incident, IncidentEvent, Alert)
    }


@pytest.fixture
def demo(engine: Engine) -> Engine:
    """The demo county, each township with an alert recipient (so a new incident anywhere queues an alert)."""
    with transaction(make_session_factory(engine)) as session:
        load_demo(session)
        for unit in ("DEMO01", "DEMO02", "DEMO03", "DEMO04"):
            create_recipient(
                session, name=f"{unit} 巡查群", unit_code=unit, channel=Channel.WEBHOOK, target="http://127.0.0.1:9/"
            )
    return engine


def test_an_archive_chimney_is_a_static_source_and_the_archive_opens_nothing(demo: Engine, tmp_path: Path) -> None:
    summary = import_file(demo, chimney_archive(tmp_path / "archive.csv"))
    assert (summary.read, summary.in_coverage, summary.stored, summary.already_known) == (25, 24, 24, 0)
    assert summary.rejected == []
    factory = make_session_factory(demo)
    with factory() as session:
        # History only: no observation, incident, event or alert came from the archive.
        assert counts(session) == {
            "HotspotHistory": 24,
            "Observation": 0,
            "Incident": 0,
            "IncidentEvent": 0,
            "Alert": 0,
        }
    with transaction(factory) as session:
        result = ingest_hotspots(
            session, hotspots(CHIMNEY, FARMLAND), indexes=RegionIndexCache(500), settings=Settings(), actor=ADMIN
        )
    assert result.held == {"static_source": 1}
    assert len(result.new_incidents) == 1  # the farmland fire still alerts
    with factory() as session:
        held = session.scalars(select(Observation).where(Observation.incident_id.is_(None))).one()
        decision = json.loads(held.details)["screening"]
        assert decision["status"] == "static_source"
        assert "on 12 distinct local days" in decision["reason"]  # a day and a night pass are one local day
        assert session.scalar(select(func.count()).select_from(Alert)) == 1  # the farmland fire's, only


def test_history_and_stored_observations_are_counted_together_within_the_window(demo: Engine, tmp_path: Path) -> None:
    # 6 days in the archive, plus 3 days older than the 365-day window (not counted) …
    import_file(demo, chimney_archive(tmp_path / "archive.csv", days=[*range(1, 7), 400, 401, 402]))
    factory = make_session_factory(demo)
    indexes, settings = RegionIndexCache(500), Settings()
    # … and 4 days the service saw itself: 10 days in all.
    for day in range(20, 24):
        with transaction(factory) as session:
            ingest_hotspots(
                session,
                hotspots(CHIMNEY, when=NOW - timedelta(days=day)),
                indexes=indexes,
                settings=settings,
                actor=ADMIN,
            )
    with transaction(factory) as session:
        result = ingest_hotspots(session, hotspots(CHIMNEY), indexes=indexes, settings=settings, actor=ADMIN)
    assert result.held == {"static_source": 1}
    with factory() as session:
        reasons = [json.loads(o.details)["screening"]["reason"] for o in session.scalars(select(Observation))]
    assert any("on 10 distinct local days" in reason for reason in reasons)


def test_a_reimport_stores_nothing_new(demo: Engine, tmp_path: Path) -> None:
    archive = chimney_archive(tmp_path / "archive.csv")
    first = import_file(demo, archive)
    again = import_file(demo, archive)
    assert (again.in_coverage, again.stored, again.already_known) == (24, 0, 24)
    # A second archive overlapping the first (one row repeated inside it, too) adds only what is new.
    overlap = tmp_path / "overlap.csv"
    text = archive.read_text(encoding="utf-8")
    overlap.write_text(text + row(*CHIMNEY, NOW - timedelta(days=30)) * 2, encoding="utf-8")
    third = import_file(demo, overlap)
    assert (third.in_coverage, third.stored, third.already_known) == (26, 1, 25)
    with make_session_factory(demo)() as session:
        assert counts(session)["HotspotHistory"] == first.stored + 1


def test_a_bad_row_is_reported_with_its_line_and_field_and_the_rest_is_kept(demo: Engine, tmp_path: Path) -> None:
    lines = chimney_archive(tmp_path / "archive.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3] = lines[3].replace("44.2", "44.x", 1)  # line 4: latitude
    lines[6] = lines[6].replace(",A,", ",Q,", 1)  # line 7: satellite
    lines.insert(9, "44.2,125.6,330.5\n")  # line 10: too few fields
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(lines), encoding="utf-8")
    summary = import_file(demo, bad)
    assert [(r.source_name, r.line, r.field) for r in summary.rejected] == [
        ("bad.csv", 4, "latitude"),
        ("bad.csv", 7, "satellite"),
        ("bad.csv", 10, None),
    ]
    assert (summary.read, summary.in_coverage, summary.stored) == (26, 22, 22)


def test_a_file_that_fails_part_way_stores_nothing_of_it(
    demo: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of 2 lines: the first batches are stored before the undecodable line is reached, then rolled back.
    monkeypatch.setattr(history, "read_firms_csv_chunks", functools.partial(read_firms_csv_chunks, chunk_lines=2))
    broken = tmp_path / "broken.csv"
    broken.write_bytes(chimney_archive(tmp_path / "archive.csv").read_bytes() + b"\xff\xfe\n")
    with pytest.raises(FirmsFormatError, match=r"broken.csv:27: not UTF-8"):
        import_file(demo, broken)
    with make_session_factory(demo)() as session:
        assert counts(session)["HotspotHistory"] == 0


def test_history_needs_imported_units(engine: Engine) -> None:
    with make_session_factory(engine)() as session, pytest.raises(InputError, match="regions import"):
        history_coverage(session, RegionIndexCache(500))


def test_the_neighbourhood_setting_reaches_the_screener(demo: Engine, tmp_path: Path) -> None:
    """A MODIS chimney whose pixel centres fall on both sides of a cell border: 6 days in each cell."""
    archive = tmp_path / "archive.csv"
    west, east = (CHIMNEY[0], 125.6098), (CHIMNEY[0], 125.6102)  # cells 12560 and 12561
    archive.write_text(
        HEADER + "".join(row(*(west if d % 2 else east), NOW - timedelta(days=d)) for d in range(1, 13)),
        encoding="utf-8",
    )
    import_file(demo, archive)
    factory = make_session_factory(demo)
    statuses = {}
    for neighbourhood in (0, 1):
        settings = Settings(screening={"static_neighbourhood": neighbourhood})
        with transaction(factory) as session:
            result = ingest_hotspots(
                session,
                hotspots(west, when=NOW + timedelta(hours=neighbourhood)),
                indexes=RegionIndexCache(500),
                settings=settings,
                actor=ADMIN,
            )
        statuses[neighbourhood] = dict(result.held) or {"accepted": len(result.new_incidents)}
    assert statuses == {0: {"accepted": 1}, 1: {"static_source": 1}}
    assert Settings().screening.static_neighbourhood == 0
    with pytest.raises(ConfigError, match="static_neighbourhood"):
        load_settings(screening={"static_neighbourhood": 2})


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    return subprocess.run(
        [STRAWFIRE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_firms_history_command(tmp_path: Path) -> None:
    area = tmp_path / "county.geojson"
    area.write_text(
        json.dumps(
            {
                "type": "Feature",
                "properties": {"code": "220199", "name": "试验县"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[125.5, 44.1], [125.7, 44.1], [125.7, 44.4], [125.5, 44.4], [125.5, 44.1]]],
                },
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    imported = run(
        "regions", "import", str(area), "--level", "county", "--crs", "wgs84", "--code-field", "code",
        "--name-field", "name", cwd=tmp_path,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    archive = chimney_archive(tmp_path / "archive.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + row(*CHIMNEY, NOW - timedelta(days=40)) + row(*CHIMNEY, NOW).replace("80,", "180,"))
    first = run("firms", "history", str(archive), str(bad), "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["totals"] == {
        "files": 2,
        "failed_files": 0,
        "read": 27,
        "in_coverage": 25,
        "stored": 25,
        "already_known": 0,
        "rejected": 1,
    }
    assert report["files"][1]["rejected"][0] | {"reason": "…"} == {
        "file": "bad.csv",
        "line": 3,
        "field": "confidence",
        "reason": "…",
    }
    again = run("firms", "history", str(archive), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "stored 0, already known 24" in again.stdout
    missing = run("firms", "history", str(tmp_path / "nope.csv"), str(archive), cwd=tmp_path)
    assert missing.returncode == 2
    assert "nope.csv" in missing.stderr
    fresh = tmp_path / "today.csv"
    fresh.write_text(HEADER + row(*CHIMNEY, NOW), encoding="utf-8")
    ingested = run("firms", "ingest", str(fresh), cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    assert "new incidents 0, screened out 1 (static_source 1)" in ingested.stdout


@pytest.mark.shared_data
def test_the_real_modis_day_keeps_exactly_the_rows_in_coverage(engine: Engine) -> None:
    path = shared_path("firms", "MODIS_C6_1_Global_24h_2025-04-23_NEChina_bbox.csv")
    boundary = shared_path("boundaries", "220100_full.json")
    crs = parse_crs("gcj02")
    units, report = read_units(boundary, level=RegionLevel.COUNTY, crs=crs)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        import_units(session, units, level=RegionLevel.COUNTY, crs=crs, report=report)
    summary = import_file(engine, path)
    # The rows screening would not call outside_coverage: 9 pixels centred in Changchun + 1 whose footprint reaches
    # in (tests/service/test_screening_real.py).
    rows = read_firms_csv(path).hotspots
    with factory() as session:
        coverage = history_coverage(session, RegionIndexCache(500))
        stored = set(session.scalars(select(HotspotHistory.source_key)))
    decisions = Screener(coverage=coverage).screen(rows)
    expected = {d.key for d in decisions if d.status is not ScreeningStatus.OUTSIDE_COVERAGE}
    assert stored == expected
    assert (summary.read, summary.in_coverage, summary.stored, summary.rejected) == (484, 10, 10, [])
