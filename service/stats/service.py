"""Statistics and scores for a caller: the scope they may see, the records loaded once, the pure computations.

Scopes (the same as for incidents, :class:`service.auth.service.Principal`):

* evaluators and admins see every area (and change nothing: everything here is read-only);
* a supervisor sees their county and anything in it;
* a patrol user sees their own unit. Scores are the sharpest case: a patrol gets **only its own unit's row** —
  ranked among the units of its parent area, because the rank is its own result, but without any other unit's
  score or counts.

Asking for an area outside the scope is a :class:`ScopeError` (HTTP 403).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from detector.paths import REPO_ROOT
from service.auth.service import UNIT_ROLES, Principal
from service.config import AlertSettings, Settings
from service.errors import InputError, NotFoundError, StrawfireError
from service.incidents.states import Role, a_role
from service.regions.types import RegionLevel
from service.stats.areas import Area
from service.stats.outcomes import OutcomeTable, outcome_table
from service.stats.periods import Period, local_time
from service.stats.queries import load_fire_points, load_units
from service.stats.records import FirePoint, Unit
from service.stats.response import Deadline, DeadlinePolicy, GroupBy, ResponseTable, response_table
from service.stats.rules import RuleBook, Selection
from service.stats.scoring import ScoreBoard, UnitScore, score_units
from service.stats.wording import Note, NoteCode, counted

DEFAULT_RULES_DIR = Path("rules")
_SCORED_LEVELS = (RegionLevel.TOWNSHIP, RegionLevel.COUNTY)


class ScopeError(StrawfireError):
    """The caller asked for an area outside what their role lets them see."""


def deadline_policy(alerts: AlertSettings) -> DeadlinePolicy:
    """The deadlines the escalation timer enforces, so statistics judge by the same clock."""

    def of(minutes_ack: float, minutes_on_site: float) -> Deadline:
        return Deadline(timedelta(minutes=minutes_ack), timedelta(minutes=minutes_on_site))

    return DeadlinePolicy(
        default=of(alerts.deadlines.acknowledge_min, alerts.deadlines.on_site_min),
        per_county={code: of(d.acknowledge_min, d.on_site_min) for code, d in alerts.county_deadlines.items()},
    )


def rules_dir(settings: Settings) -> Path:
    """The folder of scoring-rules files (``stats.rules_dir``, default ``./rules``).

    A relative folder that is not there under the working directory is looked for in the checkout, as the
    default ``rules`` is: a service started by systemd from another directory failed every score with "no scoring
    rules folder at rules".
    """
    configured = settings.stats.rules_dir
    if configured.is_absolute() or configured.is_dir():
        return configured
    beside_the_code = REPO_ROOT / configured
    return beside_the_code if beside_the_code.is_dir() else configured


def resolve_area(principal: Principal, requested: str | None, units: list[Unit]) -> Area:
    """The area to report on: the requested one when the caller may see it, else their own unit."""
    requested = requested.strip() if requested and requested.strip() else None
    if principal.can_read_all():
        area = Area.of(requested, units)
    elif principal.role in UNIT_ROLES and principal.unit_code:
        own = Area.of(principal.unit_code, units)
        if requested is not None and not own.contains(requested):
            raise ScopeError(f"a {principal.role.value} user sees only unit {principal.unit_code} and what is in it")
        area = Area.of(requested or principal.unit_code, units)
    else:
        raise ScopeError(f"{a_role(principal.role)} user has no unit to see statistics of")
    if area.code is not None and not any(area.contains(u.code) for u in units):
        raise NotFoundError(f"no imported unit is in area {area.code}")
    return area


def fire_points_in(session: Session, principal: Principal, period: Period, area: Area) -> list[FirePoint]:
    """The fire points of the period that the caller may see and that lie in ``area``."""
    points = load_fire_points(session, period, where=principal.incident_filter())
    return [p for p in points if area.contains_any(p.township_code, p.county_code)]


@dataclass(frozen=True, slots=True)
class Stats:
    """A statistics answer with what it was computed over."""

    period: Period
    area: Area
    as_of: datetime


def response_times(
    session: Session,
    principal: Principal,
    period: Period,
    area_code: str | None,
    group_by: GroupBy,
    deadlines: DeadlinePolicy,
    as_of: datetime,
) -> tuple[Stats, ResponseTable]:
    """Response-time statistics for the caller's view of ``area_code`` in ``period``."""
    area = resolve_area(principal, area_code, load_units(session))
    points = fire_points_in(session, principal, period, area)
    return Stats(period, area, as_of), response_table(points, group_by, deadlines, as_of)


def outcomes(
    session: Session, principal: Principal, period: Period, area_code: str | None, group_by: GroupBy, as_of: datetime
) -> tuple[Stats, OutcomeTable]:
    """Fire-point outcome counts for the caller's view of ``area_code`` in ``period``."""
    area = resolve_area(principal, area_code, load_units(session))
    points = fire_points_in(session, principal, period, area)
    return Stats(period, area, as_of), outcome_table(points, group_by)


@dataclass(frozen=True, slots=True)
class Scores:
    """A score board with the rules version that made it and warnings for the reader."""

    stats: Stats
    board: ScoreBoard
    selection: Selection
    warnings: list[Note]


def scored_level(units: list[Unit], area: Area, preferred: RegionLevel) -> RegionLevel:
    """``preferred`` when the area has units of it, else the other scored level (counties-only imports)."""
    for level in (preferred, *(lv for lv in _SCORED_LEVELS if lv is not preferred)):
        if any(u.level is level and area.contains(u.code) for u in units):
            return level
    return preferred


