"""The reports mark edge fire points (assigned to the nearest unit, their location outside every unit) and the
footprints that are not wholly their unit's: a column in the XLSX fire-point sheet and the provincial CSV, a count
per unit in the ranked units, a headline on the PDF's title page. They had listed a fire 222 m over the border
exactly like one in the middle of the township. The fires: tests/stats/test_edge_fire_points.py."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook

from service.db import make_engine, make_session_factory, upgrade
from service.reports import charts, tables
from service.reports.data import ReportData, collect
from service.reports.fonts import Labels
from service.reports.points_csv import HEADER, write_csv
from service.reports.xlsx import write_xlsx
from service.stats.periods import parse_period
from service.stats.response import DeadlinePolicy
from service.stats.rules import RuleBook
from tests.reports.conftest import RULES
from tests.stats.scenario import AS_OF, COUNTY_A, EAST, WEST
from tests.stats.test_edge_fire_points import build_edge_fires


@pytest.fixture(scope="module")
def edge_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReportData, dict[str, int]]]:
    """甲县's November report over the edge fires (SQLite), and the fires' incident ids."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('edge-report') / 'edge.sqlite3'}")
    upgrade(engine)
    factory = make_session_factory(engine)
    ids = build_edge_fires(factory)
    with factory() as session:
        data = collect(session, parse_period("2025-11"), COUNTY_A, RuleBook.load(RULES), DeadlinePolicy(), as_of=AS_OF)
    yield data, ids
    engine.dispose()


def test_the_workbook_marks_edge_fire_points(edge_report: tuple[ReportData, dict[str, int]], tmp_path: Path) -> None:
    data, ids = edge_report
    path = tmp_path / "edge.xlsx"
    write_xlsx(data, path)
    book = load_workbook(path)

    header = [c.value for c in book["Fire points"][1]]
    assert header == tables.POINTS_HEADER
    assert header[-3:] == ["assignment 归属方式", "unit share 本单位占比", "outside m 界外距离"]
    sheet = book["Fire points"].iter_rows(min_row=2, values_only=True)
    rows = {row[0]: dict(zip(header, row, strict=True)) for row in sheet}
    marks = {
        name: (rows[i]["assignment 归属方式"], rows[i]["unit share 本单位占比"], rows[i]["outside m 界外距离"])
        for name, i in ids.items()
    }
    assert marks["inside"] == ("界内", None, None)
    assert marks["nearest"][0] == "界外就近"
    assert marks["nearest"][1] == pytest.approx(1 / 6, abs=0.01)
    assert marks["nearest"][2] == 222  # the pixel's centre, 0.002° of latitude south of the boundary
    assert marks["nearest_clear"] == ("界外就近", 0, 223)  # the footprint's own distance
    assert marks["across"][:2] == ("界内", pytest.approx(2 / 3, abs=0.01))
    assert marks["across"][2] is None
    assert marks["manual"] == ("人工指定", None, None)

    ranked_header = [c.value for c in book["Ranked units"][1]]
    at = ranked_header.index(tables.EDGE_HEADER)
    assert ranked_header[at - 1] == "repeat at site 同一地点再次起火"
    ranked = {row[1]: row for row in book["Ranked units"].iter_rows(min_row=2, values_only=True)}
    fire_points = ranked_header.index("fire points 火点")
    assert {code: (row[fire_points], row[at]) for code, row in ranked.items()} == {EAST: (5, 2), WEST: (0, 0)}


def test_the_provincial_csv_marks_edge_fire_points(edge_report: tuple[ReportData, dict[str, int]]) -> None:
    data, ids = edge_report
    buffer = io.BytesIO()
    assert write_csv(data, buffer) == 5
    rows = list(csv.reader(io.StringIO(buffer.getvalue().decode("utf-8-sig"))))
    assert rows[0] == HEADER
    assert HEADER[-2:] == ["事件编号", "归属方式"]  # the provincial columns keep their places
    by_id = {row[HEADER.index("事件编号")]: row[-1] for row in rows[1:]}
    assert {name: by_id[str(i)] for name, i in ids.items()} == {
        "inside": "界内",
        "nearest": "界外就近（界外222米，本单位占16.5%）",  # a sixth of the pixel in degrees, 16.5 % of its area
        "nearest_clear": "界外就近（界外223米，本单位占0.0%）",
        "across": "界内（本单位占66.7%）",
        "manual": "人工指定",
    }


@pytest.mark.parametrize(
    ("family", "line"),
    [
        (None, "Edge fire points: 2  (outside every unit, given to the nearest: scored as usual, marked for review)"),
        ("any CJK font", "界外就近火点 Edge fire points: 2  （位于各单位界外、归属最近单位：照常计分，供复核）"),
    ],
)
def test_the_pdf_title_page_counts_edge_fire_points(
    edge_report: tuple[ReportData, dict[str, int]], family: str | None, line: str
) -> None:
    data, _ = edge_report
    page = charts.title_page(data, Labels(family))
    assert line in [text.get_text() for text in page.texts]
