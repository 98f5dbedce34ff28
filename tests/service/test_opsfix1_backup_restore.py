"""`strawfire db restore` after a crash, `db backup`'s ordinary failures, `status` without a database, and a
database migrated by a newer release: run as a user runs them (the installed command, real SQLite files, a real
``strawfire alerts worker`` holding the database, PostgreSQL where configured)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from service.backup import backup, restore
from service.config import Settings
from service.db import NewerDatabaseError, make_engine, make_session_factory, open_database, transaction, upgrade
from service.demo import load_demo
from service.errors import InputError
from service.flows import ingest_observations
from service.regions.service import RegionIndexCache
from tests.alerts.test_outbox import ADMIN, observation
from tests.conftest import POSTGRES_URL, _reset_postgres

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))
NEWER = "this database was migrated by a newer strawfire (revision 0014; this release knows up to 0013)"


def user_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRAWFIRE_")}
    env.update({f"STRAWFIRE_{name.upper()}": value for name, value in settings.items()})
    return env


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STRAWFIRE, *args], cwd=cwd, env=env or user_env(), capture_output=True, text=True, timeout=120, check=False
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed as strawfire's own errors do: exit 2, one line on stderr, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    return line


def ingest_fires(settings: Settings, first: int, count: int) -> None:
    """``count`` satellite fires through the service's own ingest, the engine closed afterwards."""
    engine = open_database(settings.effective_database_url)
    try:
        factory = make_session_factory(engine)
        for i in range(first, first + count):
            with transaction(factory) as session:
                obs = [observation(1000 + i, 125.52 + 0.02 * (i % 5), 44.33 + 0.015 * (i // 5 % 4), minutes=i)]
                ingest_observations(session, obs, indexes=RegionIndexCache(500), settings=settings, actor=ADMIN)
    finally:
        engine.dispose()


def integrity_check(database: Path) -> list[str]:
    """``PRAGMA integrity_check`` as SQLite answers it, or its error ("database disk image is malformed")."""
    connection = sqlite3.connect(database)
    try:
        return [row[0] for row in connection.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        connection.close()


def evidence_file(settings: Settings, data: bytes) -> Path:
    name = hashlib.sha256(data).hexdigest()
    path = settings.data_dir / "evidence" / name[:2] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def start_alerts_worker(folder: Path) -> subprocess.Popen[bytes]:
    """A real ``strawfire alerts worker`` on ``folder/var`` (its database closed until then), once it has the
    database open."""
    database = folder / "var" / "strawfire.sqlite3"
    shm = database.with_name(database.name + "-shm")
    assert not shm.exists()
    worker = subprocess.Popen(
        [STRAWFIRE, "alerts", "worker"], cwd=folder, env=user_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not shm.exists():  # SQLite makes the -shm file when the worker opens the database
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            pytest.fail("the alert worker never opened the database")
        time.sleep(0.1)
    return worker


@pytest.fixture
def alerts_worker(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``strawfire alerts worker`` on a new database in ``tmp_path/var``, stopped after the test."""
    open_database(Settings(data_dir=tmp_path / "var").effective_database_url).dispose()
    worker = start_alerts_worker(tmp_path)
    try:
        yield worker
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=30)


def test_restore_after_a_crash_removes_the_stale_wal_that_a_copy_by_hand_replays(tmp_path: Path) -> None:
    """The README's restore (copy the backup's file into the data folder) after a ``kill -9``: SQLite replays the
    dead process's ``-wal`` onto the restored file ("database disk image is malformed"). ``db restore`` removes it
    and puts back the backup's database, evidence files and token key."""
    settings = Settings(data_dir=tmp_path / "var")
    database = settings.data_dir / "strawfire.sqlite3"
    wal = database.with_name(database.name + "-wal")
    engine = open_database(settings.effective_database_url)
    with transaction(make_session_factory(engine)) as session:
        load_demo(session)
    engine.dispose()
    ingest_fires(settings, 0, 10)
    (settings.data_dir / "secret_key").write_text("k" * 48)
    photo = evidence_file(settings, b"\xff\xd8 a photo \xff\xd9")
    made = run(tmp_path, "db", "backup", str(tmp_path / "backups"))
    assert made.returncode == 0, made.stderr
    [folder] = (tmp_path / "backups").iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())

    # After the backup: more fires (checkpointed into the file), then a worker holds the database while more come
    # in (they stay in its -wal), and dies by kill -9 with them.
    ingest_fires(settings, 10, 10)
    assert not wal.exists()
    worker = start_alerts_worker(tmp_path)
    try:
        ingest_fires(settings, 20, 10)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    assert wal.stat().st_size > 0
    photo.unlink()  # lost with the disk, say
    later = evidence_file(settings, b"a photo uploaded after the backup")
    (settings.data_dir / "secret_key").write_text("n" * 48)

    by_hand = tmp_path / "by-hand"  # what the README said to do, on a copy of the data folder
    by_hand.mkdir()
    for item in settings.data_dir.glob("strawfire.sqlite3*"):
        (by_hand / item.name).write_bytes(item.read_bytes())
    (by_hand / "strawfire.sqlite3").write_bytes((folder / "strawfire.sqlite3").read_bytes())
    assert integrity_check(by_hand / "strawfire.sqlite3") != ["ok"]  # the dead worker's log replayed onto it

    refused = run(tmp_path, "db", "restore", str(folder))
    assert "var/strawfire.sqlite3: a database is already here" in one_line_error(refused)
    assert "--yes" in refused.stderr
    assert wal.exists()  # nothing touched

    done = run(tmp_path, "db", "restore", str(folder), "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"restored {folder} into var/strawfire.sqlite3: database at revision 0013")
    assert "1 evidence files copied (0 already there), token key restored" in done.stdout
    assert "removed var/strawfire.sqlite3-wal" in done.stdout
    assert sorted(p.name for p in settings.data_dir.glob("strawfire.sqlite3*")) == ["strawfire.sqlite3"]
    assert database.read_bytes() == (folder / "strawfire.sqlite3").read_bytes()
    assert database.stat().st_mode & 0o777 == 0o600
    assert photo.read_bytes() == b"\xff\xd8 a photo \xff\xd9"
    assert later.is_file()  # merged: a file the backup does not have is left alone
    assert (settings.data_dir / "secret_key").read_text() == "k" * 48
    assert integrity_check(database) == ["ok"]
    engine = open_database(settings.effective_database_url)  # as serve opens it
    try:
        with engine.connect() as connection:
            observations = connection.exec_driver_sql("SELECT count(*) FROM observations").scalar_one()
    finally:
        engine.dispose()
    assert observations == manifest["rows"]["observations"] == 10


def test_restore_is_refused_while_a_worker_has_the_database_open(
    tmp_path: Path, alerts_worker: subprocess.Popen[bytes]
) -> None:
    assert run(tmp_path, "db", "backup", str(tmp_path / "backups")).returncode == 0
    [folder] = (tmp_path / "backups").iterdir()
    refused = run(tmp_path, "db", "restore", str(folder), "--yes")
    assert "var/strawfire.sqlite3: the database is in use" in one_line_error(refused)
    alerts_worker.terminate()
    alerts_worker.wait(timeout=30)
    done = run(tmp_path, "db", "restore", str(folder), "--yes")
    assert done.returncode == 0, done.stderr


def test_restore_checks_the_backup_before_touching_anything(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    open_database(settings.effective_database_url).dispose()
    (settings.data_dir / "secret_key").write_text("k" * 48)
    summary = backup(settings, tmp_path / "backups", now=NOW)
    folder = summary.folder

    fresh = Settings(data_dir=tmp_path / "new-machine")  # no data folder yet: no --yes needed
    restored = restore(fresh, folder)
    assert (restored.replaced, restored.secret_key, restored.removed) == (False, True, [])
    assert (fresh.data_dir / "strawfire.sqlite3").read_bytes() == (folder / "strawfire.sqlite3").read_bytes()

    with pytest.raises(InputError, match="restoring replaces it"):
        restore(fresh, folder)
    with pytest.raises(InputError, match="pg_restore"):
        restore(Settings(data_dir=tmp_path, database_url="postgresql+psycopg://u:pw@db/strawfire"), folder)
    with pytest.raises(InputError, match="no backup folder here"):
        restore(settings, tmp_path / "nowhere", replace=True)
    partial = tmp_path / "backups" / "strawfire-20260101T000000Z.partial"
    partial.mkdir()
    (partial / "strawfire.sqlite3").write_bytes((folder / "strawfire.sqlite3").read_bytes())
    with pytest.raises(InputError, match=r"manifest.json: missing: not a complete backup"):
        restore(settings, partial, replace=True)

    before = (settings.data_dir / "strawfire.sqlite3").read_bytes()
    damaged = bytearray((folder / "strawfire.sqlite3").read_bytes())
    damaged[-100] ^= 0xFF
    (folder / "strawfire.sqlite3").write_bytes(bytes(damaged))
    with pytest.raises(InputError, match=r"strawfire\.sqlite3: its sha256 does not match the manifest's"):
        restore(settings, folder, replace=True)

    newer = tmp_path / "newer"  # a backup made by a newer release (its manifest agrees with its file)
    newer.mkdir()
    (newer / "strawfire.sqlite3").write_bytes(before)
    connection = sqlite3.connect(newer / "strawfire.sqlite3")
    connection.execute("UPDATE alembic_version SET version_num = '0014'")
    connection.commit()
    connection.close()
    sha = hashlib.sha256((newer / "strawfire.sqlite3").read_bytes()).hexdigest()
    (newer / "manifest.json").write_text(json.dumps({"revision": "0014", "database": {"sha256": sha}}))
    with pytest.raises(NewerDatabaseError, match=re.escape(NEWER)):
        restore(settings, newer, replace=True)
    assert (settings.data_dir / "strawfire.sqlite3").read_bytes() == before


def test_backup_failures_are_one_line_naming_the_file(tmp_path: Path) -> None:
    """Exit 1 means a damaged evidence file; an ordinary failure is one line and exit 2."""
    assert run(tmp_path, "db", "upgrade").returncode == 0
    (tmp_path / "a-file").write_text("")
    a_file = one_line_error(run(tmp_path, "db", "backup", "a-file"))
    assert a_file == "error: a-file: not a folder (backups go in a folder)"
    under = one_line_error(run(tmp_path, "db", "backup", "a-file/nightly"))
    assert under == "error: a-file/nightly: cannot write a backup here: Not a directory"

    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "strawfire.sqlite3").write_bytes(os.urandom(5000))
    not_a_database = one_line_error(run(tmp_path, "db", "backup", "b", env=user_env(data_dir="bad")))
    assert not_a_database == "error: bad/strawfire.sqlite3: cannot back up this database: file is not a database"
    assert list((tmp_path / "b").iterdir()) == []  # no partial backup left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_backup_from_a_read_only_data_folder_and_to_a_read_only_destination(tmp_path: Path) -> None:
    assert run(tmp_path, "db", "upgrade").returncode == 0
    (tmp_path / "locked").mkdir(mode=0o500)
    try:
        denied = one_line_error(run(tmp_path, "db", "backup", "locked"))
        assert denied.startswith("error: locked/strawfire-")
        assert denied.endswith("cannot write a backup here: Permission denied")
        (tmp_path / "var").chmod(0o500)
        unreadable = one_line_error(run(tmp_path, "db", "backup", "b"))
        assert unreadable.startswith("error: var/strawfire.sqlite3: cannot back up this database: ")
    finally:
        (tmp_path / "var").chmod(0o700)
        (tmp_path / "locked").chmod(0o700)


def test_status_without_a_database_says_so_and_makes_none(tmp_path: Path) -> None:
    result = run(tmp_path, "status")
    assert one_line_error(result) == (
        "error: var/strawfire.sqlite3: no database here (the service has not started on this data folder yet?)"
    )
    assert not (tmp_path / "var").exists()


@pytest.mark.postgres
def test_status_on_postgresql_needs_no_local_database(tmp_path: Path) -> None:
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not configured: set STRAWFIRE_TEST_POSTGRES_URL (.ci/run does)")
    engine = make_engine(POSTGRES_URL)
    _reset_postgres(engine)
    upgrade(engine)
    engine.dispose()
    result = run(tmp_path, "status", "--json", env=user_env(database_url=POSTGRES_URL))
    assert result.returncode == 1, result.stderr  # it reads the database: no alert worker has run there yet
    assert json.loads(result.stdout)["status"] == "degraded"
    assert not (tmp_path / "var" / "strawfire.sqlite3").exists()


def test_a_database_migrated_by_a_newer_release_is_named_as_such(engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0014'")
    url = engine.url.render_as_string(hide_password=False)
    env = user_env(database_url=url)
    # port 0: serve binds a port the system picks before it opens the database
    commands = [("db", "upgrade"), ("status",), ("db", "downgrade", "0012", "--yes"), ("serve", "--port", "0")]
    for command in commands:
        result = run(tmp_path, *command, env=env)
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr
        line = result.stderr.strip().splitlines()[-1]
        assert NEWER in line, command
        assert line.endswith("upgrade strawfire, or restore a backup made by this release")
        assert "Can't locate revision" not in line
    with pytest.raises(NewerDatabaseError):
        open_database(url).dispose()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one() == "0014"