def require_scored_level(level: RegionLevel | None) -> None:
    """Refuse a level no unit is scored at (InputError naming ``level``), for every role alike.

    A fire point is assigned to a township and a county only: at any other level (city, village, grid) no fire
    would match its unit, and every unit would show a clean 100.
    """
    if level is not None and level not in _SCORED_LEVELS:
        raise InputError(
            f"{level.value} units are not scored; use {' or '.join(lv.value for lv in _SCORED_LEVELS)}", field="level"
        )


def score_board(
    session: Session,
    period: Period,
    area: Area,
    units: list[Unit],
    selection: Selection,
    deadlines: DeadlinePolicy,
    as_of: datetime,
    level: RegionLevel | None = None,
    points: list[FirePoint] | None = None,
) -> tuple[ScoreBoard, list[Note]]:
    """Score every unit of the scored level in ``area`` (unscoped: callers filter what they show), with the
    warnings about it."""
    require_scored_level(level)
    rules = selection.version.rules
    preferred = level or RegionLevel(rules.unit_level)
    chosen = scored_level(units, area, preferred)
    warnings = list(selection.notes)
    if chosen is not preferred:
        warnings.append(
            Note(
                NoteCode.LEVEL_FALLBACK,
                f"no {preferred.value} units in the area: scored {chosen.value} units instead",
                {"preferred": preferred.value, "chosen": chosen.value},
            )
        )
    if points is None:
        points = [p for p in load_fire_points(session, period) if area.contains_any(p.township_code, p.county_code)]
    scored = [u for u in units if u.level is chosen and area.contains(u.code)]
    board = score_units(points, scored, chosen, rules, deadlines, as_of)
    if board.unscored:
        warnings.append(_unscored_warning(board.unscored, chosen))
    provisional = provisional_warning(board.units, as_of)
    if provisional is not None:
        warnings.append(provisional)
    return board, warnings


def provisional_warning(units: list[UnitScore], as_of: datetime) -> Note | None:
    """The warning that the scores are provisional: ``units`` have fire points still open at ``as_of``; None when
    none has.

    An open fire point (escalated and never answered, say) costs nothing yet but late responses; decided later, it
    may cost its unit a fire point's deduction and more, so the same period re-scored after ``as_of`` gives other
    scores. The warning says how many such fire points there are and in how many units (each unit's ``open``
    says which), so that a score filed while any is open is known to be provisional.
    """
    fire_points = sum(u.open for u in units)
    if not fire_points:
        return None
    holding = sum(1 for u in units if u.open)
    are, them = ("is", "it") if fire_points == 1 else ("are", "them")
    whose = "that unit's score" if holding == 1 else "those units' scores"
    return Note(
        NoteCode.PROVISIONAL,
        f"scores are provisional: {counted(fire_points, 'fire point')} in {counted(holding, 'unit')} {are} still "
        f"open at {local_time(as_of):%Y-%m-%d %H:%M} (UTC+8); deciding {them} may still change {whose}",
        {"n": fire_points, "units": holding, "as_of": as_of.astimezone(UTC).isoformat().replace("+00:00", "Z")},
    )


def _unscored_warning(count: int, level: RegionLevel) -> Note:
    """The warning that fire points of the area were left out of the scores (no unit of the scored level)."""
    have, be = ("has", "is") if count == 1 else ("have", "are")
    return Note(
        NoteCode.UNSCORED,
        f"{counted(count, 'fire point')} in the area {have} no {level.value} and {be} not scored",
        {"n": count, "level": level.value},
    )


def scores(
    session: Session,
    principal: Principal,
    period: Period,
    area_code: str | None,
    rulebook: RuleBook,
    deadlines: DeadlinePolicy,
    as_of: datetime,
    *,
    level: RegionLevel | None = None,
    version: str | None = None,
) -> Scores:
    """Scores for the caller: every unit of their area, or — for a patrol user — their own unit only."""
    units = load_units(session)
    area = resolve_area(principal, area_code, units)
    selection = rulebook.select(period) if version is None else Selection(rulebook.by_version(version), ())
    if principal.can_read_all() or principal.role is not Role.PATROL:
        board, warnings = score_board(session, period, area, units, selection, deadlines, as_of, level)
        return Scores(Stats(period, area, as_of), board, selection, warnings)
    # A patrol user: rank its unit among its siblings, then show that row alone.
    own = next((u for u in units if u.code == principal.unit_code), None)
    if own is None:
        raise NotFoundError(f"unit {principal.unit_code} is not imported")
    parent = Area.of(own.parent_code, units) if own.parent_code else Area.of(own.code, units)
    # A unit below the scored levels (a village or grid account) has no row: score its parent area as the rules
    # say, rather than refusing a "level" the user never gave.
    own_level = own.level if own.level in _SCORED_LEVELS else None
    board, warnings = score_board(session, period, parent, units, selection, deadlines, as_of, own_level)
    mine = [u for u in board.units if u.code == own.code]
    # The area's unscored fire points are the siblings' business, not the patrol user's, and so are their open
    # ones: the patrol user is told only of its own unit's open fire points.
    notes = [w for w in warnings if w.code not in (NoteCode.UNSCORED, NoteCode.PROVISIONAL)]
    provisional = provisional_warning(mine, as_of)
    notes += [provisional] if provisional is not None else []
    return Scores(Stats(period, area, as_of), replace(board, units=mine, unscored=0), selection, notes)
