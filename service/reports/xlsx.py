"""The XLSX report: one sheet per table (ranked units, score items, response times, fire points, daily trend,
rules used), with bold frozen headings so the workbook reads like the county's own 考核 sheets."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from service.reports import tables
from service.reports.data import ReportData

SHEETS = ("Ranked units", "Score items", "Response times", "Fire points", "Daily trend", "Rules")


def _storable(value: tables.Cell) -> tables.Cell:
    """The value with the control characters XML 1.0 cannot hold (and openpyxl refuses, failing the whole
    workbook) shown as U+FFFD: unit names come from imported files, which sometimes carry them."""
    if isinstance(value, str):
        text: str = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)
        return text
    return value


def _number_format(heading: str) -> str | None:
    """How a column's cells are shown: local times to the minute, rates as whole percentages (a raw 2/3 showed as
    0.6666666666666666); None: as stored (the other figures are rounded where they are made, :mod:`tables`)."""
    if "(UTC+8)" in heading:
        return "yyyy-mm-dd hh:mm"
    if heading in tables.RATE_HEADERS:
        return "0%"
    return None


def _sheet(book: Workbook, title: str, header: list[str], rows: Iterable[list[tables.Cell]]) -> None:
    sheet = book.create_sheet(title)
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    widths = [len(h) for h in header]
    # Rows are numbered here: openpyxl's max_row (and sheet[n], through max_column) scans every cell written so
    # far, which made a season's sheets quadratic in their rows.
    for number, given in enumerate(rows, start=2):
        row = [_storable(v) for v in given]
        sheet.append(row)
        for column, value in enumerate(row, start=1):
            if tables.looks_like_formula(value):
                # openpyxl stores a string starting with "=" as a formula; keep it a string, shown as written,
                # and quote-prefixed so that Excel keeps it text when someone edits the cell.
                cell = sheet.cell(row=number, column=column)
                cell.data_type = "s"
                cell.quotePrefix = True
        widths = [max(w, len(str(v)) if v is not None else 0) for w, v in zip(widths, row, strict=False)]
    for i, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = min(60, max(8, width + 2))
    for column, cell in enumerate(sheet[1], start=1):
        number_format = _number_format(str(cell.value))
        if number_format is not None:
            for row_cells in sheet.iter_rows(min_row=2, min_col=column, max_col=column):
                row_cells[0].number_format = number_format
    sheet.freeze_panes = "A2"


def write_xlsx(data: ReportData, out: Path | BinaryIO) -> list[str]:
    """Write the workbook; returns the sheet names in order."""
    book = Workbook()
    book.remove(book.active)
    _sheet(book, SHEETS[0], tables.ranked_header(data), tables.ranked_rows(data))
    _sheet(book, SHEETS[1], tables.ITEMS_HEADER, tables.item_rows(data))
    _sheet(book, SHEETS[2], tables.RESPONSE_HEADER, tables.response_rows(data))
    _sheet(book, SHEETS[3], tables.POINTS_HEADER, tables.point_rows(data))
    _sheet(book, SHEETS[4], tables.DAILY_HEADER, tables.daily_rows(data))
    _sheet(book, SHEETS[5], tables.RULES_HEADER, tables.rules_rows(data))
    book.properties.title = f"strawfire report {data.period.label} {data.area_code or 'all'}"
    book.properties.creator = "strawfire"
    book.save(out)
    return list(book.sheetnames)
