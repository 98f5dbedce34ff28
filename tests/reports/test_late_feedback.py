"""Late feedback (``responses.feedback_within_h`` / ``late_feedback``) in the ranked-units table of the XLSX and the
PDF: a column only when the rules in force count it, never an always-zero one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from matplotlib import rc_context
from matplotlib.table import Table
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from service.reports import charts, tables
from service.reports.data import ReportData
from service.reports.fonts import Labels
from service.reports.xlsx import write_xlsx
from tests.reports.conftest import RULES, collect_november

Scenario = tuple[str, sessionmaker[Session], dict[str, int]]


@pytest.fixture(scope="module")
def with_feedback(scenario_db: Scenario, tmp_path_factory: pytest.TempPathFactory) -> ReportData:
    """The November report under the example rules with a 24-hour feedback deadline (2 points) in version 2."""
    folder = tmp_path_factory.mktemp("rules")
    for path in RULES.glob("*.toml"):
        shutil.copy(path, folder / path.name)
    v2 = folder / "scoring-example-v2.toml"
    text = v2.read_text(encoding="utf-8")
    assert "[responses]\n" in text
    v2.write_text(
        text.replace("[responses]\n", "[responses]\nfeedback_within_h = 24.0\nlate_feedback = 2.0\n"), encoding="utf-8"
    )
    return collect_november(scenario_db, folder)


def ranked_sheet(data: ReportData, path: Path) -> tuple[list[str], list[tuple[object, ...]]]:
    write_xlsx(data, path)
    sheet = load_workbook(path)["Ranked units"]
    header = [str(c.value) for c in sheet[1]]
    return header, list(sheet.iter_rows(min_row=2, values_only=True))


def pdf_tables(data: ReportData) -> list[list[list[str]]]:
    """The text of each ranked table (one per page), row by row, heading first."""
    labels = Labels(None)
    out = []
    with rc_context({"font.family": labels.families}):
        for fig in charts.ranking_pages(data, labels):
            for table in fig.findobj(Table):
                cells = table.get_celld()
                rows = 1 + max(r for r, _ in cells)
                columns = 1 + max(c for _, c in cells)
                out.append([[cells[r, c].get_text().get_text() for c in range(columns)] for r in range(rows)])
    return out


def test_no_late_feedback_column_when_the_rules_do_not_count_it(november: ReportData, tmp_path: Path) -> None:
    assert november.board.rules.responses.feedback_within_h is None
    assert not tables.shows_late_feedback(november)
    header, rows = ranked_sheet(november, tmp_path / "report.xlsx")
    assert header == tables.RANKED_HEADER
    assert tables.LATE_FEEDBACK_HEADER not in header
    assert all(len(row) == len(header) for row in rows)
    (table,) = pdf_tables(november)
    assert not any("反馈超时" in cell or "late feedback" in cell for cell in table[0])


def test_late_feedback_column_in_the_workbook(with_feedback: ReportData, tmp_path: Path) -> None:
    assert with_feedback.board.rules.version == "example-v2"  # the version in force in November carries the deadline
    header, rows = ranked_sheet(with_feedback, tmp_path / "report.xlsx")
    at = header.index("late on site 到场超时")
    assert header[at + 1] == "late feedback 反馈超时"
    assert header[: at + 1] + header[at + 2 :] == tables.RANKED_HEADER
    assert all(len(row) == len(header) for row in rows)
    counts = {row[1]: row[at + 1] for row in rows}
    assert counts == {u.code: u.late_feedback for u in with_feedback.board.units}
    assert sum(counts.values()) > 0  # the scenario has fires never fed back within 24 h
    # Every count is backed by a late_feedback score item of its unit (the Score items sheet).
    items = list(load_workbook(tmp_path / "report.xlsx")["Score items"].iter_rows(min_row=2, values_only=True))
    for code, count in counts.items():
        assert sum(1 for item in items if item[0] == code and item[3] == "late_feedback") == count
    # the other columns are where they were
    column = {h: i for i, h in enumerate(header)}
    for row, unit in zip(rows, with_feedback.board.units, strict=True):
        assert row[column["density basis 密度基数"]] == unit.density_basis
        assert row[column["credits 加分"]] == unit.credits


def test_late_feedback_column_in_the_pdf(with_feedback: ReportData) -> None:
    (table,) = pdf_tables(with_feedback)
    heading = table[0]
    at = next(i for i, cell in enumerate(heading) if "到场超时" in cell or "late site" in cell)
    assert "反馈超时" in heading[at + 1] or "late feedback" in heading[at + 1]
    by_rank = {row[0]: row[at + 1] for row in table[1:]}
    assert by_rank == {str(u.rank): str(u.late_feedback) for u in with_feedback.board.units}
