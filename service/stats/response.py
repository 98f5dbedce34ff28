"""Response-time statistics: intervals from notification, fractiles, deadline compliance (pure).

Intervals (NFPA-style, each with a defined start and end event; see :mod:`service.stats.lifecycle` for when a stage
counts as reached):

* ``acknowledge``  notified → acknowledged (签收)
* ``on_site``      notified → on site (到场)
* ``extinguished`` notified → extinguished (扑灭/处置)
* ``closed``       notified → closed (销号)
* ``travel``       acknowledged → on site (出发+到场, what the on-site deadline judges)

Every incident that reached the end stage contributes, whatever its outcome (a false alarm closed after a site
visit has a real ``on_site`` time); a stage is reached by the township's own team, ``closed`` by whoever closed it.
Merged duplicates are left out entirely: the incident they were merged into carries the response.

A reopened incident contributes the intervals of its first round only: a stage first reached after the first
reopening (``Milestones.first_reopened``) has no interval. Measured from the first notification, such a time counts
the hours the fire lay decided (a team's false alarm, until the supervisor reopened it) as response time, and a
fire the team false-alarmed, then reached on site in its second round, put that into the on-site p90 and max while
the on-site deadline, which does not judge it, left it out. The later rounds show in the ``reopened`` count.

Fractiles are **nearest-rank**, as NFPA 1710 reports them: the p-th percentile of n sorted values is the value
at rank ⌈p·n/100⌉, i.e. the smallest time within which at least p % of the responses happened. No
interpolation, so every figure is a time that really occurred.

Deadlines are the ones the escalation timer enforces (``alerts.deadlines``, per county ``alerts.county_deadlines``):
acknowledge within 15 min of notification, be on site within 30 min **of acknowledging**; as the timer does, each
counts from a later move of the fire to another unit instead, and so do the intervals (a township a fire was moved
to answers for the time since the move, not for the time lost at the one it was wrongly placed in). A stage is

* *met* when reached within its deadline;
* *missed* when reached late, or not reached and the deadline has passed at ``as_of``;
* *pending* when not reached and the deadline has not passed yet (not in the rate).

The on-site deadline applies only to incidents the team acknowledged by taking the case (not by declaring a false
alarm); one declared a false alarm within the on-site deadline without a visit owes none. The compliance rate is
met / (met + missed).

Only the township's own team answers for it (:func:`service.stats.lifecycle.answered_by_the_unit`): a supervisor's
acknowledgement or false alarm is not the township's. When the county declares a false alarm before the township
answered (the county's call), a deadline that had not passed by then is *not applicable* (the township owed nothing
more), and one that had passed stays *missed*; the same holds for the on-site and feedback deadlines.

The statistics, the escalation timer and the dashboard's lateness (``IncidentRead.clock_from``) agree on when a
township's clock runs:

* **Someone else acknowledged first** (a supervisor on the township's behalf, after phoning its team; the patrol of
  the township the fire was in before a move): the acknowledge clock stopped there, as the timer's did. The
  township's acknowledgement is *not applicable* when that was within its deadline (*missed* when the deadline had
  already passed), its acknowledge time is left out of the intervals, and the on-site deadline counts from that
  acknowledgement (or a later move), as the timer's does. The same holds for being on site: someone else's "on
  site" before the team's stops the on-site clock.
* **Moved after the clock stopped**: a move after a stage's clock had stopped other than by the township's answer
  (the stage reached by someone else, the county's call, an escalation, the close) does not restart that clock: it
  is a record correction, and restarting made a missed deadline pending again for a full deadline, then charged it
  to the unit moved to. That unit never had the deadline running (the timer ran none for it: an acknowledged fire
  is past acknowledging, an escalated one is the county's, a closed one is done), so it is *not applicable* for it,
  neither met nor missed, and it does not change when the statistics are read later (:func:`_clock_start`). The
  same holds for the feedback deadline after the county's call, an escalation or the close; it stays the team's
  own otherwise (no timer runs it: a feedback a supervisor enters for the team is not the team's answer).
* **Never reached** (an escalation recording that the fire's own unit could not be reached: its new-fire alert never
  got through, or nobody receives alerts for it; ``service.alerts.escalation``): the acknowledge and feedback
  deadlines that had not been answered by then are *not applicable*, whether or not they had passed: they presume
  an alert the township never had. A team that takes the fire later (its alert got through after all) is judged on
  site from its acknowledgement, as the timer then judges it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from service.incidents.states import IncidentState
from service.stats.lifecycle import Milestones, OutcomeKind, clock_start, milestones, outcome
from service.stats.periods import local_date
from service.stats.records import SOURCE_ORDER, FirePoint


class Interval(StrEnum):
    """The measured intervals (see the module docstring)."""

    ACKNOWLEDGE = "acknowledge"
    ON_SITE = "on_site"
    EXTINGUISHED = "extinguished"
    CLOSED = "closed"
    TRAVEL = "travel"


class Compliance(StrEnum):
    """How one incident fared against one deadline."""

    MET = "met"
    MISSED = "missed"
    PENDING = "pending"
    NOT_APPLICABLE = "not_applicable"


class GroupBy(StrEnum):
    """How statistics are broken down."""

    TOWNSHIP = "township"
    COUNTY = "county"
    SOURCE = "source"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class Deadline:
    """A county's response deadlines."""

    acknowledge: timedelta = timedelta(minutes=15)
    on_site: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class DeadlinePolicy:
    """The default deadlines and the counties that set their own."""

    default: Deadline = Deadline()
    per_county: Mapping[str, Deadline] = field(default_factory=dict)

    def for_county(self, county_code: str | None) -> Deadline:
        """The deadlines that apply to a county's incidents."""
        return self.per_county.get(county_code or "", self.default)


