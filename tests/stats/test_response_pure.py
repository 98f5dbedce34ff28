"""Lifecycle milestones, outcomes, fractiles and deadline judgements on hand-made records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.incidents.fusion import ObservationKind
from service.incidents.states import IncidentState
from service.stats.lifecycle import (
    Outcome,
    OutcomeKind,
    milestones,
    outcome,
    reopened_after_feedback,
    was_concealed,
)
from service.stats.records import FirePoint, Sighting, Transition
from service.stats.response import (
    Compliance,
    Deadline,
    Interval,
    Response,
    feedback_compliance,
    percentile,
    response_of,
)

T0 = datetime(2025, 11, 3, 2, 0, tzinfo=UTC)
S = IncidentState
DEADLINE = Deadline()
AS_LATE = T0 + timedelta(days=2)  # every deadline has passed


def t(minutes: float, state: IncidentState, reason: str | None = None) -> Transition:
    return Transition(T0 + timedelta(minutes=minutes), state, reason=reason)


def point(*transitions: Transition, kinds: tuple[ObservationKind, ...] = (ObservationKind.CAMERA,)) -> FirePoint:
    return FirePoint(
        id=1,
        latitude=44.0,
        longitude=125.0,
        township_code="T",
        township_name="镇",
        county_code="C",
        county_name="县",
        first_observed_at=T0,
        state=transitions[-1].to_state if transitions else S.SUSPECTED,
        sightings=tuple(Sighting(k, T0) for k in kinds),
        transitions=transitions,
    )


def test_nearest_rank_percentiles() -> None:
    values = [timedelta(minutes=v) for v in (7, 1, 3, 5)]
    assert percentile(values, 50) == timedelta(minutes=3)  # rank ⌈2⌉ = 2 of [1, 3, 5, 7]
    assert percentile(values, 90) == timedelta(minutes=7)  # rank ⌈3.6⌉ = 4
    assert percentile(values, 25) == timedelta(minutes=1)
    assert percentile([timedelta(minutes=9)], 90) == timedelta(minutes=9)
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_skipped_stages_count_as_reached_when_a_later_one_is() -> None:
    # escalated straight to on site: acknowledged at that moment too
    m = milestones((t(0, S.NOTIFIED), t(40, S.ESCALATED), t(45, S.ON_SITE)))
    assert (m.acknowledged, m.on_site, m.escalated) == (T0 + timedelta(minutes=45),) * 2 + (True,)
    response = response_of(point(t(0, S.NOTIFIED), t(40, S.ESCALATED), t(45, S.ON_SITE)), DEADLINE, T0)
    assert response is not None
    assert response.acknowledge is Compliance.MISSED
    assert response.on_site is Compliance.MET  # on site the moment it acknowledged
    assert response.intervals[Interval.TRAVEL] == timedelta(0)


def test_pending_until_the_deadline_passes_then_missed() -> None:
    notified = point(t(0, S.NOTIFIED))
    early = response_of(notified, DEADLINE, T0 + timedelta(minutes=15))
    late = response_of(notified, DEADLINE, T0 + timedelta(minutes=16))
    assert early is not None
    assert late is not None
    assert (early.acknowledge, late.acknowledge) == (Compliance.PENDING, Compliance.MISSED)
    assert early.on_site is Compliance.NOT_APPLICABLE
    acked = point(t(0, S.NOTIFIED), t(5, S.ACKNOWLEDGED))
    assert response_of(acked, DEADLINE, T0 + timedelta(minutes=35)).on_site is Compliance.PENDING  # type: ignore[union-attr]
    assert response_of(acked, DEADLINE, T0 + timedelta(minutes=36)).on_site is Compliance.MISSED  # type: ignore[union-attr]


def test_a_false_alarm_in_time_owes_no_visit_but_a_late_one_does() -> None:
    in_time = point(t(0, S.NOTIFIED), t(5, S.ACKNOWLEDGED), t(30, S.FALSE_ALARM, "industrial_heat"))
    too_late = point(t(0, S.NOTIFIED), t(5, S.ACKNOWLEDGED), t(40, S.FALSE_ALARM, "industrial_heat"))
    as_of = T0 + timedelta(days=1)
    assert response_of(in_time, DEADLINE, as_of).on_site is Compliance.NOT_APPLICABLE  # type: ignore[union-attr]
    assert response_of(too_late, DEADLINE, as_of).on_site is Compliance.MISSED  # type: ignore[union-attr]


def test_not_notified_and_duplicates_have_no_response() -> None:
    assert response_of(point(t(5, S.ACKNOWLEDGED)), DEADLINE, T0) is None
    assert response_of(point(t(0, S.NOTIFIED), t(1, S.FALSE_ALARM, "duplicate")), DEADLINE, T0) is None


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((), (OutcomeKind.OPEN, None)),
        (((S.NOTIFIED, None), (S.ACKNOWLEDGED, None)), (OutcomeKind.OPEN, None)),
        (((S.FEEDBACK, None), (S.VERIFIED, None), (S.CLOSED, None)), (OutcomeKind.VIOLATION, None)),
        (((S.FALSE_ALARM, "industrial_heat"), (S.CLOSED, None)), (OutcomeKind.FALSE_ALARM, "industrial_heat")),
        (((S.FALSE_ALARM, None),), (OutcomeKind.FALSE_ALARM, "unspecified")),
        (((S.FALSE_ALARM, "permitted_burn"),), (OutcomeKind.PERMITTED_BURN, "permitted_burn")),
        (((S.FALSE_ALARM, "duplicate"),), (OutcomeKind.DUPLICATE, "duplicate")),
        (((S.FALSE_ALARM, "not_found"), (S.REOPENED, None)), (OutcomeKind.OPEN, None)),  # a false alarm in doubt
        (((S.FEEDBACK, None), (S.REOPENED, None)), (OutcomeKind.VIOLATION, None)),  # the fire was real
        (
            ((S.FEEDBACK, None), (S.REOPENED, None), (S.FALSE_ALARM, "non_straw_fire")),
            (OutcomeKind.FALSE_ALARM, "non_straw_fire"),
        ),
    ],
)
def test_outcome_is_the_latest_decision(
    states: tuple[tuple[IncidentState, str | None], ...], expected: tuple[OutcomeKind, str | None]
) -> None:
    got = outcome([t(i, state, reason) for i, (state, reason) in enumerate(states)])
    assert (got.kind, got.reason) == expected


def test_after_its_feedback_a_patrols_false_alarm_leaves_the_fire_a_violation() -> None:
    """A team fed a fire back as real; a supervisor reopened it (the handling was questioned) and the team then
    called it a false alarm: the township escaped the fire point's deduction by its own later answer. Now only the
    county's false alarm changes the outcome; an unknown role (records older than roles) is still the latest."""
    reopened = (t(0, S.NOTIFIED), t(30, S.FEEDBACK), t(60, S.REOPENED))
    by_patrol = Transition(T0 + timedelta(minutes=70), S.FALSE_ALARM, reason="non_straw_fire", actor_role="patrol")
    assert outcome([*reopened, by_patrol]).kind is OutcomeKind.VIOLATION
    by_admin = Transition(T0 + timedelta(minutes=70), S.FALSE_ALARM, reason="non_straw_fire", actor_role="admin")
    assert outcome([*reopened, by_admin]) == Outcome(OutcomeKind.FALSE_ALARM, "non_straw_fire")
    # Before any feedback a patrol's false alarm is its answer, as ever.
    early = Transition(T0 + timedelta(minutes=5), S.FALSE_ALARM, reason="not_found", actor_role="patrol")
    assert outcome([t(0, S.NOTIFIED), early]).kind is OutcomeKind.FALSE_ALARM


