"""Re-check of the reports (issue #7): text from imports that the writers could not take, and work that grew with
the square of a season's fire points.

* A unit name (or any text) holding a control character, as DBF fields and hand-made GeoJSON sometimes do, made
  openpyxl refuse the whole workbook (``IllegalCharacterError``).
* matplotlib reads text between two ``$`` as mathtext: a unit name such as ``$x^$`` made the whole PDF fail, and
  ``a$1$b`` was silently drawn as ``a1b`` in italics.
* The XLSX writer asked openpyxl for the sheet's size after every appended row (a scan of every cell written so
  far), and the map page buffered every fire point once per unit: a season of 4,000 fire points took 66 s for the
  XLSX and 30 s for the PDF (3 townships; a city's 100 would multiply the map's share by 30).
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import shapely
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.text import Text
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from service.reports import charts
from service.reports.data import ReportData
from service.reports.fonts import Labels, cjk_family
from service.reports.pdf import write_pdf
from service.reports.xlsx import write_xlsx
from service.stats.response import GroupBy, response_table


def renamed(data: ReportData, name: str) -> ReportData:
    """The report with ``name`` as every unit's and every fire point's township name."""
    return replace(
        data,
        units=[replace(u, name=name) for u in data.units],
        points=[replace(p, township_name=name) for p in data.points],
        board=replace(data.board, units=[replace(u, name=name) for u in data.board.units]),
    )


def many(data: ReportData, copies: int) -> ReportData:
    """The report with each fire point repeated ``copies`` times (new ids), as a long season would have them."""
    points = [
        replace(p, id=p.id + 1000 * n, latitude=p.latitude + 0.0001 * n) for n in range(copies) for p in data.points
    ]
    return replace(data, points=points, responses=response_table(points, GroupBy.TOWNSHIP, data.deadlines, data.as_of))


def test_xlsx_takes_names_with_control_characters(november: ReportData, tmp_path: Path) -> None:
    path = tmp_path / "report.xlsx"
    write_xlsx(renamed(november, "东\x07镇\x0b"), path)  # was IllegalCharacterError: no report at all
    book = load_workbook(path)
    points = book["Fire points"]
    column = {c.value: c.column for c in points[1]}
    name = points.cell(row=2, column=column["township 乡镇(街道)"]).value
    assert name == "东\ufffd镇\ufffd"  # what XML cannot hold is shown, not dropped silently
    ranked = book["Ranked units"]
    assert all(isinstance(c.value, str) and "镇" in c.value for c in ranked["C"][1:])


@pytest.mark.parametrize("name", ["$x^$", "东镇$\\frac$", "a$1$b"])
@pytest.mark.parametrize("cjk", [False, True])
def test_pdf_draws_dollar_signs_as_written(
    november: ReportData, name: str, cjk: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    family = cjk_family() if cjk else None
    if cjk and family is None:
        pytest.skip("no CJK font installed (install fonts-wqy-microhei)")
    labels = Labels(family)
    data = renamed(november, name)
    write_pdf(data, io.BytesIO(), labels=labels)  # was ValueError (mathtext) for the first two
    if labels.unit(name, None) != name:
        return  # without a CJK font a Chinese name is shown as its code
    drawn = []
    original = charts.map_page

    def keeping(*args: object) -> Figure:
        fig = original(*args)  # type: ignore[arg-type]
        drawn.extend(t for t in fig.findobj(Text) if t.get_text() == name)
        return fig

    monkeypatch.setattr(charts, "map_page", keeping)
    write_pdf(data, io.BytesIO(), labels=labels)
    assert drawn, "the unit's name is on the map"
    assert not any(t.get_parse_math() for t in drawn)  # "a$1$b" stays "a$1$b", not "a1b" in italics


def test_xlsx_does_not_rescan_the_sheet_for_every_row(
    november: ReportData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = many(november, 250)  # 2,000 fire points
    scans = 0
    for prop in ("max_row", "max_column"):
        original = getattr(Worksheet, prop)

        def counting(sheet: Worksheet, getter: property = original) -> int:
            nonlocal scans
            scans += 1
            value: int = getter.fget(sheet)  # type: ignore[misc]
            return value

        monkeypatch.setattr(Worksheet, prop, property(counting))
    write_xlsx(data, tmp_path / "season.xlsx")
    # each is a scan of every cell written so far: a few per sheet, not one or two per row (was > 4,000)
    assert scans < 100, scans
    monkeypatch.undo()
    book = load_workbook(tmp_path / "season.xlsx")
    assert book["Fire points"].max_row == 1 + len(data.points)


def test_the_map_buffers_each_fire_point_once(november: ReportData, monkeypatch: pytest.MonkeyPatch) -> None:
    data = many(november, 50)
    buffered = 0
    original = shapely.buffer

    def counting(geometry: object, *args: object, **kwargs: object) -> object:
        nonlocal buffered
        buffered += int(np.sum(shapely.get_num_geometries(geometry)))
        return original(geometry, *args, **kwargs)

    monkeypatch.setattr(shapely, "buffer", counting)
    labels = Labels(None)
    with rc_context({"font.family": labels.families}):
        fig = charts.map_page(data, labels)
    assert buffered <= len(data.points), (buffered, len(data.points), len(data.units))
    # every unit still gets its name inside its boundary
    names = {t.get_text(): t.xyann for t in fig.axes[0].texts if hasattr(t, "xyann")}
    for unit in data.units:
        assert unit.geometry is not None
        spot = names[labels.unit(unit.name, unit.code)]
        assert unit.geometry.contains(shapely.Point(spot))
