"""The rows every tabular report shares (XLSX sheets, the CSV), built once from :class:`ReportData`.

Times are China local time (UTC+8) without a zone, as counties read them; durations are minutes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime

from service.incidents.service import MANUAL_ASSIGNMENT
from service.regions.types import AssignStatus
from service.reports.data import ReportData
from service.stats.lifecycle import CLAIMED_DUPLICATE, OutcomeKind, milestones, outcome
from service.stats.periods import local_time
from service.stats.records import SOURCE_ORDER, FirePoint, Source
from service.stats.response import Interval, ResponseGroup, response_of
from service.stats.schemas import minutes
from service.stats.wording import counted

Cell = str | int | float | datetime | None

# What spreadsheet programs read as the start of a formula (OWASP "CSV injection"): = + - @, and tab or carriage
# return, which some programs strip before looking again. Unit names come from imported boundary files and reasons
# from the field, so a name like ``=HYPERLINK(…)`` must reach the sheet as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def looks_like_formula(value: object) -> bool:
    """Whether a spreadsheet would take the cell value for a formula rather than text."""
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


SOURCE_ZH = {Source.SATELLITE: "卫星", Source.CAMERA: "视频", Source.DRONE: "无人机", Source.PATROL: "巡查"}
OUTCOME_ZH = {
    OutcomeKind.VIOLATION: "违规焚烧",
    OutcomeKind.FALSE_ALARM: "误报",
    OutcomeKind.PERMITTED_BURN: "计划烧除",
    OutcomeKind.DUPLICATE: "重复",
    OutcomeKind.OPEN: "处置中",
}
REASON_ZH = {
    "industrial_heat": "工业热源",
    "non_straw_fire": "非秸秆火（垃圾、荒草、祭祀、炊烟等）",
    "permitted_burn": "计划烧除",
    "duplicate": "重复",
    "not_found": "现场未发现",
    "out_of_area": "不在辖区",
    "unspecified": "未注明",
    CLAIMED_DUPLICATE: "重复（乡镇自报）",  # a township's own "duplicate": an ordinary false alarm in the counts
}


ASSIGNMENT_ZH = {
    AssignStatus.INSIDE.value: "界内",
    AssignStatus.NEAREST.value: "界外就近",  # an edge fire point: outside every unit, given to the nearest one
    MANUAL_ASSIGNMENT: "人工指定",
    AssignStatus.OUTSIDE.value: "辖区外",
}
"""How a fire point's location was given to its unit (:attr:`FirePoint.assignment`), as the fire-point lists say
it. The edge ones (界外就近) are marked for review: they count and score for the unit like any other
(:mod:`service.stats.scoring`)."""


def assignment_zh(point: FirePoint) -> str:
    """The assignment in Chinese (an unknown stored status as written)."""
    return ASSIGNMENT_ZH.get(point.assignment, point.assignment)


def share_percent(share: float) -> str:
    """A unit's share of a footprint as a percentage with one decimal ("16.7%"): a sliver in the unit is not 0%."""
    return f"{share * 100:.1f}%"


def assignment_text(point: FirePoint) -> str:
    """The assignment with how far outside an edge fire point lies and the unit's share of the footprint when it is
    not the whole, for a one-column list (the CSV): "界内", "界内（本单位占66.7%）" for a pixel across a border,
    "界外就近（界外222米，本单位占16.7%）", "人工指定"."""
    details = []
    if point.edge_distance_m is not None:
        details.append(f"界外{point.edge_distance_m:.0f}米")
    if point.unit_share is not None:
        details.append(f"本单位占{share_percent(point.unit_share)}")
    text = assignment_zh(point)
    return f"{text}（{'，'.join(details)}）" if details else text


def local(at: datetime | None) -> datetime | None:
    """An instant as a naive China-local datetime (spreadsheets have no time zones)."""
    return None if at is None else local_time(at).replace(tzinfo=None)


EDGE_HEADER = "edge (nearest unit) 界外就近火点"
"""The ranked-units column of the unit's edge fire points (:attr:`FirePoint.edge`): for review, not scored."""
OPEN_HEADER = "open 处置中"
"""The ranked-units column of the unit's fire points still open at the report's ``as_of``: while it is above 0 the
unit's score is provisional (each may still cost points when decided; the ``provisional`` warning counts them)."""
DENSITY_HEADER = "per 1000 ha 千公顷火点密度"
DENSITY_BASIS_HEADER = "density basis 密度基数"

