"""Writing a collected report to a file in one of its formats: shared by ``strawfire report`` and
``GET /api/v1/reports/{format}``. The builders import matplotlib and openpyxl only when a report is made."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from service.reports.data import PointsData, ReportData

__all__ = ["MEDIA_TYPES", "ReportFormat", "write_report"]


class ReportFormat(StrEnum):
    """The formats a report comes in."""

    PDF = "pdf"
    XLSX = "xlsx"
    CSV = "csv"


MEDIA_TYPES: Final[dict[ReportFormat, str]] = {
    ReportFormat.PDF: "application/pdf",
    ReportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ReportFormat.CSV: "text/csv; charset=utf-8",
}


def write_report(chosen: ReportFormat, data: PointsData | ReportData, path: Path) -> str:
    """Write ``data`` to ``path`` as ``chosen``; return what was written ("6 pages", "12 fire points")."""
    from service.reports.data import ReportData
    from service.reports.pdf import write_pdf
    from service.reports.points_csv import write_csv
    from service.reports.xlsx import write_xlsx
    from service.stats.wording import counted

    if chosen is ReportFormat.CSV:
        return counted(write_csv(data, path), "fire point")
    if not isinstance(data, ReportData):  # the CSV is the only format without scores
        raise TypeError(f"a {chosen.value} report needs the scores")
    if chosen is ReportFormat.PDF:
        return counted(len(write_pdf(data, path)), "page")
    return counted(len(write_xlsx(data, path)), "sheet")
