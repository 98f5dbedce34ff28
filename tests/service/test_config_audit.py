"""Configuration, secrets, database start-up and the CLI's answers to common mistakes (an audit's findings)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from service.config import Settings, load_settings
from service.errors import ConfigError

STRAWFIRE = str(Path(sys.executable).with_name("strawfire"))
PASSWORD = "hunter2-db-password"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("STRAWFIRE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("STRAWFIRE_")}
    environment.update(env or {})
    return subprocess.run(
        [STRAWFIRE, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120, check=False
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), result.stderr
    for word in expected:
        assert word in lines[0], result.stderr
    assert PASSWORD not in result.stderr + result.stdout


# --- settings ---------------------------------------------------------------------------------------------------


def test_a_typo_in_a_top_level_environment_variable_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """STRAWFIRE_DATABSE_URL was silently ignored: the service ran on the default SQLite file instead."""
    monkeypatch.setenv("STRAWFIRE_DATABSE_URL", f"postgresql+psycopg://u:{PASSWORD}@db/x")
    with pytest.raises(ConfigError, match="STRAWFIRE_DATABSE_URL") as info:
        load_settings()
    assert PASSWORD not in str(info.value)


def test_a_typo_in_a_nested_environment_variable_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRAWFIRE_FIRMS__MAPKEY", "abcdef0123456789")
    with pytest.raises(ConfigError, match="mapkey") as info:
        load_settings()
    assert "abcdef0123456789" not in str(info.value)


def test_environment_variables_of_other_components_are_not_settings_typos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRAWFIRE_VIDEO__DETECTOR", "rules")
    monkeypatch.setenv("STRAWFIRE_VIDEO__SPOOL_DIR", "spool")
    monkeypatch.setenv("STRAWFIRE_TEST_POSTGRES_URL", "postgresql+psycopg://u:p@db/x")
    monkeypatch.setenv("STRAWFIRE_PORT", "9005")
    assert load_settings().port == 9005


def test_the_database_password_is_not_in_the_settings_repr() -> None:
    settings = Settings(database_url=f"postgresql://strawfire:{PASSWORD}@db.example:5432/strawfire")
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert "db.example" in repr(settings)
    assert PASSWORD in settings.effective_database_url  # still usable


def test_a_malformed_settings_file_is_named() -> None:
    Path("strawfire.toml").write_text("port = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"strawfire\.toml"):
        load_settings()


def test_a_malformed_environment_value_is_not_blamed_on_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRAWFIRE_FIRMS__SOURCES", "VIIRS_SNPP_NRT")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "file" not in str(info.value)
    assert "firms" in str(info.value)


def test_a_weak_configured_signing_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-letter secret_key signed every API token (PyJWT only warns): anyone could brute-force it and forge
    an admin token."""
    monkeypatch.setenv("STRAWFIRE_SECRET_KEY", "changeme")
    with pytest.raises(ConfigError, match="secret_key") as info:
        load_settings()
    assert "changeme" not in str(info.value)
    monkeypatch.setenv("STRAWFIRE_SECRET_KEY", "x" * 32)
    assert load_settings().secret_key is not None


@pytest.mark.parametrize("content", ["", "short\n"])
def test_a_weak_signing_key_file_stops_the_start(tmp_path: Path, content: str) -> None:
    """An empty ``secret_key`` file (a disk full at first start) made every login a 500; a short one signed
    forgeable tokens."""
    from fastapi.testclient import TestClient

    from service.main import create_app

    data = tmp_path / "var"
    data.mkdir()
    (data / "secret_key").write_text(content, encoding="ascii")
    with pytest.raises(ConfigError, match="secret_key"), TestClient(create_app(Settings(data_dir=data))):
        pass


def test_the_public_demo_password_does_not_open_a_non_demo_service(tmp_path: Path) -> None:
    """`make run` (demo load) on the deployment's database left demo-admin / demo-password, printed in the README,
    able to log in as an administrator once the service ran for real (no --demo)."""
    from fastapi.testclient import TestClient

    from service.main import create_app

    assert run("demo", "load", cwd=tmp_path).returncode == 0
    settings = Settings(data_dir=tmp_path / "var", alerts={"run_worker": False})
    with TestClient(create_app(settings.model_copy(update={"demo": True}))) as client:  # the demo itself works
        login = client.post("/api/v1/auth/token", data={"username": "demo-admin", "password": "demo-password"})
        assert login.status_code == 200, login.text
    with pytest.raises(ConfigError, match="demo-admin"), TestClient(create_app(settings)):
        pass
    served = run("serve", "--port", "0", cwd=tmp_path)
    assert_one_clear_line(served, "demo-admin", "strawfire users passwd")
    changed = [
        run("users", "disable", name, cwd=tmp_path).returncode for name in ("demo-admin", "demo-supervisor")
    ] + [
        subprocess.run(
            [STRAWFIRE, "users", "passwd", "demo-patrol", "--password-stdin"], cwd=tmp_path, input="a-real-password\n",
            env={k: v for k, v in os.environ.items() if not k.upper().startswith("STRAWFIRE_")},
            capture_output=True, text=True, timeout=120, check=False,
        ).returncode
    ]  # fmt: skip
    assert changed == [0, 0, 0]
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200