@dataclass(frozen=True, slots=True)
class Response:
    """One incident's response: its intervals and how it fared against each deadline."""

    milestones: Milestones
    intervals: Mapping[Interval, timedelta]
    acknowledge: Compliance
    on_site: Compliance


def _judge(reached: datetime | None, since: datetime, deadline: timedelta, as_of: datetime) -> Compliance:
    if reached is not None:
        return Compliance.MET if reached - since <= deadline else Compliance.MISSED
    return Compliance.MISSED if as_of - since > deadline else Compliance.PENDING


def _judge_answer(
    answered: datetime | None, stopped: datetime | None, since: datetime, deadline: timedelta, as_of: datetime
) -> Compliance:
    """Like :func:`_judge`, for the township's answer when the clock may have stopped first (``stopped``: the
    county's call, or the stage reached on the township's behalf): an answer after that is a later round, and a stop
    within the deadline leaves nothing owed."""
    if stopped is not None and (answered is None or answered > stopped):
        if stopped - since <= deadline:
            return Compliance.NOT_APPLICABLE
        answered = None  # the deadline had passed unanswered when the clock stopped
    return _judge(answered, since, deadline, as_of)


def _first(*times: datetime | None) -> datetime | None:
    return min((t for t in times if t is not None), default=None)


def _clock_start(
    start: datetime,
    answered: datetime | None,
    stops: Iterable[datetime | None],
    moves: Sequence[datetime],
    as_of: datetime,
) -> datetime | None:
    """When the township's clock for one stage started (:func:`service.stats.lifecycle.clock_start`), or None when
    the fire was moved to the township only after that clock had stopped (see the module docstring).

    ``answered``: the township's answer; ``stops``: what else stops the clock (the county's call, someone else
    reaching the stage, an escalation, the close; those before ``start`` belong to an earlier clock). Moves count up
    to the first of them, or up to ``as_of`` when none came: a move after the clock stopped does not restart it."""
    stopped = min((t for t in stops if t is not None and t >= start), default=None)
    if stopped is not None and (answered is None or stopped < answered):
        if any(stopped < moved <= (answered or as_of) for moved in moves):
            return None
        return clock_start(start, moves, stopped)
    return clock_start(start, moves, answered or as_of)


def _ended(m: Milestones) -> tuple[datetime | None, ...]:
    """What ends the township's clocks besides its own answers: the county's call, the close, each escalation."""
    return (m.county_call, m.closed, *m.escalations)


def _unreached(m: Milestones, answered: datetime | None, stops: Iterable[datetime | None]) -> bool:
    """Whether the clock ended with the county taking the fire over as the township could not be reached: the
    unreachable escalation came before the township's answer and before anything else that ends the clock (one of a
    later round, after a reopening, changes nothing about the first)."""
    return m.unreachable is not None and m.unreachable == _first(answered, *stops)


def _in_first_round(m: Milestones, reached: datetime) -> bool:
    """Whether a stage reached at ``reached`` belongs to the incident's first round (before any reopening after
    notification): only those give response intervals (see the module docstring)."""
    return m.first_reopened is None or reached < m.first_reopened


