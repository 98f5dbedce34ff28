"""Everything a report shows, computed once from the database for a period and an area.

Reports are made by operators on the server (the ``strawfire report`` command), so they see every unit; the
API's role scopes do not apply here.

The fire-point list (the provincial CSV) shows no score, so it needs no scoring rules: :func:`collect_points`
loads only what it shows, and a period no rules version covers (or a server without a rules folder) still gets its
list. The PDF and the XLSX score the units, and :func:`collect` selects the rules for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from service.auth.service import SYSTEM
from service.db import utcnow
from service.regions.types import RegionLevel
from service.stats.areas import Area
from service.stats.lifecycle import OutcomeKind, outcome
from service.stats.outcomes import OutcomeTable, outcome_table
from service.stats.periods import Period
from service.stats.queries import load_fire_points, load_units
from service.stats.records import FirePoint, Unit
from service.stats.response import DeadlinePolicy, GroupBy, ResponseTable, response_table
from service.stats.rules import RuleBook, Selection
from service.stats.scoring import ScoreBoard
from service.stats.service import resolve_area, score_board
from service.stats.wording import Note


@dataclass(frozen=True, slots=True)
class ReportData:
    """The inputs of every report format."""

    period: Period
    area_code: str | None
    area_name: str | None  # the area unit's name when it is imported
    generated_at: datetime
    as_of: datetime
    level: RegionLevel  # the level units are scored and mapped at
    units: list[Unit]  # units of ``level`` in the area, with boundaries
    outlines: list[Unit]  # the counties around them when townships are scored (drawn thicker)
    points: list[FirePoint]  # fire points in the area, merged duplicates excluded
    responses: ResponseTable  # by unit of ``level``
    responses_by_source: ResponseTable
    outcomes: OutcomeTable  # by unit of ``level``
    outcomes_by_source: OutcomeTable
    daily: OutcomeTable
    board: ScoreBoard
    selection: Selection
    deadlines: DeadlinePolicy
    warnings: list[str]  # in English (service.stats.wording.Note.text)
    notes: list[Note]  # the same warnings as notes, for a report to word in its own language


@dataclass(frozen=True, slots=True)
class PointsData:
    """The inputs of the fire-point list (the CSV): no scores, so no scoring rules."""

    period: Period
    area_code: str | None
    area_name: str | None
    generated_at: datetime
    as_of: datetime
    points: list[FirePoint]  # fire points in the area, merged duplicates excluded
    deadlines: DeadlinePolicy


def _area_points(
    session: Session, period: Period, area_code: str | None, *, geometry: bool
) -> tuple[list[Unit], Area, list[FirePoint]]:
    """Every unit, the area, and the period's fire points in it (merged duplicates included)."""
    units = load_units(session, geometry=geometry)
    area = resolve_area(SYSTEM, area_code, units)
    every = [p for p in load_fire_points(session, period) if area.contains_any(p.township_code, p.county_code)]
    return units, area, every


def _not_merged(points: list[FirePoint]) -> list[FirePoint]:
    return [p for p in points if outcome(p.transitions).kind is not OutcomeKind.DUPLICATE]


def collect_points(
    session: Session, period: Period, area_code: str | None, deadlines: DeadlinePolicy, *, as_of: datetime | None = None
) -> PointsData:
    """Load the fire points of ``period`` in ``area_code`` (None: every unit) for the fire-point list."""
    as_of = as_of or utcnow()
    units, area, every = _area_points(session, period, area_code, geometry=False)
    return PointsData(
        period=period,
        area_code=area.code,
        area_name=next((u.name for u in units if u.code == area.code), None),
        generated_at=utcnow(),
        as_of=as_of,
        points=_not_merged(every),
        deadlines=deadlines,
    )


def collect(
    session: Session,
    period: Period,
    area_code: str | None,
    rulebook: RuleBook,
    deadlines: DeadlinePolicy,
    *,
    as_of: datetime | None = None,
    version: str | None = None,
    level: RegionLevel | None = None,
) -> ReportData:
    """Load and compute everything for ``period`` and ``area_code`` (None: every unit)."""
    as_of = as_of or utcnow()
    units, area, every = _area_points(session, period, area_code, geometry=True)
    selection = rulebook.select(period) if version is None else Selection(rulebook.by_version(version), ())
    board, warnings = score_board(session, period, area, units, selection, deadlines, as_of, level, points=every)
    by_unit = GroupBy.COUNTY if board.level is RegionLevel.COUNTY else GroupBy.TOWNSHIP
    points = _not_merged(every)
    scored = [u for u in units if u.level is board.level and area.contains(u.code)]
    outlines = []
    if board.level is RegionLevel.TOWNSHIP:
        parents = {u.parent_code for u in scored}
        outlines = [u for u in units if u.level is RegionLevel.COUNTY and u.code in parents]
    return ReportData(
        period=period,
        area_code=area.code,
        area_name=next((u.name for u in units if u.code == area.code), None),
        generated_at=utcnow(),
        as_of=as_of,
        level=board.level,
        units=scored,
        outlines=outlines,
        points=points,
        responses=response_table(points, by_unit, deadlines, as_of),
        responses_by_source=response_table(points, GroupBy.SOURCE, deadlines, as_of),
        outcomes=outcome_table(points, by_unit),
        outcomes_by_source=outcome_table(points, GroupBy.SOURCE),
        daily=outcome_table(points, GroupBy.DAY),
        board=board,
        selection=selection,
        deadlines=deadlines,
        warnings=[w.text for w in warnings],
        notes=warnings,
    )
