"""A fire another township's patrol found shows as 巡查 / patrol in every report — its own column in the ranked units
and the daily trend, its own words in the fire-point list and the provincial CSV, its own marker and series in the
PDF — where it was listed as 视频 (a camera) before; and the Rules sheet says what a patrol point weighed."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.markers import MarkerStyle
from openpyxl import load_workbook

from service.reports import charts, tables
from service.reports.data import ReportData, collect
from service.reports.fonts import Labels
from service.reports.pdf import write_pdf
from service.reports.points_csv import write_csv
from service.reports.xlsx import write_xlsx
from service.stats.periods import parse_period
from service.stats.records import Source
from service.stats.response import DeadlinePolicy
from service.stats.rules import RuleBook
from tests.stats.patrol_found import AREA, REPO, patrol_app, period_of, report_across_the_boundary
from tests.stats.scenario import WEST


@pytest.fixture(scope="module")
def patrol_found(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReportData, int]]:
    """The report of 甲县 for the month a patrol of 东镇 found a fire in 西镇, and that incident's id."""
    with patrol_app(tmp_path_factory.mktemp("patrol-report") / "var") as client:
        incident = report_across_the_boundary(client)
        with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
            data = collect(
                session,
                parse_period(period_of(client, incident)),
                AREA,
                RuleBook.load(REPO / "rules"),
                DeadlinePolicy(),
            )
        yield data, incident


def test_the_workbook_has_patrol_columns_and_words(patrol_found: tuple[ReportData, int], tmp_path: Path) -> None:
    data, incident = patrol_found
    path = tmp_path / "report.xlsx"
    write_xlsx(data, path)
    book = load_workbook(path)

    ranked_header = [c.value for c in book["Ranked units"][1]]
    at = ranked_header.index("patrol 巡查点")
    assert ranked_header[at - 3 : at] == ["satellite 卫星点", "camera 视频点", "drone 无人机点"]
    ranked = {row[1]: row for row in book["Ranked units"].iter_rows(min_row=2, values_only=True)}
    assert ranked[WEST][at - 2 : at + 1] == (0, 0, 1)  # camera, drone, patrol

    items = [row for row in book["Score items"].iter_rows(min_row=2, values_only=True) if row[2] == incident]
    assert [(row[3], row[4]) for row in items] == [("fire_point:patrol", -3)]

    points = [dict(zip(tables.POINTS_HEADER, row, strict=True)) for row in book["Fire points"].iter_rows(min_row=2)]
    (point,) = points
    assert (point["sources 来源"].value, point["first source 首报来源"].value) == ("巡查", "巡查")

    daily_header = [c.value for c in book["Daily trend"][1]]
    assert daily_header[-4:] == ["satellite 卫星", "camera 视频", "drone 无人机", "patrol 巡查"]
    assert sum(row[-1] for row in book["Daily trend"].iter_rows(min_row=2, values_only=True)) == 1
    assert sum(row[-3] for row in book["Daily trend"].iter_rows(min_row=2, values_only=True)) == 0  # no camera

    rules = dict(book["Rules"].iter_rows(min_row=2, values_only=True))
    assert rules["fire_points.patrol (not set: as drone)"] == 3  # example-v2 sets no patrol weight


def test_the_provincial_csv_names_the_patrol(patrol_found: tuple[ReportData, int]) -> None:
    data, incident = patrol_found
    buffer = io.BytesIO()
    assert write_csv(data, buffer) == 1
    (row,) = csv.DictReader(io.StringIO(buffer.getvalue().decode("utf-8-sig")))
    assert (row["事件编号"], row["乡镇（街道）代码"]) == (str(incident), WEST)
    assert (row["来源"], row["首报来源"], row["处置结果"]) == ("巡查", "巡查", "违规焚烧")


def legend_texts(fig: Figure) -> list[str]:
    return [text.get_text() for ax in fig.axes if ax.get_legend() for text in ax.get_legend().get_texts()]


def test_the_pdf_draws_the_patrol_point_with_its_own_marker_and_series(patrol_found: tuple[ReportData, int]) -> None:
    data, _ = patrol_found
    buffer = io.BytesIO()
    write_pdf(data, buffer, labels=Labels(None))  # a source without a marker or colour failed the whole report
    assert buffer.getvalue().startswith(b"%PDF-")
    labels = Labels(None)
    assert "patrol" in legend_texts(charts.map_page(data, labels))
    assert "patrol" in legend_texts(charts.trend_page(data, labels))
    # The one fire point on the map is drawn with the patrol's marker (the camera's square before).
    (drawn,) = [c for c in charts.map_page(data, labels).axes[0].collections if isinstance(c, PathCollection)]
    marker = MarkerStyle(charts.SOURCE_MARKERS[Source.PATROL])
    expected = marker.get_path().transformed(marker.get_transform())
    assert np.allclose(drawn.get_paths()[0].vertices, expected.vertices)
    assert charts.SOURCE_MARKERS[Source.PATROL] != charts.SOURCE_MARKERS[Source.CAMERA]
    assert Labels("WenQuanYi Micro Hei").t(*charts.SOURCE_LABELS[Source.PATROL]) == "巡查 patrol"
