"""Rules files: every shipped example loads; versions are picked by date; bad folders are refused clearly."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest

from service.config import Settings
from service.errors import InputError, NotFoundError
from service.stats.periods import parse_period
from service.stats.records import Source
from service.stats.rules import RuleBook
from service.stats.service import rules_dir

SHIPPED = Path(__file__).resolve().parents[2] / "rules"

MINIMAL = """
version = "{version}"
effective_from = {start}
{end}
[fire_points]
satellite = 20.0
camera = 5.0
drone = 3.0
"""


def write(folder: Path, name: str, version: str, start: str, end: str | None = None, extra: str = "") -> None:
    text = MINIMAL.format(version=version, start=start, end=f"effective_to = {end}" if end else "") + extra
    (folder / name).write_text(text, encoding="utf-8")


def test_the_shipped_examples_load_and_a_past_period_keeps_its_version() -> None:
    book = RuleBook.load(SHIPPED)
    assert [v.rules.version for v in book.versions] == ["example-v1", "example-v2"]
    v1, v2 = book.versions
    assert (v1.last_day, v2.last_day) == (date(2025, 8, 31), None)
    assert v1.rules.fire_points.satellite < v2.rules.fire_points.satellite
    assert v1.rules.reporting.self_found_sources == [Source.DRONE]
    assert book.select(parse_period("2025-08")).version is v1
    assert book.select(parse_period("2025-W36")).version is v2  # Sep 1–7, 2025
    assert book.select(parse_period("2025-11")).version is v2
    assert book.select(parse_period("2031")).version is v2
    year = book.select(parse_period("2025"))
    assert year.version is v1  # in force on 1 January
    assert [v.rules.version for v in year.also_in_force] == ["example-v2"]
    assert "example-v2" in year.warnings[0]
    with pytest.raises(NotFoundError, match="no scoring rules in force on 2024-08-01"):
        book.select(parse_period("2024-08"))
    assert book.by_version("example-v1") is v1


def test_grades_and_sanctions_pick_the_band_reached() -> None:
    rules = RuleBook.load(SHIPPED).versions[0].rules
    assert [rules.grade(s) for s in (100, 90, 89.99, 80, 0)] == ["优秀", "优秀", "合格", "合格", "不合格"]
    assert [rules.sanction(n, 100.0) for n in (0, 1, 2, 4, 5, 9)] == [
        None,
        "书面警告",
        "全市通报批评，取消评优资格",
        "严重：约谈乡镇党政主要负责人",
        "特别严重：提请给予党纪政务处分",
        "特别严重：提请给予党纪政务处分",
    ]


def test_sanctions_by_score_and_by_count_take_the_heaviest_step(tmp_path: Path) -> None:
    ladder = """
[[sanctions]]
below_score = 80.0
name = "mild"
[[sanctions]]
min_violations = 2
name = "middle"
[[sanctions]]
min_violations = 4
below_score = 40.0
name = "heavy"
"""
    write(tmp_path, "a.toml", "a", "2024-01-01", extra=ladder)
    rules = RuleBook.load(tmp_path).versions[0].rules
    assert rules.sanction(0, 90.0) is None
    assert rules.sanction(0, 79.0) == "mild"
    assert rules.sanction(2, 95.0) == "middle"
    assert rules.sanction(1, 30.0) == "heavy"
    assert rules.sanction(4, 100.0) == "heavy"
    write(tmp_path, "a.toml", "a", "2024-01-01", extra='[[sanctions]]\nname = "x"\n')
    with pytest.raises(InputError, match="needs min_violations, below_score or both"):
        RuleBook.load(tmp_path)


def test_an_open_version_ends_where_the_next_begins(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", "a", "2024-01-01")
    write(tmp_path, "b.toml", "b", "2024-07-01")
    book = RuleBook.load(tmp_path)
    assert book.versions[0].last_day == date(2024, 6, 30)
    assert book.in_force(date(2024, 6, 30)).rules.version == "a"
    assert book.in_force(date(2024, 7, 1)).rules.version == "b"


def test_a_gap_between_versions_has_no_rules(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", "a", "2024-01-01", "2024-03-31")
    write(tmp_path, "b.toml", "b", "2024-07-01")
    with pytest.raises(NotFoundError, match="no scoring rules in force on 2024-05-01"):
        RuleBook.load(tmp_path).select(parse_period("2024-05"))


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([("a.toml", "a", "2024-01-01", "2024-12-31"), ("b.toml", "b", "2024-07-01", None)], "overlaps version b"),
        ([("a.toml", "same", "2024-01-01", None), ("b.toml", "same", "2025-01-01", None)], "also in a.toml"),
        ([("a.toml", "a", "2024-05-01", "2024-04-01")], "effective_to is before effective_from"),
    ],
)
def test_inconsistent_folders_are_refused(
    tmp_path: Path, files: list[tuple[str, str, str, str | None]], message: str
) -> None:
    for name, version, start, end in files:
        write(tmp_path, name, version, start, end)
    with pytest.raises(InputError, match=message):
        RuleBook.load(tmp_path)


def test_bad_files_name_the_file_and_the_key(tmp_path: Path) -> None:
    write(tmp_path, "typo.toml", "a", "2024-01-01", extra="\n[responses]\nlate_acknowlege = 1\n")
    with pytest.raises(InputError, match=r"typo\.toml: responses\.late_acknowlege: Extra inputs"):
        RuleBook.load(tmp_path)
    (tmp_path / "typo.toml").write_text('version = "a"\neffective_from = 2024-01-01\n[fire_points\n')
    with pytest.raises(InputError, match="not valid TOML"):
        RuleBook.load(tmp_path)
    write(tmp_path, "typo.toml", "a", "2024-01-01", extra='\n[reporting]\nself_found_sources = ["satellite"]\n')
    with pytest.raises(InputError, match="never the township's own"):
        RuleBook.load(tmp_path)
    # A neighbouring township's or an admin's patrol report would be credited as the township's own find.
    write(tmp_path, "typo.toml", "a", "2024-01-01", extra='\n[reporting]\nself_found_sources = ["drone", "patrol"]\n')
    with pytest.raises(InputError, match=r"typo\.toml: reporting\.self_found_sources: .*reporter_unit"):
        RuleBook.load(tmp_path)
    with pytest.raises(NotFoundError, match="no scoring rules folder"):
        RuleBook.load(tmp_path / "missing")
    (tmp_path / "typo.toml").unlink()
    with pytest.raises(NotFoundError, match=r"no scoring rules \(\*\.toml\)"):
        RuleBook.load(tmp_path)


def test_the_rules_folder_comes_from_the_stats_settings_when_present(tmp_path: Path) -> None:
    assert rules_dir(Settings()) == Path("rules")  # without a [stats] table: ./rules
    configured = SimpleNamespace(stats=SimpleNamespace(rules_dir=tmp_path))
    assert rules_dir(configured) == tmp_path  # type: ignore[arg-type]
