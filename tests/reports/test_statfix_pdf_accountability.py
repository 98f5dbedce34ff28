"""The PDF shows what accountability needs: the lowest scores (not the first 40 by rank), the worst deadline
compliance, the nearest-rank fractiles the tables give, the columns that explain a score, and each county's own
deadline; n/a is not drawn as 0 %, and a rate rounds half up as the spreadsheet shows it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.table import Table

from service.reports import charts, tables
from service.reports.data import ReportData
from service.reports.fonts import Labels
from service.stats.response import ComplianceCount, Interval
from tests.stats.scenario import COUNTY_B, EAST, SOUTH, WEST

ENGLISH = Labels(None)


def with_townships(data: ReportData, count: int) -> ReportData:
    """The board with ``count`` units: 西镇's clean row copied, then the two that lost points ranked last."""
    clean = next(u for u in data.board.units if u.code == WEST)
    losers = [u for u in data.board.units if u.code != WEST]
    copies = [replace(clean, code=f"2299010{n:02d}", name=f"镇{n:02d}", rank=n) for n in range(1, count - 1)]
    ranked = copies + [replace(u, rank=count - 1 + i) for i, u in enumerate(losers)]
    return replace(data, board=replace(data.board, units=ranked))


def score_axes(fig: Figure) -> Axes:
    (ax,) = fig.axes
    return ax


def test_the_score_chart_shows_the_lowest_scores_first_and_says_when_cut(november: ReportData) -> None:
    data = with_townships(november, 45)
    pages = charts.ranking_pages(data, ENGLISH)
    ax = score_axes(pages[0])
    shown = [t.get_text() for t in ax.get_yticklabels()]
    # Were the first 40 by rank: the only two units that lost points (ranked 44 and 45) were not on it.
    assert shown[:2] == [EAST, SOUTH]  # codes: no CJK font; lowest first, at the top
    assert len(shown) == 40
    assert ax.get_title() == "the 40 lowest of 45, lowest first; every unit is in the table"
    # Every unit is in the ranked table (24 a landscape page).
    assert len(pages) == 1 + 2
    ranked = [cell_texts(page)[1:] for page in pages[1:]]
    assert sum(len(rows) for rows in ranked) == 45
    # A board that fits says it shows them all.
    assert score_axes(charts.ranking_pages(november, ENGLISH)[0]).get_title() == "all 3, lowest first"


def cell_texts(page: Figure) -> list[list[str]]:
    """The ranked table's cells by row (row 0: the headings)."""
    (ax,) = page.axes
    (table,) = ax.tables
    assert isinstance(table, Table)
    cells = table.get_celld()
    rows = 1 + max(r for r, _ in cells)
    columns = 1 + max(c for _, c in cells)
    return [[cells[r, c].get_text().get_text() for c in range(columns)] for r in range(rows)]


def test_the_ranked_table_explains_each_score(november: ReportData) -> None:
    (_, page) = charts.ranking_pages(november, ENGLISH)
    header, *rows = cell_texts(page)
    # Missing before: sanction (问责), camera and drone points, concealed (瞒报), and the deductions and credits.
    for heading in ("sanction", "camera", "drone", "patrol", "concealed", "deductions", "credits"):
        assert heading in header
    by_code = {u.code: u for u in november.board.units}
    at = {name: i for i, name in enumerate(header)}
    for row, unit in zip(rows, november.board.units, strict=True):
        assert row[at["unit"]] == unit.code  # no CJK font: the code
        assert row[at["score"]] == f"{unit.score:g}"
        assert row[at["concealed"]] == str(unit.concealed)
        assert row[at["deductions"]] == f"{round(unit.deductions, 4):g}"
        assert row[at["credits"]] == f"{round(unit.credits, 4):g}"
        assert row[at["sanction"]] == "—"  # sanctions are Chinese: "—" without a CJK font (with one: below)
    south = rows[[u.code for u in november.board.units].index(SOUTH)]
    assert south[at["concealed"]] == "1"  # 南乡 concealed fire G: its score could not be explained without it
    assert by_code[SOUTH].sanction == "全市通报批评，取消评优资格"
    (_, chinese) = charts.ranking_pages(november, Labels("WenQuanYi Micro Hei"))
    cjk_header, *cjk_rows = cell_texts(chinese)
    sanction = next(i for i, h in enumerate(cjk_header) if h.startswith("问责"))
    assert [r[sanction] for r in cjk_rows] == [u.sanction or "—" for u in november.board.units]
    # The same figures as the XLSX's ranked sheet, column by column.
    xlsx = {name: i for i, name in enumerate(tables.ranked_header(november))}
    for row, xlsx_row in zip(rows, tables.ranked_rows(november), strict=True):
        assert row[at["violations"]] == str(xlsx_row[xlsx["violations 违规火点"]])
        assert row[at["drone"]] == str(xlsx_row[xlsx["drone 无人机点"]])