def response_of(point: FirePoint, deadline: Deadline, as_of: datetime) -> Response | None:
    """The response to one incident; None when it was never notified or was merged into another.

    Each interval and deadline of a fire moved to another unit counts from the move when that came later than its
    own start (:func:`service.stats.lifecycle.clock_start`); see the module docstring for acknowledgements made on
    the township's behalf, moves after a clock stopped and townships never reached."""
    if outcome(point.transitions).kind is OutcomeKind.DUPLICATE:
        return None
    m = milestones(point.transitions)
    if m.notified is None:
        return None
    intervals: dict[Interval, timedelta] = {}
    for interval, reached, on_behalf in (
        (Interval.ACKNOWLEDGE, m.acknowledged, m.acknowledged_on_behalf),
        (Interval.ON_SITE, m.on_site, m.on_site_on_behalf),
        (Interval.EXTINGUISHED, m.extinguished, None),
        (Interval.CLOSED, m.closed, None),
    ):
        # Someone else reached it first: not the township's time; reached after a reopening: a later round's.
        if reached is not None and on_behalf is None and _in_first_round(m, reached):
            intervals[interval] = reached - clock_start(m.notified, point.moves, reached)
    ended = _ended(m)
    acknowledge = Compliance.NOT_APPLICABLE
    stops = (*ended, m.acknowledged_on_behalf)
    since = _clock_start(m.notified, m.acknowledged, stops, point.moves, as_of)
    if since is not None and not _unreached(m, m.acknowledged, stops):
        stopped = _first(m.county_call, m.acknowledged_on_behalf)
        acknowledge = _judge_answer(m.acknowledged, stopped, since, deadline.acknowledge, as_of)
    on_site = Compliance.NOT_APPLICABLE
    # The on-site deadline runs from the acknowledgement (the township's, or one made on its behalf first), unless
    # the township's first answer was a false alarm.
    acknowledged = m.acknowledged_on_behalf or (None if m.acknowledged_by_false_alarm else m.acknowledged)
    if acknowledged is not None:
        since = _clock_start(acknowledged, m.on_site, (*ended, m.on_site_on_behalf), point.moves, as_of)
        # None: moved to the township after someone else was on site, or after the county had the fire: none owed.
        if since is not None:
            if m.on_site is not None and m.on_site_on_behalf is None and _in_first_round(m, m.on_site):
                intervals[Interval.TRAVEL] = m.on_site - since
            due = since + deadline.on_site
            if m.on_site is None and m.first_false_alarm is not None and m.first_false_alarm <= due:
                on_site = Compliance.NOT_APPLICABLE  # judged a false alarm in time: no visit owed
            elif m.county_call is None or m.county_call >= acknowledged:
                stopped = _first(m.county_call, m.on_site_on_behalf)
                on_site = _judge_answer(m.on_site, stopped, since, deadline.on_site, as_of)
            # else: acknowledged only in a later round, after the county's call: no first-round visit to judge
    return Response(m, intervals, acknowledge, on_site)


def feedback_compliance(point: FirePoint, within: timedelta, as_of: datetime) -> Compliance:
    """How a fire point fared against the feedback deadline (``within`` of notification, or of a later move to
    another unit; 24 小时接报处置).

    The team answers by feeding the fire back (反馈) or by declaring a false alarm; either ends the clock, and so does
    the county's own false alarm within the deadline (nothing more owed). Never notified or merged into another
    incident: not applicable.
    """
    if outcome(point.transitions).kind is OutcomeKind.DUPLICATE:
        return Compliance.NOT_APPLICABLE
    m = milestones(point.transitions)
    if m.notified is None:
        return Compliance.NOT_APPLICABLE
    answered = _first(m.fed_back, m.first_false_alarm)
    stops = _ended(m)
    since = _clock_start(m.notified, answered, stops, point.moves, as_of)
    if since is None or _unreached(m, answered, stops):
        return Compliance.NOT_APPLICABLE
    return _judge_answer(answered, m.county_call, since, within, as_of)


@dataclass(frozen=True, slots=True)
class Distribution:
    """Nearest-rank fractiles of one interval over a group (None when the group has no value)."""

    n: int
    p50: timedelta | None
    p90: timedelta | None
    max: timedelta | None


def percentile(values: Sequence[timedelta], p: float) -> timedelta:
    """Nearest-rank percentile: the value at rank ⌈p·n/100⌉ of the sorted values (p in 0 < p ≤ 100)."""
    if not values:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError("p must be within (0, 100]")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1]


def distribution(values: Sequence[timedelta]) -> Distribution:
    """n, p50, p90 and max of the values."""
    if not values:
        return Distribution(0, None, None, None)
    return Distribution(len(values), percentile(values, 50), percentile(values, 90), max(values))


@dataclass(frozen=True, slots=True)
class ComplianceCount:
    """Met, missed and pending counts for one deadline; ``rate`` is met / (met + missed)."""

    met: int = 0
    missed: int = 0
    pending: int = 0

    @property
    def rate(self) -> float | None:
        """The share of judged incidents that met the deadline (None when none was judged)."""
        judged = self.met + self.missed
        return self.met / judged if judged else None