def test_concealed_and_failed_verification() -> None:
    concealed = point(t(0, S.NOTIFIED), t(5, S.FALSE_ALARM, "not_found"), t(60, S.REOPENED), t(70, S.FEEDBACK))
    assert was_concealed(concealed)
    assert not reopened_after_feedback(concealed)
    merged_then_real = point(t(0, S.FALSE_ALARM, "duplicate"), t(60, S.REOPENED), t(70, S.FEEDBACK))
    assert not was_concealed(merged_then_real)
    reworked = point(t(0, S.FEEDBACK), t(10, S.REOPENED), t(20, S.ACKNOWLEDGED), t(30, S.FEEDBACK))
    assert reopened_after_feedback(reworked)
    assert not was_concealed(reworked)
    # A supervisor's dismissal, later reopened and handled as a fire, is the county's call, not a township's 瞒报.
    by_supervisor = Transition(T0 + timedelta(minutes=5), S.FALSE_ALARM, reason="not_found", actor_role="supervisor")
    dismissed = point(t(0, S.NOTIFIED), by_supervisor, t(60, S.REOPENED), t(70, S.FEEDBACK))
    assert not was_concealed(dismissed)
    by_patrol = Transition(T0 + timedelta(minutes=5), S.FALSE_ALARM, reason="not_found", actor_role="patrol")
    assert was_concealed(point(t(0, S.NOTIFIED), by_patrol, t(60, S.REOPENED), t(70, S.FEEDBACK)))


