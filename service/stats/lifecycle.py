"""What the event record says about one fire point: when each stage was first reached, and how it ended.

Definitions (all from the append-only transitions, server time):

* **Clock start** — the first entry into ``notified`` (推送: the alert reached the township). An incident that was
  never notified (a supervisor dismissed it while suspected, or a patrol picked it up before any alert) has no
  response times: they are measured *from notification*, and it is counted as ``not_notified``. A fire moved to
  another unit after that (a more precise fix across the border, or a supervisor's reassignment) is judged on the
  unit it was moved to from the move: each clock (acknowledge, on site, feedback, and the response times) starts at
  the later of its own start and the latest move before the stage was reached (:func:`clock_start`), the rule the
  escalation timer follows (``service.alerts.escalation``), so the receiving township is not judged on the time lost
  at the one the fire was wrongly placed in. A move after the clock had stopped otherwise (the stage reached on the
  township's behalf, the county's call, an escalation, the close) is a record correction and restarts nothing
  (:mod:`service.stats.response`).
* **Stage reached** — the first time the incident entered that state *or any later state of the main path*:
  a team that goes from ``escalated`` straight to ``on_site`` has acknowledged by then. For acknowledging, a false
  alarm declared by the team also counts as its answer (it looked and decided). ``closed`` is its first entry,
  whatever led to it.
* **Whose moves** — acknowledging, being on site, extinguishing, feeding back and a false alarm as an answer are the
  township's response only when its own team made them (:func:`answered_by_the_unit`): a patrol user of the
  township the fire is assigned to. A county supervisor's or admin's move is the county's, not the township's
  answer (it had counted as the township acknowledging: a supervisor dismissing a fire gave the township an on-time
  answer it never gave), and a patrol of another township answered for that township (a fire reassigned after it
  acted). A false alarm declared by anyone else is the **county's call** (``county_call``): the township owes no
  answer the deadline had not yet asked of it when the county decided (:mod:`service.stats.response`).
* **On the township's behalf** — acknowledging or being on site recorded by someone other than the township's team
  before it did (a supervisor who phoned the team and acknowledged for it, the patrol of the township the fire was
  in before a move) is recorded as such (``acknowledged_on_behalf``, ``on_site_on_behalf``), not as the township's
  answer: it stops that stage's clock, as it stops the escalation timer's (``service.alerts.escalation
  .deadline_start`` counts the on-site deadline from anyone's acknowledgement) and the dashboard's ``clock_from``,
  so the statistics neither charge the township a deadline the timer no longer ran nor credit it with an answer it
  did not give (:mod:`service.stats.response`).
* **Unreachable** — an escalation whose record says the fire's own unit could not be reached (its new-fire alert
  never got through, or nobody receives alerts for it: ``{"unreachable": {"unit": …}}``,
  ``service.alerts.outbox.escalate_as_unreachable``) marks when the county took over a fire the township was never
  told of (``unreachable``).
* **Reopened incidents** keep the times of their first round: the first time each stage was reached is what the
  deadlines judge; the later rounds show up as ``reopened`` in the counts, not as second response times. The first
  round ends at the first reopening after notification (``first_reopened``): a stage first reached after it (a team
  that declared a false alarm, was reopened by the supervisor, then went on site) has no response time, since
  measured from the first notification it would count the time the fire lay decided as the team's response
  (:mod:`service.stats.response`).
* **Outcome** — the latest decision in the record: entering ``feedback`` (反馈, a real fire was handled) makes it a
  *violation*; entering ``false_alarm`` makes it a false alarm with that reason (``permitted_burn`` is counted as a
  permitted burn, ``duplicate`` as merged into another incident, not a fire point of its own: the service's own
  merges, and a supervisor's or admin's "duplicate"; a township patrol's "duplicate" is an ordinary false alarm,
  reason ``duplicate_claimed``, so that a team's own answer cannot take its incident out of the response times and
  deductions). A false alarm that
  is later reopened is *open* again until decided anew; a violation stays a violation when reopened (the fire was
  real; reopening questions the handling). Once the team has fed a fire back as real, only the county (a
  supervisor's or admin's false alarm, or an unknown role in records older than roles) can turn it into a false
  alarm: a township patrol's own false alarm after its feedback leaves it a violation, or a team could take a fire
  out of its deductions by its own later answer. No decision yet: *open*.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from service.incidents.states import FalseAlarmReason, IncidentState, Role
from service.stats.records import FirePoint, Transition

S = IncidentState
#: The reason of a false alarm a township patrol declared a "duplicate" (a claim about its own incident).
CLAIMED_DUPLICATE = "duplicate_claimed"

# The main path after notification, in order; reaching one implies having reached those before it.
_MAIN_PATH = (S.ACKNOWLEDGED, S.EN_ROUTE, S.ON_SITE, S.EXTINGUISHED, S.FEEDBACK, S.VERIFIED)


def _at_or_after(stage: IncidentState) -> frozenset[IncidentState]:
    return frozenset(_MAIN_PATH[_MAIN_PATH.index(stage) :])


_ACK_STATES = _at_or_after(S.ACKNOWLEDGED)
_ON_SITE_STATES = _at_or_after(S.ON_SITE)
_EXTINGUISHED_STATES = _at_or_after(S.EXTINGUISHED)
_FEEDBACK_STATES = _at_or_after(S.FEEDBACK)


class OutcomeKind(StrEnum):
    """How a fire point ended (so far)."""

    VIOLATION = "violation"  # a real straw fire: fed back (反馈), verified, closed
    FALSE_ALARM = "false_alarm"  # not a straw-burning violation, with a reason
    PERMITTED_BURN = "permitted_burn"  # a false alarm because the burn had a permit (计划烧除)
    DUPLICATE = "duplicate"  # the same fire as another incident: not a fire point of its own
    OPEN = "open"  # not decided yet


@dataclass(frozen=True, slots=True)
class Outcome:
    """The outcome and, for false alarms, the reason."""

    kind: OutcomeKind
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Milestones:
    """When each stage was first reached (None: not reached)."""

    notified: datetime | None
    acknowledged: datetime | None
    acknowledged_by_false_alarm: bool  # the first answer was "false alarm", so no site visit was owed
    on_site: datetime | None
    extinguished: datetime | None
    closed: datetime | None
    fed_back: datetime | None  # first feedback (反馈) or later step of the main path
    first_false_alarm: datetime | None  # first non-duplicate false alarm at or after notification
    escalated: bool
    reopened: bool
    # The first false alarm at or after notification declared by someone other than the township's team (a
    # supervisor, an admin, the service's merge): the county took the fire off the township's list then.
    county_call: datetime | None = None
    # The first time at or after notification someone other than the township's team acknowledged (or went further
    # on the main path), and was on site (or further), before the team itself did: on the township's behalf.
    acknowledged_on_behalf: datetime | None = None
    on_site_on_behalf: datetime | None = None
    # Every escalation at or after notification, in time order (the county took the fire over each time).
    escalations: tuple[datetime, ...] = ()
    # The first of them whose record says the fire's own unit could not be reached (Transition.unreachable).
    unreachable: datetime | None = None
    # The first reopening at or after notification: the end of the first round (see "Reopened incidents").
    first_reopened: datetime | None = None


def _is_duplicate(t: Transition) -> bool:
    return t.to_state is S.FALSE_ALARM and t.reason == FalseAlarmReason.DUPLICATE.value


def answered_by_the_unit(t: Transition) -> bool:
    """Whether a move is the township's own (see "Whose moves" in the module docstring).

    A move counts when it was made as a patrol, or with no role recorded (records older than roles), and the
    actor's user does not belong to another unit than the fire's (:attr:`Transition.actor_in_unit` is not False):
    another township's patrol does not count, nor does a role-less move by a user of another unit (a county
    supervisor's old move), while a role-less move by an actor who is no user (the record cannot tell) still counts.
    A move made as a supervisor, an admin or the service itself never counts.
    """
    return t.actor_role in (None, Role.PATROL.value) and t.actor_in_unit is not False


def clock_start(start: datetime, moves: Sequence[datetime], until: datetime) -> datetime:
    """When a township's clock started for one stage (pure): ``start`` (the notification, or the acknowledgement for
    the on-site deadline), or the latest move of the fire to another unit after it, at or before ``until`` (when the
    stage was reached, the county decided, or the time judged at).

    A move after the stage was reached changes nothing (the team had answered; a later reassignment corrects the
    record), and one before ``start`` is already in it (a fire moved while suspected is notified in its new unit)."""
    latest = max((moved for moved in moves if start < moved <= until), default=None)
    return latest if latest is not None else start


def milestones(transitions: tuple[Transition, ...] | list[Transition]) -> Milestones:
    """The first time each stage was reached (see the module docstring for the rules)."""
    notified = next((t.at for t in transitions if t.to_state is S.NOTIFIED), None)
    since = [t for t in transitions if notified is not None and t.at >= notified]
    after = [t for t in since if answered_by_the_unit(t)]

    def first(states: frozenset[IncidentState], *, false_alarm: bool = False) -> datetime | None:
        return next(
            (
                t.at
                for t in after
                if t.to_state in states or (false_alarm and t.to_state is S.FALSE_ALARM and not _is_duplicate(t))
            ),
            None,
        )

    def on_behalf(states: frozenset[IncidentState], by_the_unit: datetime | None) -> datetime | None:
        """The first time someone else reached ``states``, when that was before the township's team did."""
        others = next((t.at for t in since if t.to_state in states and not answered_by_the_unit(t)), None)
        return others if others is not None and (by_the_unit is None or others < by_the_unit) else None

    acknowledged = first(_ACK_STATES, false_alarm=True)
    acknowledged_main = first(_ACK_STATES)
    on_site = first(_ON_SITE_STATES)
    first_false_alarm = first(frozenset(), false_alarm=True)
    escalations = tuple(t for t in since if t.to_state is S.ESCALATED)
    return Milestones(
        notified=notified,
        acknowledged=acknowledged,
        acknowledged_by_false_alarm=acknowledged is not None and acknowledged != acknowledged_main,
        on_site=on_site,
        extinguished=first(_EXTINGUISHED_STATES),
        closed=next((t.at for t in since if t.to_state is S.CLOSED), None),  # whoever closed it
        fed_back=first(_FEEDBACK_STATES),
        first_false_alarm=first_false_alarm,
        escalated=any(t.to_state is S.ESCALATED for t in transitions),
        reopened=any(t.to_state is S.REOPENED for t in transitions),
        county_call=next((t.at for t in since if t.to_state is S.FALSE_ALARM and not answered_by_the_unit(t)), None),
        acknowledged_on_behalf=on_behalf(_ACK_STATES, acknowledged),
        on_site_on_behalf=on_behalf(_ON_SITE_STATES, on_site),
        escalations=tuple(t.at for t in escalations),
        unreachable=next((t.at for t in escalations if t.unreachable), None),
        first_reopened=next((t.at for t in since if t.to_state is S.REOPENED), None),
    )


