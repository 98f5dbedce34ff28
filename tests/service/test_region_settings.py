"""``regions.default_level``: never read by anything, so retired; a settings file that still sets it starts with one
warning instead of being refused as an unknown key."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from service import config
from service.config import load_settings
from service.errors import ConfigError
from tests.service.test_config_audit import clean_env, run  # noqa: F401  (clean_env: an autouse fixture)

WARNING = "regions.default_level is ignored and can be removed from the settings"


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "_warned", set())  # once per process: each test is a fresh process here


def test_a_file_setting_default_level_loads_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "strawfire.toml").write_text(
        '[regions]\ndefault_level = "county"\ntolerance_m = 300\n', encoding="utf-8"
    )
    with caplog.at_level(logging.WARNING, logger="strawfire.config"):
        settings = load_settings()
        load_settings()  # the CLI builds settings more than once a command
    assert settings.regions.tolerance_m == 300  # the rest of the table still counts
    assert not hasattr(settings.regions, "default_level")
    warnings = [r.getMessage() for r in caplog.records if r.name == "strawfire.config"]
    assert len(warnings) == 1
    assert warnings[0].startswith(WARNING)
    assert "a township and that township's county" in warnings[0]


def test_the_environment_variable_is_retired_too(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STRAWFIRE_REGIONS__DEFAULT_LEVEL", "village")
    with caplog.at_level(logging.WARNING, logger="strawfire.config"):
        assert load_settings().regions.tolerance_m == 500
    assert [r.getMessage()[: len(WARNING)] for r in caplog.records] == [WARNING]


def test_other_unknown_region_keys_are_still_refused(tmp_path: Path) -> None:
    (tmp_path / "strawfire.toml").write_text('[regions]\ndefault_levels = "county"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"regions\.default_levels"):
        load_settings()


def test_the_cli_starts_and_says_so_once_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "strawfire.toml").write_text(
        f'data_dir = "{tmp_path / "var"}"\n[regions]\ndefault_level = "township"\n', encoding="utf-8"
    )
    result = run("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("database at head")
    assert result.stderr.count(WARNING) == 1, result.stderr