RANKED_HEADER = [
    "rank 名次",
    "code 代码",
    "unit 单位",
    "parent 上级",
    "score 得分",
    "grade 等次",
    "sanction 问责",
    "fire points 火点",
    OPEN_HEADER,
    "violations 违规火点",
    "satellite 卫星点",
    "camera 视频点",
    "drone 无人机点",
    "patrol 巡查点",
    "self-found 自查自报",
    "unreported 漏报",
    "concealed 瞒报",
    "repeat at site 同一地点再次起火",
    EDGE_HEADER,
    "late acknowledge 签收超时",
    "late on site 到场超时",
    DENSITY_HEADER,
    DENSITY_BASIS_HEADER,
    "basis ha 面积(公顷)",
    "deductions 扣分",
    "credits 加分",
]


LATE_FEEDBACK_HEADER = "late feedback 反馈超时"
"""The ranked-units column of fire points not fed back in time, after "late on site": only when the rules in force
set ``responses.feedback_within_h`` (:func:`shows_late_feedback`), since it is always zero otherwise."""


def shows_late_feedback(data: ReportData) -> bool:
    """Whether the rules that scored the period count late feedback (``responses.feedback_within_h`` is set)."""
    return data.board.rules.responses.feedback_within_h is not None


def ranked_header(data: ReportData) -> list[str]:
    """:data:`RANKED_HEADER`, with :data:`LATE_FEEDBACK_HEADER` after "late on site" when the rules count it."""
    if not shows_late_feedback(data):
        return list(RANKED_HEADER)
    at = RANKED_HEADER.index("late on site 到场超时") + 1
    return [*RANKED_HEADER[:at], LATE_FEEDBACK_HEADER, *RANKED_HEADER[at:]]


PDF_RANKED_COLUMNS: list[tuple[str, str, str]] = [
    ("rank 名次", "名次", "rank"),
    ("unit 单位", "单位", "unit"),
    ("score 得分", "得分", "score"),
    ("grade 等次", "等次", "grade"),
    ("sanction 问责", "问责", "sanction"),
    ("violations 违规火点", "违规", "violations"),
    (OPEN_HEADER, "处置中", "open"),
    ("satellite 卫星点", "卫星点", "satellite"),
    ("camera 视频点", "视频点", "camera"),
    ("drone 无人机点", "无人机点", "drone"),
    ("patrol 巡查点", "巡查点", "patrol"),
    ("unreported 漏报", "漏报", "unreported"),
    ("concealed 瞒报", "瞒报", "concealed"),
    ("self-found 自查自报", "自查自报", "self-found"),
    ("repeat at site 同一地点再次起火", "再次起火", "repeats"),
    ("late acknowledge 签收超时", "签收超时", "late ack"),
    ("late on site 到场超时", "到场超时", "late site"),
    (LATE_FEEDBACK_HEADER, "反馈超时", "late feedback"),
    (DENSITY_HEADER, "千公顷密度", "/1000 ha"),
    ("deductions 扣分", "扣分", "deductions"),
    ("credits 加分", "加分", "credits"),
]
"""The columns of the PDF's ranked table: (the ranked sheet's column, Chinese and English heading). Every column
that explains a score — each source's violations, unreported and concealed (漏报, 瞒报), the sanction (问责), the
deductions and credits — so that a reader can follow ``base − deductions + credits`` as in the XLSX, and the fire
points still open (处置中), which say the score may still change; left out are what only identifies or repeats
(code, parent, all fire points, the density's basis, which a "*" marks)."""


def pdf_ranked_columns(data: ReportData) -> list[tuple[str, str, str]]:
    """:data:`PDF_RANKED_COLUMNS` that the ranked sheet has for these rules (late feedback only when counted)."""
    present = set(ranked_header(data))
    return [column for column in PDF_RANKED_COLUMNS if column[0] in present]


def ranked_rows(data: ReportData) -> Iterator[list[Cell]]:
    """One row per scored unit, best first (the columns of :func:`ranked_header`)."""
    feedback = shows_late_feedback(data)
    for u in data.board.units:
        yield [
            u.rank,
            u.code,
            u.name,
            u.parent_code,
            u.score,
            u.grade,
            u.sanction,
            u.fire_points,
            u.open,
            u.violations,
            u.violations_by_source.get(Source.SATELLITE.value, 0),
            u.violations_by_source.get(Source.CAMERA.value, 0),
            u.violations_by_source.get(Source.DRONE.value, 0),
            u.violations_by_source.get(Source.PATROL.value, 0),
            u.self_found,
            u.unreported,
            u.concealed,
            u.repeat_at_site,
            u.edge,
            u.late_acknowledge,
            u.late_on_site,
            *([u.late_feedback] if feedback else []),
            None if u.density_per_1000ha is None else round(u.density_per_1000ha, 6),  # as the API gives it
            u.density_basis,
            u.basis_ha,
            u.deductions,
            u.credits,
        ]


