"""Scoring terms one at a time on hand-made records, with hand-computed points."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from service.incidents.fusion import ObservationKind
from service.incidents.states import IncidentState
from service.regions.types import RegionLevel
from service.stats.records import FirePoint, Sighting, Transition, Unit
from service.stats.response import DeadlinePolicy
from service.stats.rules import ScoringRules
from service.stats.scoring import UnitScore, score_units

T0 = datetime(2025, 11, 3, 2, 0, tzinfo=UTC)
S = IncidentState
K = ObservationKind
RULES = ScoringRules.model_validate(
    {
        "version": "t",
        "effective_from": "2025-01-01",
        "base": 100,
        "floor": None,
        "max_credit": 3,
        "fire_points": {
            "satellite": 20,
            "camera": 5,
            "drone": 3,
            "large_area_m2": 300,
            "large_area_factor": 2,
            "reopened_factor": 1.5,
        },
        "responses": {"late_acknowledge": 1, "late_on_site": 2},
        "reporting": {"unreported": 4, "concealed": 8, "self_found_sources": ["drone"], "self_found_credit": 2},
        "density": {"points_per_fire_per_1000ha": 10},
        "grades": [{"min_score": 90, "name": "good"}],
        "sanctions": [{"min_violations": 2, "name": "warning"}],
    }
)
UNIT = Unit("T1", "一镇", RegionLevel.TOWNSHIP, "C1", area_ha=4000.0, cropland_ha=2000.0)
HANDLED = (S.ACKNOWLEDGED, S.ON_SITE, S.EXTINGUISHED, S.FEEDBACK)


def fire(
    n: int,
    kinds: tuple[ObservationKind, ...],
    states: tuple[IncidentState, ...] = HANDLED,
    *,
    area: float | None = None,
    reporter: str | None = None,
    township: str | None = "T1",
) -> FirePoint:
    transitions = [Transition(T0, S.NOTIFIED)] + [
        Transition(T0 + timedelta(minutes=i + 1), s, reason="not_found" if s is S.FALSE_ALARM else None)
        for i, s in enumerate(states)
    ]
    return FirePoint(
        id=n,
        latitude=44.0,
        longitude=125.0,
        township_code=township,
        township_name=None,
        county_code="C1",
        county_name=None,
        first_observed_at=T0,
        state=states[-1] if states else S.NOTIFIED,
        sightings=tuple(
            Sighting(k, T0 + timedelta(seconds=i), reporter if i == 0 else None) for i, k in enumerate(kinds)
        ),
        transitions=tuple(transitions),
        burned_area_m2=area,
    )


def score(*points: FirePoint, as_of: datetime = T0 + timedelta(days=1)) -> UnitScore:
    board = score_units(points, [UNIT], RegionLevel.TOWNSHIP, RULES, DeadlinePolicy(), as_of)
    return board.units[0]


def test_no_fires_is_the_base_score() -> None:
    unit = score()
    assert (unit.score, unit.grade, unit.sanction, unit.density_per_1000ha) == (100.0, "good", None, 0.0)


def test_each_term() -> None:
    # camera point −5 and density 1 per 2,000 ha = 0.5 → −5
    assert score(fire(1, (K.CAMERA,))).score == 90.0
    # the heaviest source is charged: −20, first seen by the camera so not unreported; density −5
    assert score(fire(1, (K.CAMERA, K.SATELLITE))).score == 75.0
    # satellite first: −20, unreported −4, density −5
    assert score(fire(1, (K.SATELLITE,))).score == 71.0
    # large area doubles: −40 −4 −5
    assert score(fire(1, (K.SATELLITE,), area=301)).score == 51.0
    assert score(fire(1, (K.SATELLITE,), area=300)).score == 71.0
    # failed verification (reopened after feedback) ×1.5 on the camera point: −7.5 −5
    assert score(fire(1, (K.CAMERA,), (*HANDLED, S.REOPENED, S.ACKNOWLEDGED, S.FEEDBACK))).score == 87.5
    # concealed: a false alarm, reopened, then fed back: −5 −8 −5
    concealed = fire(1, (K.CAMERA,), (S.FALSE_ALARM, S.REOPENED, S.ACKNOWLEDGED, S.ON_SITE, S.EXTINGUISHED, S.FEEDBACK))
    assert score(concealed).concealed == 1
    assert score(concealed).score == 82.0


def test_self_found_by_source_or_by_the_reporter_unit() -> None:
    drone = score(fire(1, (K.DRONE, K.SATELLITE)))  # +2 and density −5, no source points, not unreported
    assert (drone.score, drone.self_found, drone.unreported) == (97.0, 1, 0)
    reported = score(fire(1, (K.CAMERA,), reporter="T1"))
    assert (reported.score, reported.self_found) == (97.0, 1)
    other = score(fire(1, (K.CAMERA,), reporter="T9"))
    assert (other.score, other.self_found) == (90.0, 0)
    capped = score(*(fire(i, (K.DRONE,)) for i in range(3)))  # 3 × 2 = 6 credited, capped at 3; density 1.5 → −15
    # Three violations, none charged (all self-found): below the sanction ladder's 2 (service.stats.scoring).
    assert (capped.credits, capped.score, capped.violations, capped.sanction) == (3.0, 88.0, 3, None)


def test_late_responses_count_on_any_fire_point() -> None:
    never_acknowledged = fire(1, (K.CAMERA,), ())
    unit = score(never_acknowledged)
    assert (unit.late_acknowledge, unit.violations, unit.score) == (1, 0, 99.0)
    assert score(never_acknowledged, as_of=T0 + timedelta(minutes=10)).score == 100.0  # still pending
    # acknowledged after 20 min (> 15), on site 40 min after that (> 30), then a false alarm: both late
    slow = replace(
        fire(1, (K.CAMERA,)),
        transitions=(
            Transition(T0, S.NOTIFIED),
            Transition(T0 + timedelta(minutes=20), S.ACKNOWLEDGED),
            Transition(T0 + timedelta(minutes=60), S.ON_SITE),
            Transition(T0 + timedelta(minutes=70), S.FALSE_ALARM, reason="not_found"),
        ),
    )
    unit = score(slow)
    assert (unit.late_acknowledge, unit.late_on_site, unit.score) == (1, 1, 97.0)


def test_fires_of_other_units_are_not_scored_here_and_density_falls_back_to_area() -> None:
    board = score_units(
        [fire(1, (K.CAMERA,), township="T2")],
        [Unit("T1", "一镇", RegionLevel.TOWNSHIP, "C1", area_ha=4000.0)],
        RegionLevel.TOWNSHIP,
        RULES,
        DeadlinePolicy(),
        T0,
    )
    assert board.unscored == 1
    assert board.units[0].density_basis == "area"
    assert board.units[0].basis_ha == 4000.0


def test_ranking_shares_ranks_on_equal_keys() -> None:
    units = [Unit(code, code, RegionLevel.TOWNSHIP, "C1", area_ha=1000.0, cropland_ha=1000.0) for code in "ABC"]
    board = score_units([fire(1, (K.CAMERA,), township="B")], units, RegionLevel.TOWNSHIP, RULES, DeadlinePolicy(), T0)
    assert [(u.code, u.rank, u.score) for u in board.units] == [("A", 1, 100.0), ("C", 1, 100.0), ("B", 3, 85.0)]


@pytest.mark.parametrize("floor", [0.0, None])
def test_floor(floor: float | None) -> None:
    rules = RULES.model_copy(update={"floor": floor})
    points = [fire(i, (K.SATELLITE,), area=1000) for i in range(3)]
    unit = score_units(points, [UNIT], RegionLevel.TOWNSHIP, rules, DeadlinePolicy(), T0).units[0]
    assert unit.deductions == 3 * 40 + 3 * 4 + 10 * 1.5
    assert unit.score == (0.0 if floor == 0.0 else 100 - 147)


def test_a_fire_never_fed_back_costs_late_feedback_once_its_deadline_passes() -> None:
    """24 小时接报处置: leaving a fire open (never fed back, never declared a false alarm) cost nothing, since an
    open fire point is not a violation: keeping quiet was cheaper than reporting. With ``feedback_within_h`` each
    fire point not answered within that many hours of notification costs ``late_feedback``."""
    rules = RULES.model_copy(
        update={"responses": RULES.responses.model_copy(update={"feedback_within_h": 24.0, "late_feedback": 4.0})}
    )

    def scored(*points: FirePoint, as_of: datetime) -> UnitScore:
        return score_units(points, [UNIT], RegionLevel.TOWNSHIP, rules, DeadlinePolicy(), as_of).units[0]

    on_site_forever = fire(1, (K.CAMERA,), (S.ACKNOWLEDGED, S.ON_SITE, S.EXTINGUISHED))
    unit = scored(on_site_forever, as_of=T0 + timedelta(hours=25))
    assert (unit.late_feedback, unit.violations, unit.score) == (1, 0, 96.0)
    assert [(i.rule, i.points) for i in unit.items] == [("late_feedback", -4.0)]
    assert scored(on_site_forever, as_of=T0 + timedelta(hours=23)).late_feedback == 0  # still pending
    # Fed back (a violation) or declared a false alarm within the deadline: met.
    assert scored(fire(2, (K.CAMERA,)), as_of=T0 + timedelta(days=3)).late_feedback == 0
    assert scored(fire(3, (K.CAMERA,), (S.FALSE_ALARM,)), as_of=T0 + timedelta(days=3)).late_feedback == 0
    # Fed back 30 h after notification (its first answer, so also acknowledged late, −1): missed, −4, on top of the
    # camera point −5 and density −5.
    late = replace(
        fire(4, (K.CAMERA,)),
        transitions=(Transition(T0, S.NOTIFIED), Transition(T0 + timedelta(hours=30), S.FEEDBACK)),
    )
    unit = scored(late, as_of=T0 + timedelta(days=3))
    assert (unit.late_feedback, unit.late_acknowledge, unit.violations, unit.score) == (1, 1, 1, 85.0)
    # Without feedback_within_h nothing changes (the example rules files do not set it).
    assert score(on_site_forever, as_of=T0 + timedelta(days=3)).late_feedback == 0
    # late_feedback without the deadline is a mistake in the rules file, refused.
    with pytest.raises(ValueError, match="late_feedback needs feedback_within_h"):
        ScoringRules.model_validate({**RULES.model_dump(), "responses": {"late_feedback": 1.0}})


def test_a_stored_burned_area_that_is_not_a_finite_number_reads_as_unknown() -> None:
    """Feedback stored before it was validated: an integer too large for a float crashed the scores (OverflowError),
    Infinity doubled the deduction as a "large area", a boolean read as 1 m²."""
    from service.stats.queries import _float

    assert [_float(v) for v in (10**400, float("inf"), float("nan"), True, "300亩", "", None)] == [None] * 7
    assert (_float(450), _float("450.5")) == (450.0, 450.5)


def test_a_violation_at_the_place_of_an_earlier_real_fire_weighs_repeat_site_factor_and_is_counted() -> None:
    """repeat_at_site: counted per unit whatever the outcome; only a violation has its deduction multiplied, and
    only when the rules set repeat_site_factor (default 1.0: the existing rules' results stay the same)."""
    repeat = replace(fire(2, (K.CAMERA,)), repeat_of=1)
    open_repeat = replace(fire(3, (K.CAMERA,), (S.ACKNOWLEDGED,)), repeat_of=1)
    unchanged = score(repeat, open_repeat)
    assert unchanged.repeat_at_site == 2
    assert [i.points for i in unchanged.items if i.rule.startswith("fire_point")] == [-5]
    doubled_rules = RULES.model_copy(
        update={"fire_points": RULES.fire_points.model_copy(update={"repeat_site_factor": 2.0})}
    )
    board = score_units([repeat, open_repeat], [UNIT], RegionLevel.TOWNSHIP, doubled_rules, DeadlinePolicy(), T0)
    (doubled,) = board.units
    (item,) = [i for i in doubled.items if i.rule.startswith("fire_point")]
    assert (item.incident_id, item.points) == (2, -10)
    assert "incident 1 ×2" in item.note
    assert doubled.repeat_at_site == 2
    # A fire at a new place costs the plain deduction under the same rules.
    first = score_units([fire(1, (K.CAMERA,))], [UNIT], RegionLevel.TOWNSHIP, doubled_rules, DeadlinePolicy(), T0)
    assert [i.points for i in first.units[0].items if i.rule.startswith("fire_point")] == [-5]


def test_repeat_site_factor_is_validated_and_off_unless_set() -> None:
    from pydantic import ValidationError

    assert RULES.fire_points.repeat_site_factor == 1.0
    with pytest.raises(ValidationError):
        RULES.fire_points.model_validate({**RULES.fire_points.model_dump(), "repeat_site_factor": 0.5})
