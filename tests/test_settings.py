"""Settings precedence (init > env > TOML > defaults), strictness and secret hygiene."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import Settings, load_settings
from service.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("STRAWFIRE_DATABASE_URL", "STRAWFIRE_DATA_DIR", "STRAWFIRE_CONFIG", "STRAWFIRE_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_the_embedded_sqlite_under_var() -> None:
    settings = Settings()
    assert settings.data_dir == Path("var")
    assert settings.effective_database_url == "sqlite:///var/strawfire.sqlite3"


def test_precedence_env_over_toml_over_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "strawfire.toml"
    toml.write_text('port = 9001\ndata_dir = "/srv/fire"\n[regions]\ntolerance_m = 250\n', encoding="utf-8")
    settings = Settings()
    assert (settings.port, settings.data_dir, settings.regions.tolerance_m) == (9001, Path("/srv/fire"), 250)
    monkeypatch.setenv("STRAWFIRE_PORT", "9002")
    monkeypatch.setenv("STRAWFIRE_REGIONS__TOLERANCE_M", "100")
    settings = Settings()
    assert (settings.port, settings.regions.tolerance_m) == (9002, 100)
    assert Settings(port=9003).port == 9003


def test_config_env_names_a_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "conf" / "prod.toml"
    other.parent.mkdir()
    other.write_text('database_url = "postgres://u:p@db/strawfire"\n', encoding="utf-8")
    monkeypatch.setenv("STRAWFIRE_CONFIG", str(other))
    assert Settings().database_url == "postgresql+psycopg://u:p@db/strawfire"
    monkeypatch.setenv("STRAWFIRE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="not a file"):
        load_settings()


def test_unknown_keys_and_bad_values_are_errors(tmp_path: Path) -> None:
    (tmp_path / "strawfire.toml").write_text("prot = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="prot"):
        load_settings()
    (tmp_path / "strawfire.toml").write_text("port = 99999\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="port"):
        load_settings()


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRAWFIRE_FIRMS__MAP_KEY", "abcdef0123456789")
    settings = Settings()
    assert settings.firms.map_key is not None
    assert settings.firms.map_key.get_secret_value() == "abcdef0123456789"
    assert "abcdef0123456789" not in repr(settings)
    assert "abcdef0123456789" not in str(settings.model_dump())
    monkeypatch.setenv("STRAWFIRE_PORT", "not-a-port")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "abcdef0123456789" not in str(info.value)
    assert "not-a-port" not in str(info.value)
