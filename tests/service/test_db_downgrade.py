"""Going down the migrations with data in the database, on SQLite and PostgreSQL, and ``strawfire db downgrade``.

Batch mode on SQLite recreates tables (copy, drop, rename); with foreign keys on, dropping ``incidents`` while
observations and events reference it failed (0006's downgrade), and the failed step left an ``_alembic_tmp_*``
table behind. The DEMO scenario plus one row of every other kind stand in for a real deployment.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import shapely
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

import service.db
from service import tables  # noqa: F401  (every table on the metadata)
from service.config import Settings
from service.db import (
    DOWNGRADE_LOSSES,
    Base,
    DanglingForeignKeysError,
    alembic_config,
    downgrade,
    downgrade_plan,
    make_engine,
    make_session_factory,
    open_database,
    transaction,
    upgrade,
)
from service.demo import load_demo, load_demo_scenario
from service.regions.service import RegionIndexCache

STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))
AT = datetime(2025, 11, 3, 2, 0, tzinfo=UTC)
# One row of each kind the DEMO scenario does not make, each tied to the DEMO incidents where it has a foreign key.
EXTRA_ROWS = [
    "INSERT INTO recipients (name, unit_code, role, channel, target, active, created_at)"
    " VALUES ('DEMO township', 'DEMO01', 'township', 'webhook', 'http://127.0.0.1:9/hook', :yes, :at)",
    "INSERT INTO alerts (incident_id, recipient_id, kind, idempotency_key, status, attempts, next_attempt_at,"
    " created_at, digest_size) VALUES ((SELECT min(id) FROM incidents), (SELECT max(id) FROM recipients), 'new',"
    " 'demo-withdrawn', 'withdrawn', 0, :at, :at, 1)",
    "INSERT INTO evidence (incident_id, sha256, content_type, size_bytes, filename, uploaded_by, uploaded_at, flags)"
    " VALUES ((SELECT min(id) FROM incidents), :sha, 'image/jpeg', 1234, 'site.jpg', 'demo-patrol', :at, '')",
    "UPDATE incidents SET repeat_of_incident_id = (SELECT min(id) FROM incidents)"
    " WHERE id = (SELECT max(id) FROM incidents)",
    "INSERT INTO observations (kind, source_key, observed_at, latitude, longitude, region_wkb, confidence, details,"
    " incident_id, received_at) VALUES ('patrol', 'patrol:DEMO01:r-1', :at, 44.05, 125.05, :wkb, 0.99, :details,"
    " (SELECT min(id) FROM incidents), :at)",
    "INSERT INTO cameras (camera_id, record, position, updated_at) VALUES ('tower-1', '{}', 0, :at)",
    "INSERT INTO camera_heartbeats (camera_id, preset_id, at, frames, errors, frozen, last_frame_at, received_at)"
    " VALUES ('tower-1', 'p1', :at, 10, 0, :no, :at, :at)",
    "INSERT INTO hotspot_history (source_key, acq_utc, local_date, latitude, longitude, satellite, instrument,"
    " daynight, source_file, imported_at) VALUES ('firms:1', :at, '2025-11-03', 44.0, 125.0, 'Aqua', 'MODIS', 'D',"
    " 'archive.csv', :at)",
    "INSERT INTO component_runs (name, last_attempt_at, last_success_at, consecutive_failures, last_error, detail)"
    " VALUES ('alerts', :at, :at, 0, NULL, '{}')",
]


def _load(engine: Engine) -> None:
    with transaction(make_session_factory(engine)) as session:
        assert load_demo(session)
        load_demo_scenario(session, Settings(), RegionIndexCache(500))
    params = {
        "at": AT,
        "yes": True,
        "no": False,
        "sha": "ab" * 32,
        "wkb": shapely.to_wkb(shapely.Point(125.05, 44.05).buffer(0.0004)),
        "details": json.dumps({"reporter_unit": "DEMO01"}),
    }
    with engine.begin() as connection:
        for statement in EXTRA_ROWS:
            connection.execute(text(statement), params)


def _snapshot(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every strawfire table, in primary-key order."""
    with engine.connect() as connection:
        names = set(inspect(connection).get_table_names()) - {"alembic_version"}
        return {
            name: [dict(row._mapping) for row in connection.execute(text(f"SELECT * FROM {name} ORDER BY 1, 2"))]
            for name in names
        }