def _count(values: Iterable[Compliance]) -> ComplianceCount:
    items = list(values)
    return ComplianceCount(
        met=items.count(Compliance.MET), missed=items.count(Compliance.MISSED), pending=items.count(Compliance.PENDING)
    )


@dataclass(frozen=True, slots=True)
class ResponseGroup:
    """Response statistics of one group (a township, county, source or day; ``key`` None is "unassigned")."""

    key: str | None
    name: str | None
    incidents: int  # fire points in the group (merged duplicates excluded)
    notified: int
    not_notified: int
    escalated: int
    reopened: int
    intervals: Mapping[Interval, Distribution]
    acknowledge: ComplianceCount
    on_site: ComplianceCount
    repeat_at_site: int = 0  # fire points flagged as fire again at the place of an earlier real fire
    # "On site" (到场) declarations (every one, a reopened fire's too) whose phone position was far from the fire,
    # missing, too coarse or too old to tell (tamper evidence against 虚假到场; see
    # service.evidence.service.position_record).
    on_site_far: int = 0
    on_site_without_position: int = 0
    on_site_imprecise: int = 0
    on_site_stale: int = 0


def _on_site_positions(points: Iterable[FirePoint]) -> Counter[str | None]:
    """How many "on site" declarations of ``points`` had each position verdict (:attr:`Transition.position`)."""
    return Counter(t.position for p in points for t in p.transitions if t.to_state is IncidentState.ON_SITE)


@dataclass(frozen=True, slots=True)
class ResponseTable:
    """Rows per group plus the total over all fire points (each counted once)."""

    group_by: GroupBy
    groups: list[ResponseGroup]
    total: ResponseGroup


KeyName = tuple[str | None, str | None]


def group_keys(point: FirePoint, by: GroupBy) -> list[KeyName]:
    """The groups a fire point belongs to. A fire seen by several sources is in each of their groups."""
    if by is GroupBy.TOWNSHIP:
        return [(point.township_code, point.township_name)]
    if by is GroupBy.COUNTY:
        return [(point.county_code, point.county_name)]
    if by is GroupBy.DAY:
        return [(local_date(point.first_observed_at).isoformat(), None)]
    return [(s.value, None) for s in SOURCE_ORDER if s in point.sources]


def sort_key(by: GroupBy) -> Callable[[str | None], tuple[int, str]]:
    """Rows in a stable order: sources in their fixed order, everything else by key, unassigned last."""
    if by is GroupBy.SOURCE:
        order = {s.value: i for i, s in enumerate(SOURCE_ORDER)}
        return lambda key: (order.get(key or "", len(order)), key or "")
    return lambda key: (1, "") if key is None else (0, key)


def _group(key: str | None, name: str | None, rows: list[tuple[FirePoint, Response | None]]) -> ResponseGroup:
    kept = [(p, r) for p, r in rows if outcome(p.transitions).kind is not OutcomeKind.DUPLICATE]
    responses = [r for _, r in kept if r is not None]
    positions = _on_site_positions(p for p, _ in kept)
    return ResponseGroup(
        key=key,
        name=name,
        incidents=len(kept),
        notified=len(responses),
        not_notified=len(kept) - len(responses),
        escalated=sum(1 for r in responses if r.milestones.escalated),
        reopened=sum(1 for r in responses if r.milestones.reopened),
        intervals={i: distribution([r.intervals[i] for r in responses if i in r.intervals]) for i in Interval},
        acknowledge=_count(r.acknowledge for r in responses),
        on_site=_count(r.on_site for r in responses),
        repeat_at_site=sum(1 for p, _ in kept if p.repeat_of is not None),
        on_site_far=positions["far"],
        on_site_without_position=positions["missing"],
        on_site_imprecise=positions["imprecise"],
        on_site_stale=positions["stale"],
    )


def response_table(
    points: Iterable[FirePoint], by: GroupBy, deadlines: DeadlinePolicy, as_of: datetime
) -> ResponseTable:
    """Response statistics of ``points`` broken down by ``by``, with a total row."""
    rows = [(p, response_of(p, deadlines.for_county(p.county_code), as_of)) for p in points]
    grouped: dict[str | None, list[tuple[FirePoint, Response | None]]] = {}
    names: dict[str | None, str | None] = {}
    for row in rows:
        for key, name in group_keys(row[0], by):
            grouped.setdefault(key, []).append(row)
            names[key] = names.get(key) or name
    order = sort_key(by)
    groups = [_group(key, names[key], grouped[key]) for key in sorted(grouped, key=order)]
    return ResponseTable(by, groups, _group(None, None, rows))
