"""Counts of fire points by outcome, broken down by unit, source or day (pure).

A *fire point* is an incident that is not a merged duplicate. Each fire point has exactly one outcome (see
:mod:`service.stats.lifecycle`): ``fire_points = violations + false_alarms + permitted_burns + open``;
``false_alarm_reasons`` splits ``false_alarms`` (permitted burns and duplicates are not in it);
``repeat_at_site`` counts the fire points flagged as fire again at the place of an earlier real fire (同一地点再次
起火), whatever their outcome; ``edge`` those assigned as the nearest unit, their location outside every unit
(:attr:`~service.stats.records.FirePoint.edge`: counted for that unit like any other, marked for review). Broken
down by source, a fire seen by a satellite and a camera counts under both, so the rows add up to more than the
total, which counts it once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from service.stats.lifecycle import OutcomeKind, outcome
from service.stats.records import FirePoint
from service.stats.response import GroupBy, group_keys, sort_key


@dataclass(frozen=True, slots=True)
class OutcomeGroup:
    """Outcome counts of one group (``key`` None is "unassigned", or the total)."""

    key: str | None
    name: str | None
    fire_points: int
    violations: int
    false_alarms: int
    permitted_burns: int
    open: int
    duplicates: int
    false_alarm_reasons: Mapping[str, int]
    repeat_at_site: int = 0
    edge: int = 0


@dataclass(frozen=True, slots=True)
class OutcomeTable:
    """Rows per group plus the total over all fire points."""

    group_by: GroupBy
    groups: list[OutcomeGroup]
    total: OutcomeGroup


def _group(key: str | None, name: str | None, points: list[FirePoint]) -> OutcomeGroup:
    outcomes = [outcome(p.transitions) for p in points]
    kinds = Counter(o.kind for o in outcomes)
    reasons = Counter(o.reason or "unspecified" for o in outcomes if o.kind is OutcomeKind.FALSE_ALARM)
    return OutcomeGroup(
        key=key,
        name=name,
        fire_points=len(points) - kinds[OutcomeKind.DUPLICATE],
        violations=kinds[OutcomeKind.VIOLATION],
        false_alarms=kinds[OutcomeKind.FALSE_ALARM],
        permitted_burns=kinds[OutcomeKind.PERMITTED_BURN],
        open=kinds[OutcomeKind.OPEN],
        duplicates=kinds[OutcomeKind.DUPLICATE],
        false_alarm_reasons=dict(sorted(reasons.items())),
        repeat_at_site=sum(
            1
            for p, o in zip(points, outcomes, strict=True)
            if p.repeat_of is not None and o.kind is not OutcomeKind.DUPLICATE
        ),
        edge=sum(1 for p, o in zip(points, outcomes, strict=True) if p.edge and o.kind is not OutcomeKind.DUPLICATE),
    )


def outcome_table(points: Iterable[FirePoint], by: GroupBy) -> OutcomeTable:
    """Outcome counts of ``points`` broken down by ``by``, with a total row."""
    every = list(points)
    grouped: dict[str | None, list[FirePoint]] = {}
    names: dict[str | None, str | None] = {}
    for point in every:
        for key, name in group_keys(point, by):
            grouped.setdefault(key, []).append(point)
            names[key] = names.get(key) or name
    groups = [_group(key, names[key], grouped[key]) for key in sorted(grouped, key=sort_key(by))]
    return OutcomeTable(by, groups, _group(None, None, every))