ITEMS_HEADER = ["code 代码", "unit 单位", "incident 事件", "rule 规则", "points 分值", "note 说明"]


def item_rows(data: ReportData) -> Iterator[list[Cell]]:
    """Every deduction and credit behind the scores (for audit and appeal)."""
    for u in data.board.units:
        for item in u.items:
            yield [u.code, u.name, item.incident_id, item.rule, round(item.points, 4), item.note]


def _interval_header() -> list[str]:
    cells = []
    for interval in Interval:
        cells += [
            f"{interval.value} n",
            f"{interval.value} p50 min",
            f"{interval.value} p90 min",
            f"{interval.value} max min",
        ]
    return cells


RESPONSE_HEADER = [
    "group 分组",
    "key 代码",
    "name 名称",
    "incidents 火点",
    "notified 已推送",
    "not notified 未推送",
    "escalated 已升级",
    "reopened 重新打开",
    *_interval_header(),
    "acknowledge met 按时签收",
    "acknowledge missed 签收超时",
    "acknowledge pending 待签收",
    "acknowledge rate 签收达标率",
    "on site met 按时到场",
    "on site missed 到场超时",
    "on site pending 待到场",
    "on site rate 到场达标率",
]

RATE_HEADERS = frozenset({"acknowledge rate 签收达标率", "on site rate 到场达标率"})
"""The response sheet's columns that hold a rate (a share, 0–1): shown as whole percentages in the XLSX, as the
PDF words them (:func:`service.reports.charts.percent`), the value itself left exact."""


def _response_row(group: str, g: ResponseGroup) -> list[Cell]:
    cells: list[Cell] = [group, g.key, g.name, g.incidents, g.notified, g.not_notified, g.escalated, g.reopened]
    for interval in Interval:
        d = g.intervals[interval]
        cells += [d.n, minutes(d.p50), minutes(d.p90), minutes(d.max)]
    for c in (g.acknowledge, g.on_site):
        cells += [c.met, c.missed, c.pending, c.rate]
    return cells


def response_rows(data: ReportData) -> Iterator[list[Cell]]:
    """Per unit, per source, then the total."""
    for g in data.responses.groups:
        yield _response_row(data.responses.group_by.value, g)
    for g in data.responses_by_source.groups:
        yield _response_row("source", g)
    yield _response_row("total", data.responses.total)


POINTS_HEADER = [
    "incident 事件编号",
    "county code 县代码",
    "county 县(市、区)",
    "township code 乡镇代码",
    "township 乡镇(街道)",
    "longitude (WGS-84) 经度(WGS-84)",
    "latitude (WGS-84) 纬度(WGS-84)",
    "first observed 发现时间 (UTC+8)",
    "satellite pass 卫星过境时间 (UTC+8)",
    "sources 来源",
    "first source 首报来源",
    "outcome 处置结果",
    "reason 原因",
    "state 状态",
    "notified 推送时间 (UTC+8)",
    "acknowledge min 签收用时",
    "on site min 到场用时",
    "extinguished min 扑灭用时",
    "closed min 销号用时",
    "acknowledge 签收时限",
    "on site 到场时限",
    "burned m² 过火面积",
    "assignment 归属方式",
    "unit share 本单位占比",
    "outside m 界外距离",
]
"""The last three columns mark the border cases for review: how the location was given to its unit
(:data:`ASSIGNMENT_ZH`; 界外就近 is an edge fire point), the unit's share (0–1) of the location's footprint when
it is not the whole (:attr:`FirePoint.unit_share`), and how far outside the imported units an edge fire point lies
(:attr:`FirePoint.edge_distance_m`). They are last so that the columns before keep their places."""


def satellite_pass(point: FirePoint) -> datetime | None:
    """The first satellite observation of the fire (过境时间), if a satellite saw it."""
    return next((s.observed_at for s in point.sightings if s.source is Source.SATELLITE), None)


def sources_text(point: FirePoint) -> str:
    """The sources that saw the fire, in Chinese, satellite first."""
    return "+".join(SOURCE_ZH[s] for s in SOURCE_ORDER if s in point.sources)


