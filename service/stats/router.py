"""HTTP API of statistics and scores (all GET: evaluators read everything, nobody changes anything here)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from service.db import utcnow
from service.deps import Reader, SessionDep, SettingsDep
from service.incidents.states import Role
from service.regions.types import RegionLevel
from service.stats import service
from service.stats.periods import parse_period
from service.stats.response import GroupBy
from service.stats.rules import RuleBook
from service.stats.schemas import (
    NoteOut,
    OutcomesOut,
    PeriodOut,
    ResponseTimesOut,
    RulesOut,
    ScoresOut,
    UnitScoreOut,
)

router = APIRouter(prefix="/api/v1", tags=["statistics"])

# Coarse to fine, as RegionLevel lists them: province 0 … grid 5.
_LEVEL_RANK = {level: rank for rank, level in enumerate(RegionLevel)}

PeriodQuery = Annotated[
    str, Query(description="2025, 2025-Q4, 2025-11, 2025-W45, 2025-11-03 or 2025-11-01..2025-11-15 (UTC+8 days)")
]
AreaQuery = Annotated[
    str | None, Query(description="A unit code; a prefecture code like 220100 covers every unit under it")
]


def _scope_denied(exc: service.ScopeError) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, str(exc))


@router.get("/stats/response-times")
def get_response_times(
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    period: PeriodQuery,
    area: AreaQuery = None,
    group_by: GroupBy = GroupBy.TOWNSHIP,
) -> ResponseTimesOut:
    """Time to acknowledge, on site, extinguished and closed from notification: p50/p90/max and compliance."""
    parsed = parse_period(period)
    try:
        stats, table = service.response_times(
            session,
            principal,
            parsed,
            area,
            group_by,
            service.deadline_policy(settings.alerts),
            utcnow(),
        )
    except service.ScopeError as exc:
        raise _scope_denied(exc) from None
    return ResponseTimesOut.of(parsed, stats.area.code, stats.as_of, table)


@router.get("/stats/outcomes")
def get_outcomes(
    principal: Reader,
    session: SessionDep,
    period: PeriodQuery,
    area: AreaQuery = None,
    group_by: GroupBy = GroupBy.SOURCE,
) -> OutcomesOut:
    """Fire points by outcome: violations, false alarms by reason, permitted burns, still open."""
    parsed = parse_period(period)
    try:
        stats, table = service.outcomes(session, principal, parsed, area, group_by, utcnow())
    except service.ScopeError as exc:
        raise _scope_denied(exc) from None
    return OutcomesOut.of(parsed, stats.area.code, stats.as_of, table)


@router.get("/scores")
def get_scores(
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    period: PeriodQuery,
    area: AreaQuery = None,
    level: RegionLevel | None = None,
) -> ScoresOut:
    """Ranked accountability scores under the rules in force in the period (a patrol user: its own unit only).

    ``level`` is township or county for every role (422 otherwise, naming the field): a patrol user's ``level`` was
    ignored, a 200 for ``level=village`` where a supervisor's was refused. A patrol user's row is its own unit's, at
    that unit's level: asking for a coarser level (``county`` from a township's account, whose county is the
    supervisor's unit) is a 403 outside its scope; its own level, or a finer one, answers its own row."""
    parsed = parse_period(period)
    service.require_scored_level(level)  # before the scope: a patrol user's board never reached score_board's check
    rulebook = RuleBook.load(service.rules_dir(settings))
    try:
        result = service.scores(
            session,
            principal,
            parsed,
            area,
            rulebook,
            service.deadline_policy(settings.alerts),
            utcnow(),
            level=level,
        )
    except service.ScopeError as exc:
        raise _scope_denied(exc) from None
    own = result.board.level  # a patrol user's board is scored at its own unit's level
    if principal.role is Role.PATROL and level is not None and _LEVEL_RANK[level] < _LEVEL_RANK[own]:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"a patrol user sees only its own unit's score ({principal.unit_code}, at {own.value} level): "
            f"level={level.value} is outside its scope",
        )
    return ScoresOut(
        period=PeriodOut.of(parsed),
        area=result.stats.area.code,
        level=result.board.level.value,
        as_of=result.stats.as_of,
        rules=RulesOut.of(result.selection.version),
        warnings=[w.text for w in result.warnings],
        warning_notes=[NoteOut.of(w) for w in result.warnings],
        units=[UnitScoreOut.of(u) for u in result.board.units],
    )
