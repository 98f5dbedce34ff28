"""The report's figures, as matplotlib ``Figure`` objects (no pyplot: no global state, no GUI backend).

Each function returns one page. The map draws the units' WGS-84 boundaries from the database with shapely
geometries and the fire points over them — no basemap tiles, so it works offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import shapely
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch
from matplotlib.path import Path as MplPath
from matplotlib.ticker import MaxNLocator

from service.reports import tables
from service.reports.data import ReportData
from service.reports.fonts import Labels
from service.stats.lifecycle import OutcomeKind, outcome
from service.stats.periods import local_time
from service.stats.records import SOURCE_ORDER, FirePoint, Source
from service.stats.response import Interval, ResponseGroup, percentile, response_of
from service.stats.schemas import minutes
from service.stats.wording import Note, NoteCode

A4_PORTRAIT = (8.27, 11.69)
A4_LANDSCAPE = (11.69, 8.27)
ROWS_PER_PAGE = 24  # of the ranked table, on a landscape page
BARS_PER_CHART = 40  # units in the score chart: the lowest-scoring ones when there are more
COMPLIANCE_GROUPS = 30  # units in the deadline-compliance chart: the worst-compliant ones when there are more

OUTCOME_COLOURS = {
    OutcomeKind.VIOLATION: "#c0392b",
    OutcomeKind.FALSE_ALARM: "#7f8c8d",
    OutcomeKind.PERMITTED_BURN: "#27ae60",
    OutcomeKind.OPEN: "#e67e22",
}
SOURCE_MARKERS = {Source.SATELLITE: "^", Source.CAMERA: "s", Source.DRONE: "o", Source.PATROL: "D"}
SOURCE_COLOURS = {
    Source.SATELLITE: "#8e44ad",
    Source.CAMERA: "#2980b9",
    Source.DRONE: "#16a085",
    Source.PATROL: "#d35400",
}
INTERVAL_LABELS = {
    Interval.ACKNOWLEDGE: ("签收", "acknowledge"),
    Interval.ON_SITE: ("到场", "on site"),
    Interval.EXTINGUISHED: ("扑灭", "extinguished"),
    Interval.CLOSED: ("销号", "closed"),
    Interval.TRAVEL: ("签收→到场", "ack → on site"),
}
OUTCOME_LABELS = {
    OutcomeKind.VIOLATION: ("违规焚烧", "violation"),
    OutcomeKind.FALSE_ALARM: ("误报", "false alarm"),
    OutcomeKind.PERMITTED_BURN: ("计划烧除", "permitted burn"),
    OutcomeKind.OPEN: ("处置中", "open"),
}
# The Chinese names are the spreadsheets' (one list for every output); the English is the source's own name.
SOURCE_LABELS = {s: (tables.SOURCE_ZH[s], s.value) for s in SOURCE_ORDER}
UNIT_CMAP = "Blues"  # units in blues so that the red/orange/green/grey fire markers stand out


def area_title(data: ReportData, labels: Labels) -> str:
    """How the area is named in titles."""
    if data.area_code is None:
        return labels.t("全部", "all units")
    name = labels.unit(data.area_name, None)
    return f"{name} ({data.area_code})" if name != "—" else data.area_code


def _page_title(fig: Figure, labels: Labels, zh: str, en: str, data: ReportData) -> None:
    fig.suptitle(f"{labels.t(zh, en)} — {data.period.label} — {area_title(data, labels)}", fontsize=13)


def _no_data(ax: Axes, labels: Labels) -> None:
    ax.text(0.5, 0.5, labels.t("无数据", "no data"), ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def title_page(data: ReportData, labels: Labels) -> Figure:
    """Period, area, rules, headline numbers, and how to read the report."""
    fig = Figure(figsize=A4_PORTRAIT)
    rules = data.selection.version
    total = data.outcomes.total
    responses = data.responses.total
    ack = responses.intervals[Interval.ACKNOWLEDGE]
    rate = responses.acknowledge.rate
    lines = [
        (labels.t("秸秆焚烧火点与处置考核报告", "Straw-burning fire points and response"), 20),
        ("", 10),
        (
            f"{labels.t('时段', 'Period')}: {data.period.label}  ({data.period.first_day} … {data.period.last_day})",
            12,
        ),
        (f"{labels.t('区域', 'Area')}: {area_title(data, labels)}", 12),
        (
            f"{labels.t('考核规则', 'Rules')}: {labels.drawable(rules.rules.version)} "
            f"({labels.drawable(rules.path.name)}, "
            f"{rules.rules.effective_from} … {rules.last_day or ''})",
            12,
        ),
        (labels.text(rules.rules.title, ""), 11),
        ("", 10),
        (f"{labels.t('火点', 'Fire points')}: {total.fire_points}", 12),
        (
            f"{labels.t('违规焚烧', 'Violations')}: {total.violations}    {labels.t('误报', 'False alarms')}: "
            f"{total.false_alarms}    {labels.t('计划烧除', 'Permitted burns')}: {total.permitted_burns}    "
            f"{labels.t('处置中', 'Open')}: {total.open}",
            11,
        ),
        # Edge fire points are scored like any other; the line (and the fire-point lists' column) is for review.
        (
            f"{labels.t('界外就近火点', 'Edge fire points')}: {total.edge}  "
            + (
                "（位于各单位界外、归属最近单位：照常计分，供复核）"
                if labels.cjk
                else "(outside every unit, given to the nearest: scored as usual, marked for review)"
            ),
            11,
        ),
        (
            f"{labels.t('签收用时', 'Time to acknowledge')} P50 / P90: {_min(ack.p50)} / {_min(ack.p90)} min    "
            f"{labels.t('按时签收率', 'On time')}: {'—' if rate is None else percent(rate)}",
            11,
        ),
        (_deadline_line(data, labels), 10),
        ("", 10),
        (
            f"{labels.t('生成时间', 'Generated')}: {local_time(data.generated_at):%Y-%m-%d %H:%M} (UTC+8); "
            f"{labels.t('数据截至', 'data as of')} {local_time(data.as_of):%Y-%m-%d %H:%M}",
            9,
        ),
        (
            "Days are counted in Beijing time (UTC+8). Times are from notification (推送); fractiles are nearest-rank."
            if labels.cjk
            else "Days are counted in Beijing time (UTC+8). Times are from notification; fractiles are nearest-rank.",
            9,
        ),
    ]
    if not labels.cjk:
        lines.append(("No CJK font installed: unit names are shown as codes (install fonts-wqy-microhei).", 9))
    lines.extend((note_line(note, data, labels), 9) for note in data.notes)
    y = 0.88
    for text, size in lines:
        fig.text(0.08, y, text, fontsize=size, va="top", wrap=True)
        y -= 0.012 + size / 520
    return fig


def percent(rate: float) -> str:
    """A rate as a whole percentage, halves rounded up (0.625: "63%"), as a spreadsheet formats the XLSX's rate
    (Python's own formatting rounds half to even: "62%"). The rate's shortest decimal form is rounded, so that
    0.145 is 15%, not the 14% its binary value would give."""
    return f"{(Decimal(repr(rate)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)}%"


_LEVEL_ZH = {"township": "乡镇", "county": "区县"}


def note_line(note: Note, data: ReportData, labels: Labels) -> str:
    """A warning about the scores in the report's language: Chinese with a CJK font (the report is Chinese), else
    the English :attr:`Note.text`. A code without Chinese words here is shown in English (with a CJK font) or with
    its undrawable characters as "?"."""
    if not labels.cjk:
        return labels.drawable(note.text)
    p = note.params
    scored_with = "首日适用的" if data.selection.covers_first_day else "本时段内最早施行的"
    if note.code is NoteCode.RULES_CHANGED and "uncovered" in p:
        return (
            f"注意：{p['uncovered']}（本时段内 {p['uncovered_days']} 天）没有施行中的考核办法；本时段按"
            f"{scored_with} {p['scored_with']}（{p['file']}，{p['effective_from']} 起施行）计分。"
        )
    if note.code is NoteCode.RULES_CHANGED:
        return (
            f"注意：考核办法 {p['version']}（{p['file']}）于 {p['effective_from']} 在本时段内生效；本时段按"
            f"{scored_with} {p['scored_with']} 计分。"
        )
    if note.code is NoteCode.LEVEL_FALLBACK:
        return f"注意：区域内没有{_LEVEL_ZH.get(str(p['preferred']), p['preferred'])}级单位：改为按" + (
            f"{_LEVEL_ZH.get(str(p['chosen']), p['chosen'])}计分。"
        )
    if note.code is NoteCode.UNSCORED:
        return f"注意：区域内有 {p['n']} 个火点不属于任何{_LEVEL_ZH.get(str(p['level']), p['level'])}，未计入考核。"
    if note.code is NoteCode.PROVISIONAL:
        return (
            f"注意：截至 {local_time(data.as_of):%Y-%m-%d %H:%M}（UTC+8）仍有 {p['n']} 个火点处置中（涉及 "
            f"{p['units']} 个单位），得分为暂定，定性后可能变化。"
        )
    return note.text


def _deadline_line(data: ReportData, labels: Labels) -> str:
    default = data.deadlines.default
    line = (
        f"{labels.t('时限', 'Deadlines')}: {labels.t('签收', 'acknowledge')} {_min(default.acknowledge)} min, "
        f"{labels.t('签收后到场', 'on site after acknowledging')} {_min(default.on_site)} min"
    )
    if data.deadlines.per_county:
        line += f" ({labels.t('另有规定', 'own deadlines')}: {', '.join(sorted(data.deadlines.per_county))})"
    return line


def _min(value: timedelta | None) -> str:
    got = minutes(value)
    return "—" if got is None else f"{got:g}"


def ranking_pages(data: ReportData, labels: Labels) -> list[Figure]:
    """A bar chart of scores, lowest first, then the ranked table, ``ROWS_PER_PAGE`` units a landscape page.

    The chart is for accountability, which is about the units that lost points: it lists the units from the lowest
    score up, and when there are more than ``BARS_PER_CHART`` it shows the lowest ones and says so ("the 40 lowest
    of 45"); the table after it lists every unit, best first, with the columns that explain each score.
    """
    units = data.board.units
    pages = [_score_chart(data, labels)]
    columns = tables.pdf_ranked_columns(data)
    header = [labels.t2(zh, en) for _, zh, en in columns]
    wide = {"unit 单位": 0.09, "sanction 问责": 0.12, "grade 等次": 0.05}
    widths = [wide.get(name, 0.0) for name, _, _ in columns]
    narrow = (0.98 - sum(widths)) / sum(1 for w in widths if not w)
    widths = [w or narrow for w in widths]
    at = {name: i for i, name in enumerate(tables.ranked_header(data))}
    rows = list(tables.ranked_rows(data))
    for start in range(0, max(1, len(units)), ROWS_PER_PAGE):
        chunk = rows[start : start + ROWS_PER_PAGE]
        fig = Figure(figsize=A4_LANDSCAPE)
        _page_title(fig, labels, "考核得分明细", "Scores in detail", data)
        fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.04)
        ax = fig.add_subplot()
        ax.axis("off")
        cells = [[_ranked_cell(name, row, at, labels) for name, _, _ in columns] for row in chunk] or [
            ["—"] * len(header)
        ]
        table = ax.table(cellText=cells, colLabels=header, colWidths=widths, loc="upper center", cellLoc="center")
        table.auto_set_font_size(False)
        table.set_fontsize(6.5)
        table.scale(1, 1.3)
        for (row, _), cell in table.get_celld().items():
            if row == 0:
                cell.set_height(cell.get_height() * 2)  # two-line headings
                cell.set_fontsize(6)
        ax.text(
            0,
            0,
            "* "
            + labels.t("无耕地面积，按行政区面积计", "no cropland figure: per 1,000 ha of total area")
            + "    "
            + labels.t(
                f"得分 = {data.board.rules.base:g} − 扣分 + 加分（封顶、保底按考核办法）",
                f"score = {data.board.rules.base:g} − deductions + credits (within the rules' floor and credit cap)",
            ),
            fontsize=7,
            transform=ax.transAxes,
        )
        pages.append(fig)
    return pages


def _score_chart(data: ReportData, labels: Labels) -> Figure:
    """The scores as bars, lowest first (see :func:`ranking_pages`)."""
    units = data.board.units
    fig = Figure(figsize=A4_PORTRAIT)
    _page_title(fig, labels, "考核得分排名", "Ranked scores", data)
    ax = fig.add_subplot()
    if not units:
        _no_data(ax, labels)
        return fig
    shown = list(reversed(units))[:BARS_PER_CHART]  # the board is ranked best first
    names = [labels.unit(u.name, u.code) for u in shown]
    y = np.arange(len(shown))
    colours = ["#27ae60" if u.violations == 0 else "#e67e22" if u.score >= 60 else "#c0392b" for u in shown]
    ax.barh(y, [u.score for u in shown], color=colours)
    ax.set_yticks(y, names, fontsize=8)
    ax.set_ylim(max(len(shown), 12) - 0.5, -0.5)  # a few units still get slim bars
    ax.set_xlabel(labels.t("得分", "score"))
    ax.set_xlim(min(0.0, min(u.score for u in shown)), max(data.board.rules.base, max(u.score for u in shown)))
    for i, u in enumerate(shown):
        ax.text(u.score, i, f" {u.score:g}", va="center", fontsize=7)
    if len(shown) < len(units):
        subtitle = labels.t(
            f"得分最低的 {len(shown)} 个单位（共 {len(units)} 个），由低到高；全部单位见明细表",
            f"the {len(shown)} lowest of {len(units)}, lowest first; every unit is in the table",
        )
    else:
        subtitle = labels.t(f"全部 {len(units)} 个单位，由低到高", f"all {len(units)}, lowest first")
    ax.set_title(subtitle, fontsize=9)
    return fig


def _ranked_cell(name: str, row: list[tables.Cell], at: dict[str, int], labels: Labels) -> str:
    """A cell of the PDF's ranked table, from the XLSX's row (:func:`tables.ranked_rows`): the same figures."""
    value = row[at[name]]
    if value is None:
        return "—"
    if name == tables.DENSITY_HEADER and isinstance(value, float):
        return f"{value:.3f}" + ("*" if row[at[tables.DENSITY_BASIS_HEADER]] == "area" else "")
    if isinstance(value, float):
        return f"{round(value, 4):g}"
    if isinstance(value, str):
        return labels.unit(value, str(row[at["code 代码"]])) if name == "unit 单位" else labels.text(value)
    return str(value)


def _ring_path(polygon: shapely.Polygon) -> tuple[list[tuple[float, float]], list[np.uint8]]:
    vertices: list[tuple[float, float]] = []
    codes: list[np.uint8] = []
    oriented = shapely.geometry.polygon.orient(polygon, 1.0)  # exterior CCW, holes CW: nonzero fill keeps holes
    for ring in (oriented.exterior, *oriented.interiors):
        coords = list(ring.coords)
        vertices.extend((float(x), float(y)) for x, y, *_ in coords)
        codes.extend([MplPath.MOVETO] + [MplPath.LINETO] * (len(coords) - 2) + [MplPath.CLOSEPOLY])
    return vertices, codes


def geometry_path(geometry: shapely.Geometry) -> MplPath:
    """A matplotlib path of a (multi)polygon, holes included."""
    vertices: list[tuple[float, float]] = []
    codes: list[np.uint8] = []
    for polygon in getattr(geometry, "geoms", [geometry]):
        if isinstance(polygon, shapely.Polygon) and not polygon.is_empty:
            v, c = _ring_path(polygon)
            vertices.extend(v)
            codes.extend(c)
    return MplPath(vertices, codes)


def unit_colour(violations: int, most: int, cmap: Colormap) -> tuple[float, float, float, float]:
    """The fill of a unit: pale for none, darker with more violations."""
    return tuple(cmap(0.05 + 0.55 * Normalize(0, max(1, most))(violations)))  # type: ignore[return-value]


def map_page(data: ReportData, labels: Labels) -> Figure:
    """Fire points over the unit boundaries, units shaded by their violations."""
    from matplotlib import colormaps

    fig = Figure(figsize=A4_LANDSCAPE)
    _page_title(fig, labels, "火点分布图", "Map of fire points", data)
    fig.subplots_adjust(left=0.07, right=0.78, bottom=0.08, top=0.9)
    ax = fig.add_subplot()
    extent = [u.geometry.bounds for u in data.units if u.geometry is not None]
    clearance = 0.03 * max((max(b[2] for b in extent) - min(b[0] for b in extent)) if extent else 0.0, 0.01)
    # Each fire marker's keep-clear disc, made once and found per unit by a tree: buffering every marker for every
    # unit (a MultiPoint's buffer, seconds per unit for a season's fire points) made the map quadratic.
    spots = np.array([(p.longitude, p.latitude) for p in data.points], dtype=float).reshape(-1, 2)
    discs = shapely.buffer(shapely.points(spots), clearance)
    near = shapely.STRtree(discs)
    cmap = colormaps[UNIT_CMAP]
    violations = {g.key: g.violations for g in data.outcomes.groups}
    most = max(violations.values(), default=0)
    bounds: list[tuple[float, float, float, float]] = []
    for unit in data.units:
        if unit.geometry is None:
            continue
        patch = PathPatch(
            geometry_path(unit.geometry),
            facecolor=unit_colour(violations.get(unit.code, 0), most, cmap),
            edgecolor="0.35",
            linewidth=0.6,
            gid=unit.code,
        )
        ax.add_patch(patch)
        bounds.append(unit.geometry.bounds)
        spot = _label_spot(unit.geometry, discs[near.query(unit.geometry)])
        ax.annotate(
            labels.unit(unit.name, unit.code), (spot.x, spot.y), ha="center", va="center", fontsize=7, color="0.15"
        )
    for county in data.outlines:
        if county.geometry is not None:
            ax.add_patch(PathPatch(geometry_path(county.geometry), fill=False, edgecolor="0.1", linewidth=1.4))
    for source in SOURCE_ORDER:
        found = [p for p in data.points if _finder(p) is source]
        if found:
            ax.scatter(
                [p.longitude for p in found],
                [p.latitude for p in found],
                marker=SOURCE_MARKERS[source],
                c=[OUTCOME_COLOURS[outcome(p.transitions).kind] for p in found],
                s=36,
                edgecolors="black",
                linewidths=0.5,
                zorder=3,
            )
            bounds.extend((p.longitude, p.latitude, p.longitude, p.latitude) for p in found)
    if bounds:
        x0, y0 = min(b[0] for b in bounds), min(b[1] for b in bounds)
        x1, y1 = max(b[2] for b in bounds), max(b[3] for b in bounds)
        pad_x, pad_y = max(0.01, 0.04 * (x1 - x0)), max(0.01, 0.04 * (y1 - y0))
        ax.set_xlim(x0 - pad_x, x1 + pad_x)
        ax.set_ylim(y0 - pad_y, y1 + pad_y)
        ax.set_aspect(1.0 / max(0.1, math.cos(math.radians((y0 + y1) / 2))))  # metres east ≈ metres north
    else:
        _no_data(ax, labels)
    ax.set_xlabel(labels.t("经度", "longitude") + " (°E, WGS-84)")
    ax.set_ylabel(labels.t("纬度", "latitude") + " (°N, WGS-84)")
    handles = [
        Line2D(
            [],
            [],
            marker=SOURCE_MARKERS[s],
            linestyle="",
            color="white",
            markeredgecolor="black",
            markersize=7,
            label=labels.t(*SOURCE_LABELS[s]),
        )
        for s in SOURCE_ORDER
    ] + [Patch(facecolor=c, edgecolor="black", label=labels.t(*OUTCOME_LABELS[k])) for k, c in OUTCOME_COLOURS.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.text(
        1.01,
        0.0,
        labels.t("底色：违规火点数", "shading: violations")
        + f" (0–{most})\n"
        + labels.t("标记：首次发现来源", "marker: first source"),
        transform=ax.transAxes,
        fontsize=7,
        va="bottom",
    )
    return fig


def _label_spot(geometry: shapely.Geometry, discs: np.ndarray) -> shapely.Point:
    """Where a unit's name goes: inside it, clear of the fire markers' ``discs`` near it when there is room."""
    if len(discs):
        free = geometry.difference(shapely.union_all(discs))
        if not free.is_empty and free.area > 0.05 * geometry.area:
            return free.representative_point()
    return geometry.representative_point()


def _finder(point: FirePoint) -> Source:
    first = point.first_sighting
    return first.source if first is not None else Source.CAMERA


def _interval_durations(data: ReportData, interval: Interval, source: Source | None = None) -> list[timedelta]:
    values = []
    for p in data.points:
        if source is not None and source not in p.sources:
            continue
        response = response_of(p, data.deadlines.for_county(p.county_code), data.as_of)
        if response is not None and interval in response.intervals:
            values.append(response.intervals[interval])
    return values


def response_page(data: ReportData, labels: Labels) -> Figure:
    """Distributions of the response intervals, by interval and by source, with the deadlines; compliance."""
    fig = Figure(figsize=A4_PORTRAIT)
    _page_title(fig, labels, "响应时间分布", "Response times", data)
    grid = fig.add_gridspec(3, 1, hspace=0.55)
    ax = fig.add_subplot(grid[0])
    series = [(labels.t(*INTERVAL_LABELS[i]), _interval_durations(data, i)) for i in Interval]
    _boxes(
        ax,
        labels,
        series,
        labels.t("推送后分钟（签收→到场除外）", "minutes from notification (travel: from acknowledging)"),
    )
    ax = fig.add_subplot(grid[1])
    series = [(labels.t(*SOURCE_LABELS[s]), _interval_durations(data, Interval.ACKNOWLEDGE, s)) for s in SOURCE_ORDER]
    if _boxes(ax, labels, series, labels.t("按来源的签收用时（分钟）", "time to acknowledge by source (minutes)")):
        _acknowledge_deadlines(ax, data, labels)
    _compliance_chart(fig.add_subplot(grid[2]), data, labels)
    fig.text(
        0.08,
        0.015,
        labels.t(
            "箱体：P25–P75，中线 P50（最近秩法，与表格一致）；须线：最小–最大",
            "boxes: P25–P75, line P50 (nearest-rank, as in the tables); whiskers: min–max",
        ),
        fontsize=7,
        color="0.3",
    )
    return fig


def _acknowledge_deadlines(ax: Axes, data: ReportData, labels: Labels) -> None:
    """The acknowledge deadlines over the by-source boxes: the default one, labelled so, and each county's own that
    differs from it (counties of the report's fire points), labelled with the county: a county's 5-minute deadline
    was drawn as the default 15 minutes, and its late answers looked on time."""
    default = minutes(data.deadlines.default.acknowledge) or 0.0
    ax.axhline(default, color="#c0392b", linestyle="--", linewidth=0.8)
    ax.text(
        0.5,
        default,
        f" {labels.t('默认时限', 'default deadline')} {default:g} min",
        color="#c0392b",
        fontsize=7,
        va="bottom",
    )
    counties: dict[float, list[str]] = {}
    for code, name in sorted({(p.county_code, p.county_name) for p in data.points if p.county_code}):
        own = data.deadlines.per_county.get(code)
        if own is None or own.acknowledge == data.deadlines.default.acknowledge:
            continue
        counties.setdefault(minutes(own.acknowledge) or 0.0, []).append(labels.unit(name, code))
    for deadline, names in sorted(counties.items()):
        ax.axhline(deadline, color="#8e44ad", linestyle=":", linewidth=0.9)
        joined = ("、" if labels.cjk else ", ").join(names)
        ax.text(0.5, deadline, f" {joined} {deadline:g} min", color="#8e44ad", fontsize=7, va="bottom")


def _worst_compliance_first(group: ResponseGroup) -> tuple[int, float, float, str]:
    """Sorts the groups worst first: by their lower deadline rate, then the other; groups with no rate last."""
    rates = sorted(r for r in (group.acknowledge.rate, group.on_site.rate) if r is not None)
    if not rates:
        return (1, 0.0, 0.0, group.key or "")
    return (0, rates[0], rates[-1], group.key or "")


def _compliance_chart(ax: Axes, data: ReportData, labels: Labels) -> None:
    """Each unit's on-time rates, worst first: the ``COMPLIANCE_GROUPS`` worst when there are more, said in the
    title. A rate with nothing to judge (no answer due yet: not applicable) is marked "n/a", not drawn as 0 %."""
    every = data.responses.groups
    if not every:
        _no_data(ax, labels)
        return
    groups = sorted(every, key=_worst_compliance_first)[:COMPLIANCE_GROUPS]
    x = np.arange(len(groups))
    for offset, rates, label, colour in (
        (-0.2, [g.acknowledge.rate for g in groups], labels.t("按时签收", "acknowledged on time"), "#1f77b4"),
        (0.2, [g.on_site.rate for g in groups], labels.t("按时到场", "on site on time"), "#ff7f0e"),
    ):
        ax.bar(x + offset, [np.nan if r is None else 100 * r for r in rates], width=0.4, label=label, color=colour)
        for i, r in enumerate(rates):
            # No bar is drawn for n/a, and a 0 % bar has no height: both are written, so neither reads as the other.
            if r is None or r == 0:
                mark = labels.t("不适用", "n/a") if r is None else "0%"
                ax.text(i + offset, 1, mark, rotation=90, ha="center", va="bottom", fontsize=6.5, color="0.25")
    ax.set_xticks(x, [labels.unit(g.name, g.key) for g in groups], rotation=60, ha="right", fontsize=7)
    ax.set_xlim(-0.6, len(groups) - 0.4)  # bars of n/a are not drawn and would not widen the axis
    ax.set_ylim(0, 122)  # room for the legend above the 100 % bars
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("%")
    ax.legend(fontsize=7, loc="upper center", ncols=2, frameon=False)
    title = labels.t("时限达标率（由差到好）", "deadline compliance, worst first")
    if len(groups) < len(every):
        title += "  " + labels.t(
            f"达标率最低的 {len(groups)} 个（共 {len(every)} 个）", f"the {len(groups)} worst of {len(every)}"
        )
    ax.set_title(title, fontsize=10)


def _box_stats(label: str, values: list[timedelta]) -> dict[str, object]:
    """A box of :meth:`Axes.bxp` from the project's nearest-rank fractiles (the tables' and the API's p50), not
    matplotlib's interpolated ones: the box's middle line is the p50 the tables give. Whiskers: min and max."""

    def m(value: timedelta) -> float:
        return value.total_seconds() / 60.0

    return {
        "label": label,
        "whislo": m(min(values)),
        "q1": m(percentile(values, 25)),
        "med": m(percentile(values, 50)),
        "q3": m(percentile(values, 75)),
        "whishi": m(max(values)),
        "fliers": [],
    }


def _boxes(ax: Axes, labels: Labels, series: Sequence[tuple[str, list[timedelta]]], title: str) -> bool:
    """One box per series (its name and n under it); False, and "no data", when no series has a value."""
    ax.set_title(title, fontsize=10)
    if not any(values for _, values in series):
        _no_data(ax, labels)
        return False
    names = [f"{name}\nn={len(values)}" for name, values in series]
    drawn = [(i + 1, _box_stats(names[i], values)) for i, (_, values) in enumerate(series) if values]
    ax.bxp([stats for _, stats in drawn], positions=[at for at, _ in drawn], showfliers=False)
    ax.set_xticks(range(1, len(series) + 1), names)  # a series without values keeps its place and its n=0
    ax.set_xlim(0.5, len(series) + 0.5)
    ax.set_ylabel(labels.t("分钟", "minutes"))
    ax.tick_params(axis="x", labelsize=7)
    return True


def trend_page(data: ReportData, labels: Labels) -> Figure:
    """Fire points per local day, stacked by outcome, and per source."""
    fig = Figure(figsize=A4_LANDSCAPE)
    _page_title(fig, labels, "每日趋势", "Daily trend", data)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"hspace": 0.15})
    days = data.period.days()
    rows = {g.key: g for g in data.daily.groups}
    x = np.array([np.datetime64(day.isoformat()) for day in days])
    stacked = {
        OutcomeKind.VIOLATION: [rows[d.isoformat()].violations if d.isoformat() in rows else 0 for d in days],
        OutcomeKind.FALSE_ALARM: [rows[d.isoformat()].false_alarms if d.isoformat() in rows else 0 for d in days],
        OutcomeKind.PERMITTED_BURN: [rows[d.isoformat()].permitted_burns if d.isoformat() in rows else 0 for d in days],
        OutcomeKind.OPEN: [rows[d.isoformat()].open if d.isoformat() in rows else 0 for d in days],
    }
    base = np.zeros(len(days))
    for kind, values in stacked.items():
        top.bar(x, values, bottom=base, color=OUTCOME_COLOURS[kind], width=0.8, label=labels.t(*OUTCOME_LABELS[kind]))
        base += np.array(values)
    top.set_ylabel(labels.t("火点数", "fire points"))
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    top.legend(fontsize=7, loc="upper right")
    for source in SOURCE_ORDER:
        counts = dict.fromkeys(days, 0)
        for p in data.points:
            if source in p.sources:
                day = local_time(p.first_observed_at).date()
                if day in counts:
                    counts[day] += 1
        bottom.plot(
            x,
            [counts[d] for d in days],
            marker=".",
            color=SOURCE_COLOURS[source],
            label=labels.t(*SOURCE_LABELS[source]),
        )
    bottom.set_ylabel(labels.t("按来源", "by source"))
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.legend(fontsize=7, loc="upper right")
    fig.autofmt_xdate()
    return fig