def test_the_ranked_table_fits_its_cells(november: ReportData) -> None:
    """Every heading and figure stays inside its cell (20 columns on a landscape page)."""
    data = with_townships(november, 3)
    (_, page) = charts.ranking_pages(data, ENGLISH)
    assert tuple(page.get_size_inches()) == charts.A4_LANDSCAPE
    with rc_context({"font.family": ENGLISH.families}):
        renderer = FigureCanvasAgg(page).get_renderer()
        page.draw(renderer)
        (table,) = page.axes[0].tables
        for (row, column), cell in table.get_celld().items():
            text = cell.get_text()
            assert text.get_window_extent(renderer).width <= cell.get_window_extent(renderer).width, (row, column)
        assert table.get_window_extent(renderer).x1 <= page.bbox.x1


def first_y(line: Line2D) -> float:
    return float(np.asarray(line.get_ydata(), dtype=float)[0])


def medians(ax: Axes) -> list[float]:
    """The middle lines of the boxes (matplotlib's median lines, drawn in "C1")."""
    return [first_y(line) for line in ax.get_lines() if line.get_color() == "C1"]


def boxes(ax: Axes) -> list[tuple[float, float]]:
    """Each box's bottom and top (q1, q3)."""
    found = []
    for line in ax.get_lines():
        ys = np.asarray(line.get_ydata(), dtype=float)
        if len(ys) == 5 and ys[0] == ys[-1]:  # the box's closed outline
            found.append((float(ys.min()), float(ys.max())))
    return found


def test_box_plots_use_the_nearest_rank_fractiles_of_the_tables(november: ReportData) -> None:
    fig = charts.response_page(november, ENGLISH)
    intervals = fig.axes[0]
    # Extinguished in 18, 60, 75 and 100 minutes: the tables' p50 is 60, matplotlib's interpolated median 67.5.
    total = november.responses.total.intervals
    p50s = [total[i].p50 for i in Interval]
    assert medians(intervals) == [p50.total_seconds() / 60 for p50 in p50s if p50 is not None]
    assert medians(intervals)[list(Interval).index(Interval.EXTINGUISHED)] == 60.0
    # The audit's six answers: 8, 10, 20, 30, 60, 90 minutes; the API and the XLSX say p50 = 20 (the box said 25).
    ax = Figure().add_subplot()
    values = [timedelta(minutes=m) for m in (8, 10, 20, 30, 60, 90)]
    assert charts._boxes(ax, ENGLISH, [("a", values), ("none", [])], "t")
    assert medians(ax) == [20.0]
    assert boxes(ax) == [(10.0, 60.0)]  # nearest-rank P25 and P75 (interpolated: 12.5 and 52.5)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a\nn=6", "none\nn=0"]


def test_each_countys_own_acknowledge_deadline_is_drawn(november: ReportData) -> None:
    _, by_source, _ = charts.response_page(november, ENGLISH).axes
    lines = {first_y(line) for line in by_source.get_lines() if line.get_linestyle() in ("--", ":")}
    assert lines == {15.0, 5.0}  # the default, and 乙县's 5 minutes (was: the default alone)
    texts = [t.get_text() for t in by_source.texts]
    assert " default deadline 15 min" in texts
    assert f" {COUNTY_B} 5 min" in texts  # no CJK font: the county's code


def test_compliance_chart_worst_first_with_na_marked(november: ReportData) -> None:
    ax = charts.response_page(november, ENGLISH).axes[2]
    # 南乡: acknowledged late (0 %), never had to be on site (n/a); then 东镇 (2/3, 2/3), then 西镇 (2/3, 1).
    assert [t.get_text() for t in ax.get_xticklabels()] == [SOUTH, EAST, WEST]
    heights = [bar.get_height() for bar in ax.patches if isinstance(bar, Rectangle)]
    assert np.isnan(heights[3])  # 南乡's on-site rate: no bar (was a 0 % bar)
    assert [t.get_text() for t in ax.texts] == ["0%", "n/a"]
    assert ax.get_title() == "deadline compliance, worst first"


def test_compliance_chart_is_cut_to_the_worst_and_says_so(november: ReportData) -> None:
    (east,) = [g for g in november.responses.groups if g.key == EAST]
    groups = [
        replace(east, key=f"2299010{n:02d}", name=None, acknowledge=ComplianceCount(met=n, missed=1))
        for n in range(1, 46)
    ]
    data = replace(november, responses=replace(november.responses, groups=groups))
    ax = charts.response_page(data, ENGLISH).axes[2]
    shown = [t.get_text() for t in ax.get_xticklabels()]
    assert shown[:3] == ["229901001", "229901002", "229901003"]  # the lowest acknowledge rates (1/2, 2/3, 3/4)
    assert len(shown) == 30
    assert ax.get_title() == "deadline compliance, worst first  the 30 worst of 45"


def test_rates_round_half_up_as_in_the_spreadsheet(november: ReportData) -> None:
    five_of_eight = replace(
        november.responses, total=replace(november.responses.total, acknowledge=ComplianceCount(met=5, missed=3))
    )
    texts = [t.get_text() for t in charts.title_page(replace(november, responses=five_of_eight), ENGLISH).texts]
    assert any("On time: 63%" in t for t in texts)  # was 62% (round half to even); the XLSX holds 0.625
    rates = (0.625, 0.145, 0.5, 2 / 3, 0.0, 1.0)
    assert [charts.percent(r) for r in rates] == ["63%", "15%", "50%", "67%", "0%", "100%"]
