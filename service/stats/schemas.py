"""API shapes of statistics and scores. Durations are minutes (floats), instants UTC."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel, Field

from service.stats.outcomes import OutcomeGroup, OutcomeTable
from service.stats.periods import CHINA_TZ, Period
from service.stats.records import SOURCE_ORDER
from service.stats.response import ComplianceCount, Distribution, GroupBy, ResponseGroup, ResponseTable
from service.stats.rules import RuleVersion
from service.stats.scoring import ScoreItem, UnitScore
from service.stats.wording import Note, NoteCode

EDGE_DESCRIPTION = (
    "Edge fire points (界外就近): those assigned to the unit as the nearest one, their location outside every unit "
    "(an incident's assignment_status 'nearest'). They count for the unit like any other fire point, scores "
    "included; the count is for review (each incident's assignment_status in GET /api/v1/incidents says which)."
)

OPEN_DESCRIPTION = (
    "Fire points still open (undecided) at as_of: each may still cost the unit points when it is decided, so the "
    "score is provisional while this is above 0 (the board's 'provisional' warning counts them)"
)


def minutes(value: timedelta | None) -> float | None:
    """A duration in minutes, to the hundredth."""
    return None if value is None else round(value.total_seconds() / 60.0, 2)


class PeriodOut(BaseModel):
    """The period asked for: local days and their UTC boundaries (end exclusive)."""

    label: str
    first_day: date
    last_day: date
    start: datetime
    end: datetime
    timezone: str = str(CHINA_TZ)

    @classmethod
    def of(cls, period: Period) -> PeriodOut:
        """Build from a period."""
        return cls(
            label=period.label,
            first_day=period.first_day,
            last_day=period.last_day,
            start=period.start,
            end=period.end,
        )


class DistributionOut(BaseModel):
    """Nearest-rank fractiles of one interval, in minutes."""

    n: int
    p50_min: float | None
    p90_min: float | None
    max_min: float | None

    @classmethod
    def of(cls, d: Distribution) -> DistributionOut:
        """Build from a distribution."""
        return cls(n=d.n, p50_min=minutes(d.p50), p90_min=minutes(d.p90), max_min=minutes(d.max))


class ComplianceOut(BaseModel):
    """Deadline compliance; ``rate`` = met / (met + missed)."""

    met: int
    missed: int
    pending: int
    rate: float | None

    @classmethod
    def of(cls, c: ComplianceCount) -> ComplianceOut:
        """Build from counts."""
        return cls(met=c.met, missed=c.missed, pending=c.pending, rate=c.rate)


class ResponseGroupOut(BaseModel):
    """One row of response-time statistics (``key`` null: unassigned, or the total)."""

    key: str | None
    name: str | None
    incidents: int
    notified: int
    not_notified: int
    escalated: int
    reopened: int
    intervals: dict[str, DistributionOut]
    acknowledge: ComplianceOut
    on_site: ComplianceOut
    repeat_at_site: int  # fire points flagged as fire again at the place of an earlier real fire
    # "On site" declarations whose phone position was > the distance rule from the fire (net of its accuracy), sent
    # none (position null), or was too coarse to tell.
    on_site_far: int
    on_site_without_position: int
    on_site_imprecise: int
    on_site_stale: int  # with a fix older than service.evidence.service.POSITION_MAX_AGE: proves nothing

    @classmethod
    def of(cls, g: ResponseGroup) -> ResponseGroupOut:
        """Build from a group."""
        return cls(
            key=g.key,
            name=g.name,
            incidents=g.incidents,
            notified=g.notified,
            not_notified=g.not_notified,
            escalated=g.escalated,
            reopened=g.reopened,
            intervals={i.value: DistributionOut.of(d) for i, d in g.intervals.items()},
            acknowledge=ComplianceOut.of(g.acknowledge),
            on_site=ComplianceOut.of(g.on_site),
            repeat_at_site=g.repeat_at_site,
            on_site_far=g.on_site_far,
            on_site_without_position=g.on_site_without_position,
            on_site_imprecise=g.on_site_imprecise,
            on_site_stale=g.on_site_stale,
        )


class ResponseTimesOut(BaseModel):
    """Response-time statistics for a period and area."""

    period: PeriodOut
    area: str | None
    group_by: GroupBy
    as_of: datetime
    groups: list[ResponseGroupOut]
    total: ResponseGroupOut

    @classmethod
    def of(cls, period: Period, area: str | None, as_of: datetime, table: ResponseTable) -> ResponseTimesOut:
        """Build from a table."""
        return cls(
            period=PeriodOut.of(period),
            area=area,
            group_by=table.group_by,
            as_of=as_of,
            groups=[ResponseGroupOut.of(g) for g in table.groups],
            total=ResponseGroupOut.of(table.total),
        )


class OutcomeGroupOut(BaseModel):
    """One row of outcome counts."""

    key: str | None
    name: str | None
    fire_points: int
    violations: int
    false_alarms: int
    permitted_burns: int
    open: int
    duplicates: int
    false_alarm_reasons: dict[str, int]
    repeat_at_site: int  # fire points flagged as fire again at the place of an earlier real fire
    edge: int = Field(description=EDGE_DESCRIPTION)

    @classmethod
    def of(cls, g: OutcomeGroup) -> OutcomeGroupOut:
        """Build from a group."""
        return cls(
            key=g.key,
            name=g.name,
            fire_points=g.fire_points,
            violations=g.violations,
            false_alarms=g.false_alarms,
            permitted_burns=g.permitted_burns,
            open=g.open,
            duplicates=g.duplicates,
            false_alarm_reasons=dict(g.false_alarm_reasons),
            repeat_at_site=g.repeat_at_site,
            edge=g.edge,
        )


class OutcomesOut(BaseModel):
    """Fire-point outcome counts for a period and area."""

    period: PeriodOut
    area: str | None
    group_by: GroupBy
    as_of: datetime
    groups: list[OutcomeGroupOut]
    total: OutcomeGroupOut

    @classmethod
    def of(cls, period: Period, area: str | None, as_of: datetime, table: OutcomeTable) -> OutcomesOut:
        """Build from a table."""
        return cls(
            period=PeriodOut.of(period),
            area=area,
            group_by=table.group_by,
            as_of=as_of,
            groups=[OutcomeGroupOut.of(g) for g in table.groups],
            total=OutcomeGroupOut.of(table.total),
        )


class RulesOut(BaseModel):
    """Which rules version scored the period."""

    version: str
    title: str
    effective_from: date
    effective_to: date | None
    file: str

    @classmethod
    def of(cls, version: RuleVersion) -> RulesOut:
        """Build from a loaded version."""
        rules = version.rules
        return cls(
            version=rules.version,
            title=rules.title,
            effective_from=rules.effective_from,
            effective_to=version.last_day,
            file=version.path.name,
        )


class NoteOut(BaseModel):
    """A line of server text as a stable ``code`` with the ``params`` it is made of, for a client to say in its
    reader's language, and ``text``, the same in English (what to show for a code the client does not know)."""

    code: NoteCode
    params: dict[str, str | int | float]
    text: str

    @classmethod
    def of(cls, note: Note) -> NoteOut:
        """Build from a note."""
        return cls(code=note.code, params=dict(note.params), text=note.text)


