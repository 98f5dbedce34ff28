"""A settings error names where the bad value was written: the environment variable, or the settings file."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import load_settings
from service.errors import ConfigError
from tests.test_cli import run
from tests.test_settings import clean_env  # noqa: F401  (the environment and folder of every settings test)


@pytest.mark.parametrize(
    ("name", "value", "example"),
    [
        ("STRAWFIRE_FIRMS__BBOX", "125,44,126", "[125.4, 44.05, 125.9, 44.5]"),
        ("STRAWFIRE_FIRMS__SOURCES", "MODIS_NRT,X", '["VIIRS_SNPP_NRT", "MODIS_NRT"]'),
        ("STRAWFIRE_SENTINELHUB__BBOX", "[1,2", "[125.4, 44.05, 125.9, 44.5]"),
    ],
)
def test_a_list_variable_that_is_not_json_is_named_with_how_to_write_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, example: str
) -> None:
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("STRAWFIRE_FIRMS__MAP_KEY", "secret-map-key-0123")  # a valid variable of the same table
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert name in message
    assert "is not valid JSON: a list is written as JSON" in message
    assert f"{name}='{example}'" in message
    assert "MAP_KEY" not in message
    assert "secret-map-key" not in message
    assert value not in message  # values are never repeated: a variable may hold a secret


def test_a_table_variable_that_is_not_json_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRAWFIRE_ALERTS__SMTP", "host=mail")
    with pytest.raises(ConfigError, match=r"STRAWFIRE_ALERTS__SMTP .*JSON"):
        load_settings()


def test_bad_values_and_unknown_keys_in_a_settings_file_name_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = tmp_path / "conf" / "prod.toml"
    named.parent.mkdir()
    named.write_text('port = "eighty"\n[firms]\nmapkey = "SECRETVALUE999"\n', encoding="utf-8")
    monkeypatch.setenv("STRAWFIRE_CONFIG", str(named))
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert f"{named}: port: Input should be a valid integer" in message
    assert f"{named}: firms.mapkey: Extra inputs are not permitted" in message
    assert "SECRETVALUE999" not in message
    # The file read without being named: ./strawfire.toml, shown with its folder.
    monkeypatch.delenv("STRAWFIRE_CONFIG")
    (tmp_path / "strawfire.toml").write_text("[incidents]\nground_window_h = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'strawfire.toml'}: incidents\.ground_window_h: "):
        load_settings()


def test_a_bad_variable_is_named_and_not_blamed_on_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "strawfire.toml").write_text("port = 9001\n[firms]\nday_range = 2\n", encoding="utf-8")
    monkeypatch.setenv("STRAWFIRE_PORT", "eighty")
    monkeypatch.setenv("STRAWFIRE_FIRMS__DAY_RANGE", "9")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "STRAWFIRE_PORT: port: Input should be a valid integer" in message
    assert "STRAWFIRE_FIRMS__DAY_RANGE: firms.day_range: Input should be less than or equal to 5" in message
    assert "strawfire.toml" not in message
    # Values passed in code (tests, tools) have neither: the key alone, as before.
    monkeypatch.delenv("STRAWFIRE_PORT")
    monkeypatch.delenv("STRAWFIRE_FIRMS__DAY_RANGE")
    with pytest.raises(ConfigError, match=r"invalid settings: port: Input should be less than or equal to 65535$"):
        load_settings(port=70000)


def test_the_command_line_names_the_variable(tmp_path: Path) -> None:
    result = run("regions", "list", cwd=tmp_path, env={"STRAWFIRE_FIRMS__BBOX": "125,44,126"})
    assert result.returncode == 2
    assert "STRAWFIRE_FIRMS__BBOX (firms.bbox) is not valid JSON" in result.stderr, result.stderr