def _as_kept(table: str, row: dict[str, Any], columns: set[str]) -> dict[str, Any]:
    """A row as the downgrades documented in ``DOWNGRADE_LOSSES`` keep it: patrol reports as drone observations,
    withdrawn alerts as failed ones, the repeat-at-site link dropped; only ``columns`` (the schema's now)."""
    kept = dict(row)
    if table == "observations" and kept["kind"] == "patrol":
        kept["kind"] = "drone"
    if table == "alerts" and kept["status"] == "withdrawn":
        kept["status"] = "failed"
    kept.pop("repeat_of_incident_id", None)
    return {name: value for name, value in kept.items() if name in columns}


def _assert_kept(original: dict[str, list[dict[str, Any]]], now: dict[str, list[dict[str, Any]]], where: str) -> None:
    for table, rows in now.items():
        columns = set(rows[0]) - {"repeat_of_incident_id"} if rows else set()
        got = [{name: value for name, value in row.items() if name in columns} for row in rows]
        assert got == [_as_kept(table, row, columns) for row in original[table]], (where, table)


def _revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_every_revision_says_what_going_below_it_loses(engine: Engine) -> None:
    script = ScriptDirectory.from_config(alembic_config(engine))
    assert set(DOWNGRADE_LOSSES) == {revision.revision for revision in script.walk_revisions()}


def test_demo_data_goes_down_step_by_step_and_back_up_keeping_what_survives(engine: Engine) -> None:
    """head → 0005 → head keeps every row of the tables 0005 has (bar the documented changes); then every step
    down to base, rows checked at each, and up to head again: the schema matches the models and the DEMO loads."""
    _load(engine)
    original = _snapshot(engine)
    assert len(original["incidents"]) == 12
    assert len(original["incident_events"]) > 12

    current, plan = downgrade_plan(engine, "base")
    assert current == "0013"
    lost = {step.revision: {loss.what: count for loss, count in step.losses} for step in plan}
    assert lost["0013"] == {"patrol reports become drone observations (details kept)": 1}
    assert lost["0012"] == {"withdrawn alerts become failed ones": 1}
    assert lost["0011"] == lost["0010"] == {}
    assert lost["0006"] == {"repeat-at-site links between incidents dropped": 1}
    assert lost["0004"] == {"evidence photo records dropped (their files stay in the data folder)": 1}
    assert lost["0002"]["incidents dropped"] == 12
    assert lost["0002"]["incident events dropped"] == len(original["incident_events"])
    assert lost["0001"]["region units dropped"] == len(original["regions"])

    downgrade(engine, "0005")  # undoes 0006, which recreates incidents: the step that failed on SQLite
    at_0005 = _snapshot(engine)
    assert set(at_0005) == {"regions", "region_imports", "incidents", "users", "incident_events", "observations"} | {
        "recipients",
        "alerts",
        "evidence",
        "cameras",
    }
    _assert_kept(original, at_0005, "0005")
    upgrade(engine)
    back = _snapshot(engine)
    _assert_kept(original, {table: back[table] for table in at_0005}, "head again")
    assert all(row["repeat_of_incident_id"] is None for row in back["incidents"])
    assert back["hotspot_history"] == back["camera_heartbeats"] == back["component_runs"] == []

    revisions = [step.down_to for step in plan]
    for revision in revisions:
        downgrade(engine, revision)
        assert _revision(engine) == (None if revision == "base" else revision)
        _assert_kept(back, _snapshot(engine), revision)
    with engine.connect() as connection:
        assert inspect(connection).get_table_names() == ["alembic_version"]

    upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    _load(engine)


