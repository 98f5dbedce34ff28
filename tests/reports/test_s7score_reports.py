"""The reports say what the scores API says: each unit's fire points still open (the XLSX ranked sheet and the PDF
ranked table), the warning that the scores are provisional (the rules sheet, the PDF's title page in the report's
language, the command's stderr); and they show rates and densities as figures, not 16-digit floats.

The recorded scenario (tests/stats/scenario.py): F (西镇, escalated, never answered) and J (南乡, never notified)
are open at its as_of.
"""

from __future__ import annotations

from pathlib import Path

from openpyxl import load_workbook

from service.reports import charts, tables
from service.reports.data import ReportData
from service.reports.fonts import Labels
from service.reports.xlsx import write_xlsx
from service.stats.wording import NoteCode
from tests.reports.conftest import RULES
from tests.reports.test_report_cli import Invoke, run  # noqa: F401  (the CLI fixture)
from tests.reports.test_statfix_pdf_accountability import cell_texts
from tests.stats.scenario import EAST, SOUTH, WEST

PROVISIONAL = (
    "scores are provisional: 2 fire points in 2 units are still open at 2025-12-15 08:00 (UTC+8); deciding them "
    "may still change those units' scores"
)


def test_the_ranked_sheet_counts_open_fire_points_and_the_rules_sheet_warns(
    november: ReportData, tmp_path: Path
) -> None:
    path = tmp_path / "report.xlsx"
    write_xlsx(november, path)
    book = load_workbook(path)
    header = [c.value for c in book["Ranked units"][1]]
    assert header[header.index("fire points 火点") + 1] == tables.OPEN_HEADER
    rows = {
        r[1]: dict(zip(header, r, strict=True)) for r in book["Ranked units"].iter_rows(min_row=2, values_only=True)
    }
    assert {code: row[tables.OPEN_HEADER] for code, row in rows.items()} == {WEST: 1, SOUTH: 1, EAST: 0}
    assert [n.code for n in november.notes] == [NoteCode.PROVISIONAL]
    assert ["warning", PROVISIONAL] in [list(r) for r in book["Rules"].iter_rows(min_row=2, values_only=True)]


def test_the_pdf_shows_open_fire_points_and_says_the_scores_are_provisional(november: ReportData) -> None:
    (_, page) = charts.ranking_pages(november, Labels(None))
    header, *cells = cell_texts(page)
    at = header.index("open")
    assert header[at - 1] == "violations"  # beside what it may still add to
    assert {row[header.index("unit")]: row[at] for row in cells} == {WEST: "1", SOUTH: "1", EAST: "0"}
    english = [t.get_text() for t in charts.title_page(november, Labels(None)).texts]
    assert PROVISIONAL in english
    chinese = [t.get_text() for t in charts.title_page(november, Labels("WenQuanYi Micro Hei")).texts]
    assert (
        "注意：截至 2025-12-15 08:00（UTC+8）仍有 2 个火点处置中（涉及 2 个单位），得分为暂定，定性后可能变化。"
    ) in chinese


def test_the_command_prints_the_provisional_warning(run: Invoke, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "report.xlsx"
    result = run("--period", "2025-11", "--area", "229900", "--out", str(out), "--rules", str(RULES))
    assert result.exit_code == 0, result.output
    # The command's as_of is now: the same warning, at the time it ran.
    assert "warning: scores are provisional: 2 fire points in 2 units are still open at " in result.output


def test_rates_and_densities_are_figures_as_the_other_columns(november: ReportData, tmp_path: Path) -> None:
    """A rate of 2/3 showed as 0.6666666666666666 and 南乡's density as 0.006640230543295484."""
    path = tmp_path / "report.xlsx"
    write_xlsx(november, path)
    book = load_workbook(path)
    response = book["Response times"]
    header = [c.value for c in response[1]]
    for heading in ("acknowledge rate 签收达标率", "on site rate 到场达标率"):
        column = header.index(heading) + 1
        cells = [row[0] for row in response.iter_rows(min_row=2, min_col=column, max_col=column)]
        assert {c.number_format for c in cells} == {"0%"}, heading
    east_row = next(r for r in response.iter_rows(min_row=2) if r[1].value == EAST)
    assert east_row[header.index("acknowledge rate 签收达标率")].value == 2 / 3  # the value stays exact
    ranked = book["Ranked units"]
    ranked_header = [c.value for c in ranked[1]]
    densities = {
        r[1]: r[ranked_header.index(tables.DENSITY_HEADER)] for r in ranked.iter_rows(min_row=2, values_only=True)
    }
    south = next(u for u in november.board.units if u.code == SOUTH)
    assert south.density_per_1000ha is not None
    assert densities[SOUTH] == round(south.density_per_1000ha, 6) != south.density_per_1000ha
    assert len(repr(densities[SOUTH])) <= len("0.000000")