class ScoreItemOut(BaseModel):
    """One line of a unit's score. ``note`` is ``notes`` in English, joined with "; " (kept for older clients)."""

    incident_id: int | None
    rule: str
    points: float
    note: str
    notes: list[NoteOut]

    @classmethod
    def of(cls, item: ScoreItem) -> ScoreItemOut:
        """Build from an item."""
        return cls(
            incident_id=item.incident_id,
            rule=item.rule,
            points=round(item.points, 4),
            note=item.note,
            notes=[NoteOut.of(n) for n in item.notes],
        )


class UnitScoreOut(BaseModel):
    """A unit's score and the counts and items behind it."""

    rank: int
    code: str
    name: str
    parent_code: str | None
    score: float
    grade: str | None
    sanction: str | None = Field(
        description="The heaviest step of the rules' sanction ladder reached: min_violations counts the violations "
        "charged to the unit (violations − self_found), below_score the score"
    )
    fire_points: int
    open: int = Field(description=OPEN_DESCRIPTION)
    violations: int
    violations_by_source: dict[str, int] = Field(
        description="Violations charged (not self-found) by the source each was charged as; every source is listed: "
        + ", ".join(s.value for s in SOURCE_ORDER)
    )
    self_found: int
    unreported: int
    concealed: int
    late_acknowledge: int
    late_on_site: int
    late_feedback: int
    repeat_at_site: int  # fire points flagged as fire again at the place of an earlier real fire (同一地点再次起火)
    edge: int = Field(description=EDGE_DESCRIPTION)
    density_per_1000ha: float | None
    density_basis: str | None
    basis_ha: float | None
    deductions: float
    credits: float
    items: list[ScoreItemOut]

    @classmethod
    def of(cls, u: UnitScore) -> UnitScoreOut:
        """Build from a unit score."""
        return cls(
            rank=u.rank,
            code=u.code,
            name=u.name,
            parent_code=u.parent_code,
            score=u.score,
            grade=u.grade,
            sanction=u.sanction,
            fire_points=u.fire_points,
            open=u.open,
            violations=u.violations,
            violations_by_source=dict(u.violations_by_source),
            self_found=u.self_found,
            unreported=u.unreported,
            concealed=u.concealed,
            late_acknowledge=u.late_acknowledge,
            late_on_site=u.late_on_site,
            late_feedback=u.late_feedback,
            repeat_at_site=u.repeat_at_site,
            edge=u.edge,
            density_per_1000ha=None if u.density_per_1000ha is None else round(u.density_per_1000ha, 6),
            density_basis=u.density_basis,
            basis_ha=u.basis_ha,
            deductions=u.deductions,
            credits=u.credits,
            items=[ScoreItemOut.of(i) for i in u.items],
        )


class ScoresOut(BaseModel):
    """Ranked units for a period and area, with the rules that scored them. ``warning_notes`` are ``warnings``
    (English) as codes with their parameters, in the same order."""

    period: PeriodOut
    area: str | None
    level: str
    as_of: datetime
    rules: RulesOut
    warnings: list[str]
    warning_notes: list[NoteOut]
    units: list[UnitScoreOut]