def test_a_patrols_own_duplicate_stays_in_the_statistics() -> None:
    """A team that answers "duplicate" three hours late: its answer no longer takes the incident out of the
    response times and deductions (only the service's merges, and the county's call, are duplicates)."""
    from service.stats.lifecycle import CLAIMED_DUPLICATE

    late = point(t(0, S.NOTIFIED), t(180, S.FALSE_ALARM, CLAIMED_DUPLICATE))
    assert outcome(late.transitions).kind is OutcomeKind.FALSE_ALARM
    reached = milestones(late.transitions)
    assert reached.acknowledged == T0 + timedelta(minutes=180)  # answered, late: judged against the deadline
    assert reached.acknowledged_by_false_alarm


def test_whose_duplicate_it_is_decides_what_it_counts_as() -> None:
    import json

    from service.incidents.tables import Incident, IncidentEvent
    from service.stats.lifecycle import CLAIMED_DUPLICATE
    from service.stats.queries import _reason

    incident = Incident(state="false_alarm", false_alarm_reason="duplicate")

    def event(role: str, data: dict[str, object]) -> IncidentEvent:
        return IncidentEvent(to_state="false_alarm", actor_role=role, data=json.dumps(data))

    assert _reason(event("patrol", {"reason": "duplicate"}), incident) == CLAIMED_DUPLICATE
    assert _reason(event("supervisor", {"reason": "duplicate"}), incident) == "duplicate"
    assert _reason(event("system", {"merged_into": 7}), incident) == "duplicate"  # the service's merge
    assert _reason(event("patrol", {"reason": "not_found"}), incident) == "not_found"


def by(
    minutes: float, state: IncidentState, role: str, *, in_unit: bool | None = None, reason: str | None = None
) -> Transition:
    """A move by a user of ``role``; ``in_unit``: whether they answer for the fire's township (None: unknown)."""
    return Transition(T0 + timedelta(minutes=minutes), state, reason=reason, actor_role=role, actor_in_unit=in_unit)


def respond(fire: FirePoint) -> Response:
    """The response to a notified fire, every deadline passed."""
    response = response_of(fire, DEADLINE, AS_LATE)
    assert response is not None
    return response


def test_a_supervisors_false_alarm_is_not_the_townships_answer() -> None:
    """A county supervisor dismissed a fire 5 minutes after the alert: that was counted as the township
    acknowledging on time (and a 5-minute acknowledge time). The township gave no answer; it owed none once the
    county decided within the deadline, and still owes the one it had missed when the county decides later."""
    early = point(t(0, S.NOTIFIED), by(5, S.FALSE_ALARM, "supervisor", in_unit=False, reason="not_found"))
    response = respond(early)
    assert response.acknowledge is Compliance.NOT_APPLICABLE
    assert Interval.ACKNOWLEDGE not in response.intervals
    assert response.milestones.acknowledged is None
    assert response.milestones.county_call == T0 + timedelta(minutes=5)
    late = point(t(0, S.NOTIFIED), by(40, S.FALSE_ALARM, "admin", reason="not_found"))
    assert respond(late).acknowledge is Compliance.MISSED
    # The township's own false alarm is its answer, as ever.
    own = point(t(0, S.NOTIFIED), by(5, S.FALSE_ALARM, "patrol", in_unit=True, reason="not_found"))
    answered = respond(own)
    assert answered.acknowledge is Compliance.MET
    assert answered.intervals[Interval.ACKNOWLEDGE] == timedelta(minutes=5)


