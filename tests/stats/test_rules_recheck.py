"""Re-check of the versioned scoring rules (issue #7): two versions taking effect on the same day.

Copying ``scoring-example-v2.toml`` to a v3 and changing its version but not its ``effective_from`` gave two open
versions starting the same day. The folder was accepted: one of them (whichever file name sorted last) silently
scored every period from that day, the other was never in force, and past periods changed score.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import InputError
from service.stats.rules import RuleBook
from tests.stats.test_rules import write


@pytest.mark.parametrize("end_of_first", [None, "2025-12-31"])
@pytest.mark.parametrize("end_of_second", [None, "2026-06-30"])
def test_two_versions_taking_effect_the_same_day_are_refused(
    tmp_path: Path, end_of_first: str | None, end_of_second: str | None
) -> None:
    write(tmp_path, "a.toml", "a", "2025-09-01", end_of_first)
    write(tmp_path, "b.toml", "b", "2025-09-01", end_of_second)
    with pytest.raises(InputError, match="overlaps") as info:
        RuleBook.load(tmp_path)
    assert "2025-09-01" in str(info.value)


def test_consecutive_versions_still_load(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", "a", "2025-09-01")
    write(tmp_path, "b.toml", "b", "2025-09-02")
    book = RuleBook.load(tmp_path)
    assert [(v.rules.version, v.last_day and v.last_day.isoformat()) for v in book.versions] == [
        ("a", "2025-09-01"),
        ("b", None),
    ]


def test_the_default_rules_folder_is_found_when_started_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service started by systemd from another working directory failed every score: "no scoring rules folder
    at rules". The checkout's own folder is used when the relative one is not there; an absolute one as given."""
    from service.config import Settings
    from service.stats.service import rules_dir

    monkeypatch.chdir(tmp_path)
    found = rules_dir(Settings(data_dir=tmp_path))
    assert found.is_dir()
    assert sorted(p.name for p in found.glob("*.toml")) == ["scoring-example-v1.toml", "scoring-example-v2.toml"]
    (tmp_path / "rules").mkdir()
    assert rules_dir(Settings(data_dir=tmp_path)) == Path("rules")  # the working directory's own comes first
    elsewhere = tmp_path / "elsewhere"
    assert rules_dir(Settings(data_dir=tmp_path, stats={"rules_dir": elsewhere})) == elsewhere
