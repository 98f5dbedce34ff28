"""Reports for a period the scoring rules cover only in part, and the fire-point list, which needs no rules.

``strawfire report --period 2024`` was refused ("no scoring rules in force on 2024-01-01") when the first version
took effect later in 2024, and so was the CSV, which shows no score at all.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from service.reports import charts
from service.reports.data import ReportData
from service.reports.fonts import Labels
from service.stats.periods import parse_period
from service.stats.rules import RuleBook
from service.stats.wording import NoteCode
from tests.reports.conftest import RULES, collect_november
from tests.reports.test_report_cli import Invoke, run  # noqa: F401  (the CLI fixture)

Scenario = tuple[str, sessionmaker[Session], dict[str, int]]


def rules_from_november_2nd(folder: Path) -> Path:
    """The shipped example-v2 alone, taking effect on 2025-11-02: 1 November has no rules."""
    text = (RULES / "scoring-example-v2.toml").read_text(encoding="utf-8")
    assert "effective_from = 2025-09-01" in text
    (folder / "v2.toml").write_text(text.replace("effective_from = 2025-09-01", "effective_from = 2025-11-02"))
    return folder


def title_texts(data: ReportData, labels: Labels) -> list[str]:
    return [t.get_text() for t in charts.title_page(data, labels).texts]


def test_a_month_starting_before_the_rules_is_scored_and_says_which_days(
    scenario_db: Scenario, november: ReportData, tmp_path: Path
) -> None:
    data = collect_november(scenario_db, rules_from_november_2nd(tmp_path))  # was NotFoundError
    assert data.selection.version.rules.version == "example-v2"
    # Fire J, first seen 1 November (no rules in force), is scored as under the shipped rules: same board.
    assert [(u.code, u.score, u.unreported) for u in data.board.units] == [
        (u.code, u.score, u.unreported) for u in november.board.units
    ]
    assert data.warnings[:1] == [
        "no scoring rules were in force on 2025-11-01 (1 day of the period); the period is scored with example-v2 "
        "(v2.toml, in force from 2025-11-02), the first version in force during it"
    ]
    assert [n.code for n in data.notes] == [NoteCode.RULES_CHANGED, NoteCode.PROVISIONAL]  # F and J still open
    # The Chinese report says it in Chinese; the English one in English.
    assert (
        "注意：2025-11-01（本时段内 1 天）没有施行中的考核办法；本时段按本时段内最早施行的 example-v2（v2.toml，"
        "2025-11-02 起施行）计分。"
    ) in title_texts(data, Labels("WenQuanYi Micro Hei"))
    assert data.warnings[0] in title_texts(data, Labels(None))


def test_the_rules_changed_warning_is_in_the_reports_language(november: ReportData) -> None:
    year = collect_november_year(november)
    assert (
        "注意：考核办法 example-v2（scoring-example-v2.toml）于 2025-09-01 在本时段内生效；"
        "本时段按首日适用的 example-v1 计分。"
    ) in title_texts(year, Labels("WenQuanYi Micro Hei"))
    english = title_texts(year, Labels(None))
    assert year.warnings[0] in english
    assert not [t for t in english if "注意" in t]


def collect_november_year(november: ReportData) -> ReportData:
    """November's report relabelled with the 2025 selection (example-v1 on 1 January, example-v2 from September)."""
    selection = RuleBook.load(RULES).select(parse_period("2025"))
    return replace(november, selection=selection, notes=selection.notes, warnings=selection.warnings)


def test_the_cli_scores_a_year_the_rules_cover_in_part(run: Invoke, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "2024.xlsx"
    result = run("--period", "2024", "--out", str(out), "--rules", str(RULES))  # rules from 2024-09-01
    assert result.exit_code == 0, result.output  # was: no scoring rules in force on 2024-01-01
    assert "rules example-v1)" in result.output
    assert "warning: no scoring rules were in force on 2024-01-01…2024-08-31 (244 days of the period)" in (
        result.output
    )
    result = run("--period", "2024-08", "--out", str(tmp_path / "aug.pdf"), "--rules", str(RULES))
    assert result.exit_code == 2  # no version on any day: still no scores
    assert "no scoring rules in force on 2024-08-01…2024-08-31" in result.output


def test_the_fire_point_list_needs_no_rules(run: Invoke, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "fires.csv"
    # No rules folder at all, and a month no version covers: the list has no scores to need them.
    result = run("--period", "2025-11", "--area", "229900", "--out", str(out), "--rules", str(tmp_path / "none"))
    assert result.exit_code == 0, result.output
    assert "8 fire points (2025-11, area 229900)\n" in result.output
    assert out.read_bytes().startswith("\ufeff序号".encode())
    result = run("--period", "2024-08", "--out", str(tmp_path / "aug.csv"), "--rules", str(RULES))
    assert result.exit_code == 0, result.output
    assert "0 fire points (2024-08, area all)" in result.output
    result = run("--period", "2025-11", "--area", "220100", "--out", str(out), "--rules", str(RULES))
    assert result.exit_code == 2  # the area is still checked
    assert "no imported unit is in area 220100" in result.output
