"""The report's figures, as matplotlib ``Figure`` objects (no pyplot: no global state, no GUI backend).

Each function returns one page. The map draws the units' WGS-84 boundaries from the database with shapely
geometries and the fire points over them — no basemap tiles, so it works offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta

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
from service.stats.response import Interval, response_of
from service.stats.schemas import minutes

A4_PORTRAIT = (8.27, 11.69)
A4_LANDSCAPE = (11.69, 8.27)
ROWS_PER_PAGE = 32

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
        (
            f"{labels.t('签收用时', 'Time to acknowledge')} P50 / P90: {_min(ack.p50)} / {_min(ack.p90)} min    "
            f"{labels.t('按时签收率', 'On time')}: {'—' if rate is None else f'{rate:.0%}'}",
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
    lines.extend((labels.text(w, w.encode("ascii", "replace").decode()), 9) for w in data.warnings)
    y = 0.88
    for text, size in lines:
        fig.text(0.08, y, text, fontsize=size, va="top", wrap=True)
        y -= 0.012 + size / 520
    return fig


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
    """A bar chart of scores, then the ranked table, ``ROWS_PER_PAGE`` units a page."""
    units = data.board.units
    pages = []
    fig = Figure(figsize=A4_PORTRAIT)
    _page_title(fig, labels, "考核得分排名", "Ranked scores", data)
    ax = fig.add_subplot()
    if units:
        shown = units[:40]
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
    else:
        _no_data(ax, labels)
    pages.append(fig)
    feedback = tables.shows_late_feedback(data)  # a column only when the rules count late feedback
    header = [
        labels.t2("名次", "rank"),
        labels.t2("单位", "unit"),
        labels.t2("得分", "score"),
        labels.t2("等次", "grade"),
        labels.t2("违规", "violations"),
        labels.t2("卫星点", "satellite"),
        labels.t2("漏报", "unreported"),
        labels.t2("自查自报", "self-found"),
        labels.t2("再次起火", "repeats"),
        labels.t2("签收超时", "late ack"),
        labels.t2("到场超时", "late site"),
        *([labels.t2("反馈超时", "late feedback")] if feedback else []),
        labels.t2("千公顷密度", "/1000 ha"),
    ]
    for start in range(0, max(1, len(units)), ROWS_PER_PAGE):
        chunk = units[start : start + ROWS_PER_PAGE]
        fig = Figure(figsize=A4_PORTRAIT)
        _page_title(fig, labels, "考核得分明细", "Scores in detail", data)
        ax = fig.add_subplot()
        ax.axis("off")
        rows = [
            [
                str(u.rank),
                labels.unit(u.name, u.code),
                f"{u.score:g}",
                labels.text(u.grade),
                str(u.violations),
                str(u.violations_by_source.get(Source.SATELLITE.value, 0)),
                str(u.unreported),
                str(u.self_found),
                str(u.repeat_at_site),
                str(u.late_acknowledge),
                str(u.late_on_site),
                *([str(u.late_feedback)] if feedback else []),
                "—"
                if u.density_per_1000ha is None
                else f"{u.density_per_1000ha:.3f}" + ("*" if u.density_basis == "area" else ""),
            ]
            for u in chunk
        ] or [["—"] * len(header)]
        widths = [0.06, 0.2, 0.08, 0.1] + [min(0.07, 0.56 / (len(header) - 4))] * (len(header) - 4)
        table = ax.table(cellText=rows, colLabels=header, colWidths=widths, loc="upper center", cellLoc="center")
        table.auto_set_font_size(False)
        table.set_fontsize(7)
        table.scale(1, 1.3)
        for (row, _), cell in table.get_celld().items():
            if row == 0:
                cell.set_height(cell.get_height() * 2)  # two-line headings
        ax.text(
            0,
            0,
            "* " + labels.t("无耕地面积，按行政区面积计", "no cropland figure: per 1,000 ha of total area"),
            fontsize=7,
            transform=ax.transAxes,
        )
        pages.append(fig)
    return pages


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
    ax.set_ylabel(labels.t("纬度", "latitude") + " (°N)")
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


def _interval_minutes(data: ReportData, interval: Interval, source: Source | None = None) -> list[float]:
    values = []
    for p in data.points:
        if source is not None and source not in p.sources:
            continue
        response = response_of(p, data.deadlines.for_county(p.county_code), data.as_of)
        if response is not None and interval in response.intervals:
            values.append(response.intervals[interval].total_seconds() / 60.0)
    return values


def response_page(data: ReportData, labels: Labels) -> Figure:
    """Distributions of the response intervals, by interval and by source, with the deadlines; compliance."""
    fig = Figure(figsize=A4_PORTRAIT)
    _page_title(fig, labels, "响应时间分布", "Response times", data)
    grid = fig.add_gridspec(3, 1, hspace=0.45)
    ax = fig.add_subplot(grid[0])
    series = [(labels.t(*INTERVAL_LABELS[i]), _interval_minutes(data, i)) for i in Interval]
    _boxes(
        ax,
        labels,
        series,
        labels.t("推送后分钟（签收→到场除外）", "minutes from notification (travel: from acknowledging)"),
    )
    ax = fig.add_subplot(grid[1])
    series = [(labels.t(*SOURCE_LABELS[s]), _interval_minutes(data, Interval.ACKNOWLEDGE, s)) for s in SOURCE_ORDER]
    _boxes(ax, labels, series, labels.t("按来源的签收用时（分钟）", "time to acknowledge by source (minutes)"))
    deadline = data.deadlines.default.acknowledge.total_seconds() / 60.0
    ax.axhline(deadline, color="#c0392b", linestyle="--", linewidth=0.8)
    ax.text(0.5, deadline, f" {deadline:g} min", color="#c0392b", fontsize=7, va="bottom")
    ax = fig.add_subplot(grid[2])
    groups = data.responses.groups[:30]
    if groups:
        x = np.arange(len(groups))
        ack = [g.acknowledge.rate for g in groups]
        site = [g.on_site.rate for g in groups]
        ax.bar(x - 0.2, [100 * (r or 0) for r in ack], width=0.4, label=labels.t("按时签收", "acknowledged on time"))
        ax.bar(x + 0.2, [100 * (r or 0) for r in site], width=0.4, label=labels.t("按时到场", "on site on time"))
        ax.set_xticks(x, [labels.unit(g.name, g.key) for g in groups], rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 105)
        ax.set_ylabel("%")
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title(labels.t("时限达标率", "deadline compliance"), fontsize=10)
    else:
        _no_data(ax, labels)
    return fig


def _boxes(ax: Axes, labels: Labels, series: Sequence[tuple[str, list[float]]], title: str) -> None:
    ax.set_title(title, fontsize=10)
    if not any(values for _, values in series):
        _no_data(ax, labels)
        return
    ax.boxplot(
        [values or [np.nan] for _, values in series],
        tick_labels=[f"{name}\nn={len(values)}" for name, values in series],
        whis=(0, 100),  # whiskers at min and max: every response is inside them
    )
    ax.set_ylabel(labels.t("分钟", "minutes"))
    ax.tick_params(axis="x", labelsize=7)


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
