"""The PDF report is a readable multi-page document with a map of the units and the fire points, and charts.

Neither pypdf nor poppler is needed: a few lines below read the page tree and the page content streams that
matplotlib writes (uncompressed object table, Flate-compressed streams), and the map page is also rendered with
Agg to check that every unit is painted where its boundary is.
"""

from __future__ import annotations

import io
import re
import zlib

import numpy as np
import pytest
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import pdfRepr
from matplotlib.colors import to_rgb, to_rgba
from matplotlib.patches import PathPatch

from service.reports import charts
from service.reports.data import ReportData
from service.reports.fonts import Labels, cjk_family
from service.reports.pdf import write_pdf
from service.stats.lifecycle import OutcomeKind
from tests.stats.scenario import EAST, SOUTH, WEST

PAGES = ["title", "ranking", "ranking", "map", "response-times", "daily-trend"]


def pdf_pages(data: bytes) -> list[bytes]:
    """The decompressed content stream of each page, in page order."""
    objects = {int(m[1]): m[2] for m in re.finditer(rb"(\d+) 0 obj\s*(.*?)\s*endobj", data, re.S)}
    root = int(re.search(rb"/Root\s+(\d+)\s+0\s+R", data)[1])  # type: ignore[index]
    tree = int(re.search(rb"/Pages\s+(\d+)\s+0\s+R", objects[root])[1])  # type: ignore[index]
    kids = re.search(rb"/Kids\s*\[(.*?)\]", objects[tree], re.S)[1]  # type: ignore[index]
    pages = []
    for number in re.findall(rb"(\d+)\s+0\s+R", kids):
        page = objects[int(number)]
        assert re.search(rb"/Type\s*/Page\b", page)
        contents = objects[int(re.search(rb"/Contents\s+(\d+)\s+0\s+R", page)[1])]  # type: ignore[index]
        stream = re.search(rb"stream\r?\n(.*?)\r?\nendstream", contents, re.S)[1]  # type: ignore[index]
        pages.append(zlib.decompress(stream) if b"/FlateDecode" in contents else stream)
    return pages


def fill_operator(colour: tuple[float, ...]) -> re.Pattern[bytes]:
    """The PDF operator setting a fill colour, numbers written as matplotlib writes them."""
    parts = [re.escape(pdfRepr(float(c))) for c in colour[:3]]
    return re.compile(rb"(?<![\d.])" + rb"\s+".join(parts) + rb"\s+rg")


def check_pdf(november: ReportData, labels: Labels) -> None:
    buffer = io.BytesIO()
    assert write_pdf(november, buffer, labels=labels) == PAGES
    data = buffer.getvalue()
    assert data.startswith(b"%PDF-")
    assert data.rstrip().endswith(b"%%EOF")
    assert b"strawfire report 2025-11 229900" in data  # the document title
    pages = pdf_pages(data)
    assert len(pages) == len(PAGES)
    assert all(len(page) > 500 for page in pages)  # every page has drawing on it
    map_page = pages[PAGES.index("map")]
    with rc_context({"font.family": labels.families}):
        fig = charts.map_page(november, labels)
    patches = {str(p.get_gid()): p for p in fig.findobj(PathPatch) if p.get_gid()}
    assert sorted(patches) == [EAST, WEST, SOUTH]
    for code, patch in patches.items():
        # each unit is filled with its own shade, as a closed path filled and stroked ("h … B")
        found = fill_operator(to_rgba(patch.get_facecolor())).search(map_page)
        assert found, code
        assert re.match(rb"[^B]*?\bh\s+B\b", map_page[found.end() :], re.S), code
    # the fire points: one filled marker per point in the outcome colours
    assert len(fill_operator(to_rgb(charts.OUTCOME_COLOURS[OutcomeKind.VIOLATION])).findall(map_page)) >= 1


def test_pdf_without_a_cjk_font_is_complete_and_draws_no_missing_glyphs(november: ReportData) -> None:
    # warnings are errors in this suite: a Chinese glyph drawn with DejaVu alone would fail here
    check_pdf(november, Labels(None))


def test_pdf_with_a_cjk_font(november: ReportData) -> None:
    family = cjk_family()
    if family is None:
        pytest.skip("no CJK font installed (install fonts-wqy-microhei): the fallback is tested above")
    check_pdf(november, Labels(family))


def test_the_map_paints_each_unit_inside_its_boundary(november: ReportData) -> None:
    labels = Labels(None)
    with rc_context({"font.family": labels.families}):
        fig = charts.map_page(november, labels)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        pixels = np.asarray(canvas.buffer_rgba())[..., :3] / 255.0
    ax = fig.axes[0]
    height = pixels.shape[0]
    patches = {p.get_gid(): p for p in fig.findobj(PathPatch) if p.get_gid()}
    shades = set()
    for unit in november.units:
        x0, y0, x1, y1 = unit.geometry.bounds  # type: ignore[union-attr]
        # near the unit's top-left corner: inside it, away from its name and from the scenario's fires
        px, py = ax.transData.transform((x0 + 0.08 * (x1 - x0), y1 - 0.08 * (y1 - y0)))
        painted = pixels[int(height - py), int(px)]
        expected = np.array(patches[unit.code].get_facecolor()[:3])
        assert np.abs(painted - expected).max() < 0.02, unit.code
        shades.add(tuple(np.round(painted, 2)))
    assert len(shades) == 3  # 3, 0 and 1 violations: three shades
    outside = ax.transData.transform((125.0 - 0.005, 44.05))  # west of every unit, inside the axes
    assert np.abs(pixels[int(height - outside[1]), int(outside[0])] - 1.0).max() < 0.02  # white: no unit there