def test_only_the_townships_own_team_acknowledges_for_it() -> None:
    """A supervisor acknowledged at 5 minutes; the township's team first moved at 60 (on site). The supervisor's
    acknowledgement is not the township's (it is recorded as made on its behalf) but it stopped the acknowledge
    clock, as it stopped the escalation timer's: nothing owed for acknowledging, and the on-site deadline counted
    from it was missed. A patrol of another township (it acted before the fire was reassigned here) does not answer
    for this one either; a patrol user whose unit the record cannot tell still does (records older than units)."""
    for_them = point(
        t(0, S.NOTIFIED), by(5, S.ACKNOWLEDGED, "supervisor", in_unit=False), by(60, S.ON_SITE, "patrol", in_unit=True)
    )
    response = respond(for_them)
    assert response.milestones.acknowledged == T0 + timedelta(minutes=60)
    assert response.milestones.acknowledged_on_behalf == T0 + timedelta(minutes=5)
    assert (response.acknowledge, response.on_site) == (Compliance.NOT_APPLICABLE, Compliance.MISSED)
    assert response.intervals[Interval.TRAVEL] == timedelta(minutes=55)
    elsewhere = point(t(0, S.NOTIFIED), by(5, S.ACKNOWLEDGED, "patrol", in_unit=False))
    assert respond(elsewhere).milestones.acknowledged is None
    assert respond(elsewhere).acknowledge is Compliance.NOT_APPLICABLE
    unknown = point(t(0, S.NOTIFIED), by(5, S.ACKNOWLEDGED, "patrol"))
    assert respond(unknown).acknowledge is Compliance.MET


def test_the_countys_call_ends_what_the_township_owes_on_site_and_in_feedback() -> None:
    acknowledged = (t(0, S.NOTIFIED), by(5, S.ACKNOWLEDGED, "patrol", in_unit=True))
    dismissed_in_time = point(*acknowledged, by(20, S.FALSE_ALARM, "supervisor", in_unit=False, reason="not_found"))
    response = respond(dismissed_in_time)
    assert (response.acknowledge, response.on_site) == (Compliance.MET, Compliance.NOT_APPLICABLE)
    assert feedback_compliance(dismissed_in_time, timedelta(hours=24), AS_LATE) is Compliance.NOT_APPLICABLE
    dismissed_late = point(*acknowledged, by(50, S.FALSE_ALARM, "supervisor", in_unit=False, reason="not_found"))
    assert respond(dismissed_late).on_site is Compliance.MISSED  # due at 35, nobody on site by the call at 50
    # A feedback the supervisor entered on the team's behalf is not the team's: 24 h passed without its answer.
    fed_by_county = point(*acknowledged, by(60, S.EXTINGUISHED, "supervisor"), by(70, S.FEEDBACK, "supervisor"))
    assert feedback_compliance(fed_by_county, timedelta(hours=24), AS_LATE) is Compliance.MISSED


def test_another_townships_false_alarm_is_not_this_townships_concealment() -> None:
    elsewhere = by(5, S.FALSE_ALARM, "patrol", in_unit=False, reason="not_found")
    assert not was_concealed(point(t(0, S.NOTIFIED), elsewhere, t(60, S.REOPENED), t(70, S.FEEDBACK)))
    own = by(5, S.FALSE_ALARM, "patrol", in_unit=True, reason="not_found")
    assert was_concealed(point(t(0, S.NOTIFIED), own, t(60, S.REOPENED), t(70, S.FEEDBACK)))
