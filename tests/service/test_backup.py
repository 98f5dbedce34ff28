"""`strawfire db backup`: a checked snapshot of the live SQLite database, verified evidence, the token key."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.backup import backup
from service.config import Settings
from service.db import make_engine, make_session_factory, open_database, transaction
from service.demo import load_demo
from service.errors import InputError
from service.flows import ingest_observations
from service.regions.service import RegionIndexCache
from tests.alerts.test_outbox import ADMIN, observation

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_backups_taken_while_fires_come_in_are_consistent_and_restore(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    engine = open_database(settings.effective_database_url)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_demo(session)
    (settings.data_dir / "secret_key").write_text("k" * 48)
    evidence = settings.data_dir / "evidence"
    photo = b"\xff\xd8 a photo \xff\xd9"
    name = hashlib.sha256(photo).hexdigest()
    (evidence / name[:2]).mkdir(parents=True)
    (evidence / name[:2] / name).write_bytes(photo)

    stop = threading.Event()
    written: list[int] = []

    def fires_come_in() -> None:  # the service keeps writing while the backups run
        i = 0
        while not stop.is_set():
            with transaction(factory) as session:
                obs = [observation(1000 + i, 125.52 + 0.02 * (i % 5), 44.33 + 0.015 * (i // 5 % 4), minutes=i)]
                ingest_observations(session, obs, indexes=RegionIndexCache(500), settings=settings, actor=ADMIN)
            written.append(i)
            i += 1

    writer = threading.Thread(target=fires_come_in)
    writer.start()
    try:
        summaries = [backup(settings, tmp_path / "backups", now=NOW + timedelta(seconds=s)) for s in range(3)]
    finally:
        stop.set()
        writer.join()
    assert written  # the writer ran alongside
    for summary in summaries:
        folder = summary.folder
        manifest = json.loads((folder / "manifest.json").read_text())
        copy = sqlite3.connect(folder / "strawfire.sqlite3")
        try:
            assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one file, no -wal beside it
            observations = copy.execute("SELECT count(*) FROM observations").fetchone()[0]
            events = copy.execute("SELECT count(*) FROM incident_events").fetchone()[0]
        finally:
            copy.close()
        assert manifest["rows"]["observations"] == observations == summary.rows["observations"]
        assert manifest["rows"]["incident_events"] == events
        assert manifest["revision"] == summary.revision is not None
        assert manifest["evidence"] == {"files": 1, "bytes": len(photo), "damaged": []}
        assert (folder / "evidence" / name[:2] / name).read_bytes() == photo
        assert (folder / "secret_key").read_text() == "k" * 48
        assert mode(folder) == 0o700
        assert mode(folder / "secret_key") == mode(folder / "strawfire.sqlite3") == 0o600
        assert manifest["database"]["sha256"] == hashlib.sha256((folder / "strawfire.sqlite3").read_bytes()).hexdigest()
    engine.dispose()

    # Restore: the backup's files in a new data folder serve the same data.
    restored = Settings(data_dir=tmp_path / "restored")
    restored.data_dir.mkdir()
    last = summaries[-1].folder
    for item in ("strawfire.sqlite3", "secret_key"):
        (restored.data_dir / item).write_bytes((last / item).read_bytes())
    engine = open_database(restored.effective_database_url)
    with engine.connect() as connection:
        count = connection.exec_driver_sql("SELECT count(*) FROM observations").scalar_one()
    engine.dispose()
    assert count == summaries[-1].rows["observations"]


def test_a_damaged_evidence_file_is_named_and_keep_removes_only_complete_older_backups(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    open_database(settings.effective_database_url).dispose()
    good, bad = b"good photo", b"bad photo"
    for data, stored in ((good, good), (bad, b"bad ph0to")):  # the second's bytes changed on disk
        name = hashlib.sha256(data).hexdigest()
        (settings.data_dir / "evidence" / name[:2]).mkdir(parents=True, exist_ok=True)
        (settings.data_dir / "evidence" / name[:2] / name).write_bytes(stored)
    root = tmp_path / "backups"
    root.mkdir()
    (root / "strawfire-20260101T000000Z.partial").mkdir()  # another run's, being written
    first = backup(settings, root, now=NOW)
    bad_name = hashlib.sha256(bad).hexdigest()
    assert first.damaged == [f"{bad_name[:2]}/{bad_name}"]
    assert first.evidence_files == 2  # copied all the same: the rest of the backup is kept
    backup(settings, root, now=NOW + timedelta(hours=1))
    third = backup(settings, root, now=NOW + timedelta(hours=2), keep=2)
    assert third.removed == [first.folder]
    assert sorted(p.name for p in root.iterdir()) == [
        "strawfire-20260101T000000Z.partial", "strawfire-20261130T090000Z", "strawfire-20261130T100000Z",
    ]  # fmt: skip
    with pytest.raises(InputError, match="already there"):
        backup(settings, root, now=NOW + timedelta(hours=2))


def test_postgresql_and_a_missing_database_are_refused_clearly(tmp_path: Path) -> None:
    postgres = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://u:pw-hunter2@db/strawfire")
    with pytest.raises(InputError, match="pg_dump") as refused:
        backup(postgres, tmp_path / "b", now=NOW)
    assert "hunter2" not in str(refused.value)
    with pytest.raises(InputError, match="no database here"):
        backup(Settings(data_dir=tmp_path / "empty"), tmp_path / "b", now=NOW)
    assert not (tmp_path / "b").exists()


def test_the_backup_command_as_a_user_runs_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [STRAWFIRE, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    assert run("db", "upgrade").returncode == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'strawfire.sqlite3'}")
    with transaction(make_session_factory(engine)) as session:
        load_demo(session)
    engine.dispose()
    done = run("db", "backup", str(tmp_path / "nightly"), "--keep", "7")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"backed up to {tmp_path / 'nightly'}/strawfire-")
    assert "0 evidence files" in done.stdout
    [folder] = (tmp_path / "nightly").iterdir()
    assert (folder / "manifest.json").is_file()
    damaged = tmp_path / "var" / "evidence" / "ab" / ("ab" + "0" * 62)
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"not what the name says")
    failed = run("db", "backup", str(tmp_path / "again"))  # another folder: the same second may not be over
    assert failed.returncode == 1, failed.stderr
    assert f"damaged evidence file (its bytes do not match its sha256 name): ab/{damaged.name}" in failed.stderr
    assert "1 evidence files" in failed.stdout