def point_rows(data: ReportData) -> Iterator[list[Cell]]:
    """Every fire point in time order."""
    for p in sorted(data.points, key=lambda p: (p.first_observed_at, p.id)):
        result = outcome(p.transitions)
        response = response_of(p, data.deadlines.for_county(p.county_code), data.as_of)
        spans = response.intervals if response else {}
        first = p.first_sighting
        yield [
            p.id,
            p.county_code,
            p.county_name,
            p.township_code,
            p.township_name,
            round(p.longitude, 6),
            round(p.latitude, 6),
            local(p.first_observed_at),
            local(satellite_pass(p)),
            sources_text(p),
            SOURCE_ZH[first.source] if first else None,
            OUTCOME_ZH[result.kind],
            REASON_ZH.get(result.reason or "", result.reason) if result.kind is not OutcomeKind.VIOLATION else None,
            p.state.value,
            local(milestones(p.transitions).notified),
            minutes(spans.get(Interval.ACKNOWLEDGE)),
            minutes(spans.get(Interval.ON_SITE)),
            minutes(spans.get(Interval.EXTINGUISHED)),
            minutes(spans.get(Interval.CLOSED)),
            response.acknowledge.value if response else None,
            response.on_site.value if response else None,
            p.burned_area_m2,
            assignment_zh(p),
            None if p.unit_share is None else round(p.unit_share, 4),
            None if p.edge_distance_m is None else round(p.edge_distance_m),
        ]


DAILY_HEADER = [
    "date 日期",
    "fire points 火点",
    "violations 违规",
    "false alarms 误报",
    "permitted burns 计划烧除",
    "open 处置中",
    "satellite 卫星",
    "camera 视频",
    "drone 无人机",
    "patrol 巡查",
]


def daily_rows(data: ReportData) -> Iterator[list[Cell]]:
    """One row per local day of the period, days without fires included."""
    rows = {g.key: g for g in data.daily.groups}
    # Count the sources per day in one pass: a year's sheet would otherwise look at every point once per day.
    by_source: Counter[tuple[date, Source]] = Counter()
    for p in data.points:
        day = local_time(p.first_observed_at).date()
        by_source.update((day, s) for s in p.sources)
    for day in data.period.days():
        g = rows.get(day.isoformat())
        counts = [by_source[(day, s)] for s in SOURCE_ORDER]
        if g is None:
            yield [day.isoformat(), 0, 0, 0, 0, 0, *counts]
        else:
            yield [day.isoformat(), g.fire_points, g.violations, g.false_alarms, g.permitted_burns, g.open, *counts]


RULES_HEADER = ["key 项目", "value 值"]


def rules_rows(data: ReportData) -> Iterator[list[Cell]]:
    """The rules version that scored the period, its weights, the deadlines, and any warning."""
    version = data.selection.version
    rules = version.rules
    yield ["version", rules.version]
    yield ["title", rules.title]
    yield ["file", version.path.name]
    yield ["effective_from", rules.effective_from.isoformat()]
    yield ["in force until", version.last_day.isoformat() if version.last_day else "(open)"]
    yield ["unit_level", rules.unit_level]
    yield ["base", rules.base]
    yield ["floor", rules.floor]
    yield ["max_credit", rules.max_credit]
    for section in ("fire_points", "responses", "reporting", "density"):
        for key, value in getattr(rules, section).model_dump(mode="json").items():
            if section == "fire_points" and key == "patrol" and value is None:
                # Not in the file: the weight a patrol point was charged, which is the drone weight
                # (service.stats.rules), rather than an empty cell an evaluator would read as "no deduction".
                yield ["fire_points.patrol (not set: as drone)", rules.fire_points.patrol_weight]
                continue
            yield [f"{section}.{key}", ", ".join(value) if isinstance(value, list) else value]
    for grade in sorted(rules.grades, key=lambda g: -g.min_score):
        yield [f"grade ≥ {grade.min_score:g}", grade.name]
    for step, sanction in enumerate(rules.sanctions, start=1):
        # The ladder counts charged violations (service.stats.scoring): the ranked sheet's "violations" count
        # includes the self-found ones, so the sheet says which it compares.
        when = (
            [f"≥ {counted(sanction.min_violations, 'charged violation')} (self-found not counted)"]
            if sanction.min_violations is not None
            else []
        )
        when += [f"score < {sanction.below_score:g}"] if sanction.below_score is not None else []
        yield [f"sanction {step}: {' or '.join(when)}", sanction.name]
    default = data.deadlines.default
    yield ["deadline acknowledge min", minutes(default.acknowledge)]
    yield ["deadline on site min (after acknowledging)", minutes(default.on_site)]
    for county, deadline in sorted(data.deadlines.per_county.items()):
        yield [
            f"deadline {county} acknowledge / on site min",
            f"{minutes(deadline.acknowledge)} / {minutes(deadline.on_site)}",
        ]
    for warning in data.warnings:
        yield ["warning", warning]
