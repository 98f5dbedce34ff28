"""The PDF report: a multi-page document (matplotlib ``PdfPages``) with a title page, the ranking, a map of the fire
points over the unit boundaries, the response-time distributions and the daily trend."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from matplotlib import rc_context
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from service.reports import charts
from service.reports.data import ReportData
from service.reports.fonts import Labels, cjk_family


def figures(data: ReportData, labels: Labels) -> list[tuple[str, Figure]]:
    """Every page in order, named (the names are the PDF's outline of the content)."""
    pages = [("title", charts.title_page(data, labels))]
    pages += [("ranking", fig) for fig in charts.ranking_pages(data, labels)]
    pages += [
        ("map", charts.map_page(data, labels)),
        ("response-times", charts.response_page(data, labels)),
        ("daily-trend", charts.trend_page(data, labels)),
    ]
    return pages


def write_pdf(data: ReportData, out: Path | BinaryIO, *, labels: Labels | None = None) -> list[str]:
    """Write the report; returns the page names in order. ``labels`` defaults to the CJK font found here."""
    labels = labels or Labels(cjk_family())
    title = f"strawfire report {data.period.label} {data.area_code or 'all'}"
    # Type 3 fonts: subset glyph by glyph with a ToUnicode map (text stays searchable), 3× faster than Type 42.
    # No mathtext: text between two "$" (a unit name from an imported file) is drawn as written, not parsed (an
    # unparsable one failed the whole report).
    with rc_context(
        {"font.family": labels.families, "pdf.fonttype": 3, "axes.unicode_minus": False, "text.parse_math": False}
    ):
        pages = figures(data, labels)
        with PdfPages(
            out,
            metadata={"Title": title, "Creator": "strawfire", "Producer": "strawfire (matplotlib)"},
        ) as pdf:
            for _, fig in pages:
                pdf.savefig(fig)
    return [name for name, _ in pages]