def test_a_step_leaving_dangling_rows_is_rolled_back_whole_on_sqlite(tmp_path: Path) -> None:
    """A row written with foreign keys off (the sqlite3 shell's default) stops the migration with the rows named;
    the step's recreated table is rolled back too (Python's sqlite3 used to commit each DDL statement alone)."""
    path = tmp_path / "s.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with sqlite3.connect(path) as shell:
        shell.execute(
            "INSERT INTO observations (kind, source_key, observed_at, latitude, longitude, region_wkb, confidence,"
            " details, incident_id, received_at) VALUES ('patrol', 'patrol:x', '2025-11-03 02:00:00', 44.0, 125.0,"
            " x'00', 0.9, '{}', 999, '2025-11-03 02:00:00')"
        )
    with pytest.raises(DanglingForeignKeysError) as caught:
        downgrade(engine, "0012")
    assert "0013 → 0012 rolled back" in str(caught.value)
    assert "1 observations row(s) referencing missing incidents rows (rowid 1)" in str(caught.value)
    assert _revision(engine) == "0013"
    with engine.connect() as connection:
        names = [row[0] for row in connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert not [name for name in names if name.startswith("_alembic_tmp")]
        ddl = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'observations'").scalar_one()
        assert "'patrol'" in ddl  # 0013's constraint: the recreated table without it was rolled back
    engine.dispose()


def test_the_migration_connection_goes_back_to_the_pool_as_it_came(tmp_path: Path) -> None:
    """Foreign keys on again, and the driver's own transactions (a rolled-back insert is gone)."""
    engine = make_engine(f"sqlite:///{tmp_path / 's.sqlite3'}")
    upgrade(engine)
    command.downgrade(alembic_config(engine), "0012")
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        with pytest.raises(IntegrityError):
            connection.exec_driver_sql(
                "INSERT INTO evidence (incident_id, sha256, content_type, size_bytes, filename, uploaded_by,"
                " uploaded_at, flags) VALUES (999, 'x', 'image/jpeg', 1, 'a.jpg', 'u', '2025-11-03', '')"
            )
        connection.rollback()
        connection.exec_driver_sql("INSERT INTO cameras VALUES ('c', '{}', 0, '2025-11-03')")
        connection.rollback()
        assert connection.exec_driver_sql("SELECT count(*) FROM cameras").scalar_one() == 0
    engine.dispose()


def test_opening_a_migrated_database_does_not_wait_for_another_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command opens the database through the migrations: with nothing to migrate, reading the revision must
    not queue behind a long write (a FIRMS import) for the busy timeout, as a write-locking BEGIN would."""
    # A busy timeout far past the bound below: an open that waited for the writer cannot pass as a slow machine's.
    monkeypatch.setattr(service.db, "SQLITE_BUSY_TIMEOUT_MS", 120_000)
    path = tmp_path / "s.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO cameras VALUES ('c', '{}', 0, '2025-11-03')")
        started = time.monotonic()
        open_database(f"sqlite:///{path}").dispose()
        assert time.monotonic() - started < 30  # the busy timeout is 120 s
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def _strawfire(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("STRAWFIRE_")}
    environment.update({"STRAWFIRE_DATA_DIR": str(data), "COLUMNS": "200"})
    return subprocess.run(
        [STRAWFIRE, *args], cwd=data.parent, env=environment, capture_output=True, text=True, timeout=300, check=False
    )


def test_db_downgrade_lists_the_losses_and_needs_yes_for_them(tmp_path: Path) -> None:
    data = tmp_path / "var"
    help_text = _strawfire("db", "downgrade", "--help", data=data)
    assert help_text.returncode == 0, help_text.stderr
    assert "Back up first" in help_text.stdout
    assert "strawfire db backup DIR" in help_text.stdout
    assert _strawfire("db", "upgrade", data=data).returncode == 0
    assert _strawfire("demo", "load", data=data).returncode == 0
    database = data / "strawfire.sqlite3"

    def revision() -> str:
        with sqlite3.connect(database) as connection:
            return str(connection.execute("SELECT version_num FROM alembic_version").fetchone()[0])

    refused = _strawfire("db", "downgrade", "0001", data=data)
    assert refused.returncode == 2, refused.stderr
    assert "0002 → 0001 (Incidents, observations, append-only incident events and users.): 12 incidents dropped" in (
        refused.stderr
    )
    assert "0009 → 0008 (The latest run of each background component" in refused.stderr
    assert "observation kind.): no rows lost" in refused.stderr
    assert "error: these steps drop or change rows: back up first (strawfire db backup DIR" in refused.stderr
    assert revision() == "0013"

    lossless = _strawfire("db", "downgrade", "0009", data=data)  # the DEMO has no rows these steps touch
    assert lossless.returncode == 0, lossless.stderr
    assert lossless.stdout.startswith("database at 0009 (sqlite:///")
    one_step = _strawfire("db", "downgrade", "-1", data=data)  # a revision, not an option
    assert one_step.returncode == 0, one_step.stderr
    assert revision() == "0008"
    assert _strawfire("db", "downgrade", "0012", data=data).returncode == 2  # above the database: named, no traceback

    confirmed = _strawfire("db", "downgrade", "0001", "--yes", data=data)
    assert confirmed.returncode == 0, confirmed.stderr
    assert revision() == "0001"
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM regions").fetchone()[0] == 5
    assert _strawfire("db", "upgrade", data=data).returncode == 0
    assert revision() == "0013"