# --- data folder ------------------------------------------------------------------------------------------------


def test_a_new_data_folder_is_private(tmp_path: Path) -> None:
    """The SQLite file holds alert recipients' signing secrets and password hashes; it was created world-readable
    in a world-readable ./var."""
    result = run("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    mode = stat.S_IMODE((tmp_path / "var").stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)


# --- the CLI on common mistakes ---------------------------------------------------------------------------------


def test_db_upgrade_on_an_unreachable_postgresql_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://strawfire:{PASSWORD}@127.0.0.1:{closed_port()}/strawfire"
    result = run("db", "upgrade", cwd=tmp_path, env={"STRAWFIRE_DATABASE_URL": url})
    assert_one_clear_line(result, "127.0.0.1", "***")


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://strawfire:{PASSWORD}@127.0.0.1:notaport/strawfire",
        "sqlitex:///var/strawfire.sqlite3",
    ],
)
def test_db_upgrade_on_a_malformed_url_is_one_line(tmp_path: Path, url: str) -> None:
    result = run("db", "upgrade", cwd=tmp_path, env={"STRAWFIRE_DATABASE_URL": url})
    assert_one_clear_line(result, "database")


def test_db_upgrade_on_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database\n" * 200, encoding="utf-8")
    result = run("db", "upgrade", cwd=tmp_path, env={"STRAWFIRE_DATABASE_URL": "sqlite:///notes.txt"})
    assert_one_clear_line(result, "notes.txt")


def test_a_data_folder_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    result = run("db", "upgrade", cwd=tmp_path, env={"STRAWFIRE_DATA_DIR": "afile/var"})
    assert_one_clear_line(result, "afile")


def test_db_upgrade_to_an_unknown_revision_is_one_line(tmp_path: Path) -> None:
    result = run("db", "upgrade", "nosuchrev", cwd=tmp_path)
    assert_one_clear_line(result, "nosuchrev")


def test_serve_on_an_unreachable_postgresql_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://strawfire:{PASSWORD}@127.0.0.1:{closed_port()}/strawfire"
    result = run("serve", "--port", "0", cwd=tmp_path, env={"STRAWFIRE_DATABASE_URL": url})
    assert_one_clear_line(result, "127.0.0.1")


def test_report_on_an_unreachable_postgresql_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://strawfire:{PASSWORD}@127.0.0.1:{closed_port()}/strawfire"
    out = str(tmp_path / "r.csv")
    rules = str(Path(__file__).resolve().parents[2] / "rules")
    args = ("report", "--period", "2025-11", "--rules", rules, "--out", out)
    result = run(*args, cwd=tmp_path, env={"STRAWFIRE_DATABASE_URL": url})
    assert_one_clear_line(result, "127.0.0.1", "***")


def test_a_signing_key_written_meanwhile_by_another_process_is_the_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes starting on a fresh data folder: the other one writes the key between this one's check and
    its write. Creating the file exclusively failed (FileExistsError) or read it empty; now the other's key wins,
    whole, and no partial file is left."""
    from service.auth import security

    theirs = "k" * 64
    (tmp_path / "secret_key").write_text(theirs, encoding="ascii")
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda self: False if self.name == "secret_key" else real_exists(self))
    assert security.load_or_create_secret(tmp_path) == theirs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]


def test_a_new_signing_key_is_whole_and_private(tmp_path: Path) -> None:
    from service.auth import security

    key = security.load_or_create_secret(tmp_path / "data")
    assert len(key) >= 32
    path = tmp_path / "data" / "secret_key"
    assert path.read_text(encoding="ascii") == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert security.load_or_create_secret(tmp_path / "data") == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret_key"]


def test_serve_refuses_an_impossible_port_without_a_traceback(tmp_path: Path) -> None:
    result = run("serve", "--port", "70000", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "--port" in result.stderr


# --- migrations (checked clean; kept as a guard) ----------------------------------------------------------------


def test_the_migrations_match_the_models_and_go_down_and_up_again(engine: Engine) -> None:
    """``alembic check`` in a test: autogenerate against the upgraded database finds nothing; every revision goes
    down and up again; a second upgrade is a no-op."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect

    from service import tables  # noqa: F401  (every table on the metadata)
    from service.db import Base, alembic_config, upgrade

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    config = alembic_config(engine)
    command.downgrade(config, "base")
    with engine.connect() as connection:
        assert inspect(connection).get_table_names() == ["alembic_version"]
    revisions = [s.revision for s in reversed(list(ScriptDirectory.from_config(config).walk_revisions()))]
    for revision in revisions:
        command.upgrade(config, revision)
        command.downgrade(config, "-1")
        command.upgrade(config, revision)
    upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