def outcome(transitions: tuple[Transition, ...] | list[Transition]) -> Outcome:
    """The latest decision in the record (see the module docstring)."""
    decided: Outcome = Outcome(OutcomeKind.OPEN)
    fed_back = False
    for t in transitions:
        if t.to_state is S.FEEDBACK:
            decided = Outcome(OutcomeKind.VIOLATION)
            fed_back = True
        elif t.to_state is S.FALSE_ALARM and fed_back and t.actor_role == Role.PATROL.value:
            continue  # the team's own answer after its feedback: the county decides (module docstring)
        elif t.to_state is S.FALSE_ALARM:
            if t.reason == FalseAlarmReason.DUPLICATE.value:
                decided = Outcome(OutcomeKind.DUPLICATE, t.reason)
            elif t.reason == FalseAlarmReason.PERMITTED_BURN.value:
                decided = Outcome(OutcomeKind.PERMITTED_BURN, t.reason)
            else:
                decided = Outcome(OutcomeKind.FALSE_ALARM, t.reason or "unspecified")
        elif t.to_state is S.REOPENED and decided.kind is not OutcomeKind.VIOLATION:
            decided = Outcome(OutcomeKind.OPEN)
    return decided


def was_concealed(point: FirePoint) -> bool:
    """瞒报: the township called it a false alarm, and it was later handled as a real fire (a violation).

    A merge into another incident is not a claim by the township and does not count; nor is a dismissal by a
    supervisor or admin (the county's call, not the township's), nor one by another township's patrol (before the
    fire was reassigned): only false alarms declared by the township's own team (:func:`answered_by_the_unit`).
    """
    if outcome(point.transitions).kind is not OutcomeKind.VIOLATION:
        return False
    last_feedback = max((i for i, t in enumerate(point.transitions) if t.to_state is S.FEEDBACK), default=-1)
    return any(
        t.to_state is S.FALSE_ALARM and not _is_duplicate(t) and answered_by_the_unit(t)
        for t in point.transitions[:last_feedback]
    )


def reopened_after_feedback(point: FirePoint) -> bool:
    """The handling failed verification: reopened after the team had fed back (核查不合格)."""
    seen_feedback = False
    for t in point.transitions:
        if t.to_state is S.FEEDBACK:
            seen_feedback = True
        elif t.to_state is S.REOPENED and seen_feedback:
            return True
    return False
